/**
 * Gathers the inputs of `computeCost` from the database (rollups, backend events, deployment and its
 * components) and the catalog (prices, billing models). Spend of many deployments over one range is
 * computed with a fixed number of queries, whatever the number of deployments.
 */
import type { Prisma } from "@prisma/client";
import {
  allowedClouds,
  cheapestServerless,
  cloudPrice,
  findGpu,
  providerCatalogs,
  serverlessPrice,
  usdToMicros,
} from "../catalog";
import { db } from "../db";
import { type LatestEventRow, latestBackendEvents } from "./latest-events";
import {
  type ActivitySample,
  attributeToKeys,
  type BackendKind,
  clipToLives,
  computeCost,
  type CostResult,
  entry,
  readyIntervalsFromEvents,
  type ServerlessBilling,
} from "./cost";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
/**
 * Minute rollups are kept 35 days (not 14) so month-to-date spend, which budgets act on, is always priced
 * with minute precision: the serverless idle-window model needs it. See README.md "Retention".
 */
export const MINUTE_RETENTION_DAYS = 35;

export interface DeploymentForCost {
  id: string;
  teamId: string;
  slug: string;
  mode: "hybrid" | "serverless" | "spot";
  serverlessProvider: string | null;
  serverlessGpu: string | null;
  spotGpu: string | null;
  spotClouds: string[];
  gpuCount: number;
  spec: Prisma.JsonValue;
  createdAt: Date;
  activatedAt: Date | null;
  destroyedAt: Date | null;
  components: Array<{ kind: "serverless" | "spot" | "router"; provider: string; plan: Prisma.JsonValue } & ComponentLives>;
}

/** When a component's provider resource existed: its current life (`endedAt` null while it exists) and the ended ones. */
export interface ComponentLives {
  startedAt: Date;
  endedAt: Date | null;
  earlierLives: Array<{ startedAt: Date; endedAt: Date }>;
}

function num(v: unknown, d: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : d;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Serverless billing of `provider` for `gpu` with the deployment's scaling knobs (DeploymentSpec.serverlessScaling). */
export function serverlessBillingFor(provider: string, gpu: string, gpuCount: number, spec: unknown): ServerlessBilling {
  const scaling = obj(obj(spec).serverlessScaling);
  const entry = providerCatalogs.find((e) => e.provider === provider);
  const usd = findGpu(gpu) ? serverlessPrice(provider, gpu) : null;
  return {
    provider,
    gpu,
    gpuCount,
    pricePerGpuHourMicros: usd === null ? null : usdToMicros(usd),
    idleWindowS: num(scaling.idleTimeoutS, 60),
    idleWindowBilled: entry?.billing.idleWindowBilled ?? true,
    minimumBillableS: entry?.billing.minimumBillableS ?? 0,
    minWorkers: num(scaling.minWorkers, 0),
    // The provider never runs more (validated specs always carry it; 1 is defaultScaling's).
    maxWorkers: Math.max(1, num(scaling.maxWorkers, 1)),
    concurrency: Math.max(1, num(scaling.concurrency, 32)),
  };
}

/** A live spot price of a team's SkyPilot API server (SpotPriceSample), `at` in epoch ms. */
export interface SpotPriceSampleRow {
  teamId: string;
  cloud: string;
  gpu: string;
  micros: number;
  at: number;
}

/**
 * Live spot price samples of `teamIds` for `gpus` that price [from, to): every sample inside it plus, per team,
 * cloud and GPU, the last one before it (the price in force at `from`).
 */
export async function loadSpotPriceSamples(teamIds: string[], gpus: string[], from: Date, to: Date): Promise<SpotPriceSampleRow[]> {
  if (teamIds.length === 0 || gpus.length === 0) return [];
  const rows = await db.$queryRaw<Array<{ teamId: string; cloud: string; gpu: string; micros: bigint; at: Date }>>`
    SELECT "teamId", cloud, gpu, "pricePerGpuHourMicros" AS micros, "observedAt" AS at FROM "SpotPriceSample"
    WHERE "teamId" = ANY(${teamIds}::text[]) AND gpu = ANY(${gpus}::text[]) AND "observedAt" >= ${from} AND "observedAt" < ${to}
    UNION ALL
    (SELECT DISTINCT ON ("teamId", cloud, gpu) "teamId", cloud, gpu, "pricePerGpuHourMicros", "observedAt" FROM "SpotPriceSample"
     WHERE "teamId" = ANY(${teamIds}::text[]) AND gpu = ANY(${gpus}::text[]) AND "observedAt" < ${from}
     ORDER BY "teamId", cloud, gpu, "observedAt" DESC, id DESC)`;
  return rows.map((r) => ({ teamId: r.teamId, cloud: r.cloud, gpu: r.gpu, micros: Number(r.micros), at: r.at.getTime() }));
}

/**
 * Spot price of `gpu` over [fromMs, toMs) for a deployment allowed on `clouds` (all when empty): at every
 * moment the cheapest cloud, each cloud at its latest live sample or, before its first one, the static table.
 * Returns the price at `fromMs` and the changes after it.
 */
export function spotPriceSchedule(
  gpu: string,
  clouds: readonly string[],
  samples: readonly SpotPriceSampleRow[],
  fromMs: number,
  toMs: number,
): { cloud: string | null; micros: number | null; changes: Array<{ at: number; cloud: string; micros: number }> } {
  const allowed = allowedClouds(clouds);
  const mine = samples.filter((x) => x.gpu === gpu && (allowed as string[]).includes(x.cloud)).sort((a, b) => a.at - b.at);
  // Each cloud's current price: its latest live sample once there is one, the static table until then.
  const current = new Map(allowed.map((cloud) => [cloud as string, cloudPrice(gpu, [cloud], "spot")?.micros]));
  const cheapest = (): { cloud: string; micros: number } | null => {
    let best: { cloud: string; micros: number } | null = null;
    for (const [cloud, micros] of current) {
      if (micros !== undefined && micros > 0 && (!best || micros < best.micros)) best = { cloud, micros };
    }
    return best;
  };
  let i = 0;
  for (; i < mine.length && mine[i].at <= fromMs; i++) current.set(mine[i].cloud, mine[i].micros);
  const start = cheapest();
  const changes: Array<{ at: number; cloud: string; micros: number }> = [];
  let last = start;
  for (; i < mine.length && mine[i].at < toMs; i++) {
    current.set(mine[i].cloud, mine[i].micros);
    const now = cheapest();
    if (now && (now.micros !== last?.micros || now.cloud !== last?.cloud)) {
      changes.push({ at: mine[i].at, ...now });
      last = now;
    }
  }
  return { cloud: start?.cloud ?? null, micros: start?.micros ?? null, changes };
}

function liveMs(from: number, to: number, start: Date, end: Date | null): number {
  return Math.max(0, Math.min(to, end ? end.getTime() : to) - Math.max(from, start.getTime()));
}

/** Every life of a component as [start, end) in ms, the current one ending with the deployment if not before (open: +∞). */
function componentLives(c: ComponentLives, destroyedAt: Date | null): Array<{ start: number; end: number }> {
  const end = c.endedAt ?? destroyedAt;
  return [
    ...c.earlierLives.map((l) => ({ start: l.startedAt.getTime(), end: l.endedAt.getTime() })),
    { start: c.startedAt.getTime(), end: end ? end.getTime() : Number.POSITIVE_INFINITY },
  ];
}

/** Time inside [from, to) a component's resource existed: every life, the current one ending with the deployment if not before. */
function componentLiveMs(from: number, to: number, c: ComponentLives, destroyedAt: Date | null): number {
  return componentLives(c, destroyedAt).reduce((n, l) => n + Math.max(0, Math.min(to, l.end) - Math.max(from, l.start)), 0);
}

/**
 * When spot replicas can have existed: the lives of the spot component, or, for a deployment without one, from
 * its creation to its destroy. Routers' ready time outside them is not billed (a router that drops a destroyed
 * deployment's backend sent no closing event before router-service had them).
 */
function spotLives(d: DeploymentForCost): Array<{ start: number; end: number }> {
  const comp = d.components.find((c) => c.kind === "spot");
  if (comp) return componentLives(comp, d.destroyedAt);
  return [{ start: d.createdAt.getTime(), end: d.destroyedAt ? d.destroyedAt.getTime() : Number.POSITIVE_INFINITY }];
}

/** An idle router sends a heartbeat every 60 s: one silent this long (3 heartbeats) is taken to be gone. */
export const ROUTER_SILENCE_GRACE_MS = 3 * MINUTE_MS;
/** A gone router is taken to have seen its backends until this long after its last sign of life (one heartbeat). */
export const ROUTER_VIEW_MARGIN_MS = MINUTE_MS;

/**
 * Where each router's view ends, for the routers of `routerIds` that are gone at `now`: a router's last sign of
 * life is its last report (`UsageBatch.receivedAt`, heartbeats included) or, when its batches were pruned
 * before `pruneUsage` kept the last one, its last backend event; if that is older than the grace, the router
 * sees nothing after it plus a margin. Routers still reporting are absent (their view runs to the range's end).
 * One query, two index lookups per router.
 */
export async function routerViewEnds(routerIds: readonly string[], now: Date): Promise<Map<string, number>> {
  const ids = [...new Set(routerIds)];
  const out = new Map<string, number>();
  if (ids.length === 0) return out;
  const rows = await db.$queryRaw<Array<{ routerId: string; lastSeen: Date | null }>>`
    SELECT r.id AS "routerId", GREATEST(
      (SELECT max(b."receivedAt") FROM "UsageBatch" b WHERE b."routerId" = r.id),
      (SELECT max(e.at) FROM "UsageBackendEvent" e WHERE e."routerId" = r.id)) AS "lastSeen"
    FROM unnest(${ids}::text[]) AS r(id)`;
  for (const r of rows) {
    if (!r.lastSeen) continue;
    const last = r.lastSeen.getTime();
    if (now.getTime() - last > ROUTER_SILENCE_GRACE_MS) out.set(r.routerId, last + ROUTER_VIEW_MARGIN_MS);
  }
  return out;
}

export async function loadDeploymentsForCost(where: Prisma.DeploymentWhereInput): Promise<DeploymentForCost[]> {
  return db.deployment.findMany({
    where,
    select: {
      id: true, teamId: true, slug: true, mode: true, serverlessProvider: true, serverlessGpu: true, spotGpu: true,
      spotClouds: true, gpuCount: true, spec: true, createdAt: true, activatedAt: true, destroyedAt: true,
      components: {
        select: { kind: true, provider: true, plan: true, startedAt: true, endedAt: true, earlierLives: { select: { startedAt: true, endedAt: true } } },
      },
    },
  });
}

interface RollupRow {
  deploymentId: string;
  backendId: string;
  t: Date;
  kind: string;
  keyId: string;
  requests: number;
  busyMs: number;
  inputTokens: number;
  outputTokens: number;
}

// Cost needs no reason: the in-range query leaves it out.
type EventRow = Omit<LatestEventRow, "reason">;

/** Which rollups price a range: minute rollups while they are retained, hour rollups beyond. */
export function granularityFor(fromMs: number, nowMs = Date.now()): "minute" | "hour" {
  return fromMs >= nowMs - MINUTE_RETENTION_DAYS * 86_400_000 ? "minute" : "hour";
}

export interface DeploymentCost {
  deployment: DeploymentForCost;
  cost: CostResult;
  /** Spend attributable to each API key (micro-dollars). */
  keys: Map<string, number>;
}

/** Cost of each deployment over [from, to), with per-key attribution. */
export async function costForDeployments(deployments: DeploymentForCost[], from: Date, to: Date, opts: { now?: Date } = {}): Promise<DeploymentCost[]> {
  if (deployments.length === 0) return [];
  const fromMs = from.getTime();
  const toMs = to.getTime();
  const now = opts.now ?? new Date();
  const granularity = granularityFor(fromMs, now.getTime());
  const bucketMs = granularity === "minute" ? MINUTE_MS : HOUR_MS;
  const ids = deployments.map((d) => d.id);

  const rows = await db.$queryRaw<RollupRow[]>`
    SELECT "deploymentId", "backendId", bucket AS t, "backendKind" AS kind, "keyId",
           SUM(requests)::int AS requests, SUM("busyMs")::float8 AS "busyMs",
           SUM("inputTokens")::float8 AS "inputTokens", SUM("outputTokens")::float8 AS "outputTokens"
    FROM "UsageRollup"
    WHERE granularity = ${granularity} AND "deploymentId" = ANY(${ids}::text[])
      AND bucket >= ${new Date(Math.floor(fromMs / bucketMs) * bucketMs)} AND bucket < ${to}
    GROUP BY 1, 2, 3, 4, 5`;
  // Events in range plus, per router and backend, the last one before it (the state at `from`).
  const inRange = await db.$queryRaw<EventRow[]>`
    SELECT "deploymentId", "routerId", "backendId", "backendKind", state, at, replicas FROM "UsageBackendEvent"
    WHERE "deploymentId" = ANY(${ids}::text[]) AND at >= ${from} AND at < ${to}`;
  const events: EventRow[] = [...inRange, ...(await latestBackendEvents(ids, from))];

  const viewEnds = await routerViewEnds(events.map((e) => e.routerId), now);

  const samplesByTeam = new Map<string, SpotPriceSampleRow[]>();
  const samples = await loadSpotPriceSamples(
    [...new Set(deployments.map((d) => d.teamId))],
    [...new Set(deployments.flatMap((d) => d.spotGpu ?? d.serverlessGpu ?? []))],
    from,
    to,
  );
  for (const x of samples) entry(samplesByTeam, x.teamId, () => []).push(x);

  const rowsByDep = new Map<string, RollupRow[]>();
  for (const r of rows) {
    entry(rowsByDep, r.deploymentId, () => []).push(r);
  }
  const eventsByDep = new Map<string, EventRow[]>();
  for (const e of events) {
    entry(eventsByDep, e.deploymentId, () => []).push(e);
  }

  return deployments.map((d) => {
    const drows = rowsByDep.get(d.id) ?? [];
    const activityMap = new Map<string, ActivitySample>();
    for (const r of drows) {
      const kind: BackendKind = r.kind === "spot" ? "spot" : "serverless";
      const t = r.t.getTime();
      const k = `${t}|${kind}`;
      const a = entry(activityMap, k, () => ({ t, kind, requests: 0, busyMs: 0, inputTokens: 0, outputTokens: 0 }));
      a.requests += r.requests;
      a.busyMs += Number(r.busyMs);
      a.inputTokens += Number(r.inputTokens);
      a.outputTokens += Number(r.outputTokens);
    }
    const spotBackends = new Set(drows.filter((r) => r.kind === "spot").map((r) => r.backendId));
    const evs = (eventsByDep.get(d.id) ?? [])
      .filter((e) => e.backendKind === "spot" || (e.backendKind === null && (spotBackends.has(e.backendId) || d.mode === "spot")))
      .map((e) => ({ routerId: e.routerId, backendId: e.backendId, state: e.state, at: e.at.getTime(), replicas: e.replicas }));
    const cost = computeCost(buildCostInput(d, fromMs, toMs, bucketMs, [...activityMap.values()], readyIntervalsFromEvents(evs, fromMs, toMs, { viewEnds }), samplesByTeam.get(d.teamId)));
    const keys = attributeToKeys(
      cost.buckets,
      drows.map((r) => ({ t: r.t.getTime(), kind: r.kind === "spot" ? "spot" : "serverless", keyId: r.keyId, busyMs: Number(r.busyMs), requests: r.requests })),
    );
    return { deployment: d, cost, keys };
  });
}

/** The pure cost input of one deployment (exported for the metrics series, which slices the range). */
export function buildCostInput(
  d: DeploymentForCost,
  fromMs: number,
  toMs: number,
  bucketMs: number,
  activity: ActivitySample[],
  /** The routers' view (readyIntervalsFromEvents); cut here to the lives of the spot component. */
  spotReady: ReturnType<typeof readyIntervalsFromEvents>,
  /** Live spot price samples of this deployment's team (loadSpotPriceSamples); none → the static table throughout. */
  priceSamples: readonly SpotPriceSampleRow[] = [],
): Parameters<typeof computeCost>[0] {
  const svlComp = d.components.find((c) => c.kind === "serverless");
  const routerComp = d.components.find((c) => c.kind === "router");
  const serverless =
    d.serverlessProvider && d.serverlessGpu && d.mode !== "spot" ? serverlessBillingFor(d.serverlessProvider, d.serverlessGpu, d.gpuCount, d.spec) : null;
  const spotGpu = d.spotGpu ?? d.serverlessGpu;
  const spotPrice =
    spotGpu && d.mode !== "serverless"
      ? spotPriceSchedule(spotGpu, d.spotClouds, priceSamples, fromMs, toMs)
      : null;
  const spot =
    spotGpu && spotPrice
      ? {
          cloud: spotPrice.cloud ?? d.spotClouds[0] ?? "unknown", gpu: spotGpu, gpuCount: d.gpuCount,
          spotPricePerGpuHourMicros: spotPrice.micros, priceChanges: spotPrice.changes,
        }
      : null;
  let counterfactual = serverless;
  if (!counterfactual && spotGpu && findGpu(spotGpu)) {
    const c = cheapestServerless(spotGpu);
    if (c.provider) counterfactual = serverlessBillingFor(c.provider, spotGpu, d.gpuCount, d.spec);
  }
  const routerPlan = obj(routerComp?.plan);
  const liveStart = d.activatedAt ?? d.createdAt;
  return {
    fromMs,
    toMs,
    bucketMs,
    activity,
    spotReady: clipToLives(spotReady, spotLives(d)),
    serverless,
    serverlessLiveMs: !serverless ? 0 : svlComp ? componentLiveMs(fromMs, toMs, svlComp, d.destroyedAt) : liveMs(fromMs, toMs, liveStart, d.destroyedAt),
    deploymentLiveMs: liveMs(fromMs, toMs, liveStart, d.destroyedAt),
    spot,
    routerMicrosPerHour: routerComp ? usdToMicros(num(routerPlan.usdPerHour, 0)) : 0,
    routerLiveMs: routerComp ? componentLiveMs(fromMs, toMs, routerComp, d.destroyedAt) : 0,
    counterfactualServerless: counterfactual,
    onDemandSpotGpuMicros: spotGpu ? (cloudPrice(spotGpu, d.spotClouds, "onDemand")?.micros ?? null) : null,
    onDemandServerlessGpuMicros: d.serverlessGpu ? (cloudPrice(d.serverlessGpu, d.spotClouds, "onDemand")?.micros ?? null) : null,
  };
}
