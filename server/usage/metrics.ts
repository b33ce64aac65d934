/**
 * Dashboard data: a deployment's time series (traffic, latency quantiles from the merged histograms, error
 * rate, backend split, cost and savings) and the team overview (spend this month, savings, top deployments).
 */
import { db } from "../db";
import { latestBackendEvents } from "./latest-events";
import { notFound } from "../lib/errors";
import { budgetPeriod, knownParts, monthToDateSpend, teamBudgetBlocks } from "./budgets";
import { type ActivitySample, computeCost, entry, readyIntervalsFromEvents } from "./cost";
import { addInto, emptyHistogram, type Histogram, quantile, toCanonical } from "./histogram";
import {
  buildCostInput,
  HOUR_MS,
  loadDeploymentsForCost,
  loadSpotPriceSamples,
  MINUTE_MS,
  MINUTE_RETENTION_DAYS,
  routerViewEnds,
} from "./pricing";

const DAY_MS = 86_400_000;
/** Bucket sizes offered to charts, smallest first; the first one that keeps a range under ~200 points wins. */
const BUCKETS_MS = [MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, DAY_MS];
const MAX_POINTS = 200;
export const MAX_SERIES_RANGE_MS = 400 * DAY_MS;

export function seriesBucketMs(rangeMs: number): number {
  return BUCKETS_MS.find((b) => rangeMs / b <= MAX_POINTS) ?? DAY_MS;
}

export interface SeriesPoint {
  t: string;
  requests: number;
  rps: number;
  errors: number;
  errorRate: number | null;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  ttftMs: { p50: number | null; p95: number | null; p99: number | null };
  /** Requests per backend kind and per backend id. */
  backends: { serverless: number; spot: number; byId: Record<string, number> };
  inputTokens: number;
  outputTokens: number;
  cost: { serverless: number | null; spot: number | null; router: number; total: number | null };
  counterfactual: { allServerless: number | null; allOnDemand: number | null };
  savings: { vsServerless: number | null; vsOnDemand: number | null } | null;
  /** Priced in part from hour rollups (past minute retention): its serverless cost is an estimate. */
  approximate: boolean;
}

interface Row {
  t: Date;
  granularity: string;
  backendId: string;
  kind: string;
  requests: number;
  errors: number;
  inputTokens: number;
  outputTokens: number;
  busyMs: number;
  latencyHist: Histogram;
  ttftHist: Histogram;
}

const q3 = (h: Histogram) => ({ p50: round1(quantile(h, 0.5)), p95: round1(quantile(h, 0.95)), p99: round1(quantile(h, 0.99)) });
const round1 = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);

export async function deploymentSeries(teamId: string, input: { deploymentId: string; from: Date; to: Date }, opts: { now?: Date } = {}) {
  const now = opts.now ?? new Date();
  const [dep] = await loadDeploymentsForCost({ id: input.deploymentId, teamId });
  if (!dep) throw notFound("Deployment");
  const to = Math.min(input.to.getTime(), now.getTime());
  const from = Math.max(input.from.getTime(), to - MAX_SERIES_RANGE_MS);
  // Cost must not depend on the chart's bucket size: the serverless idle-window model needs minute rollups, so
  // every range is priced from them wherever they are retained, and from hour rollups only before (an estimate,
  // flagged). Hour-aligned, so no hour rollup before it overlaps a minute rollup after it; pruneUsage deletes
  // only minute rollups older than it, so the figures do not move when the cron runs.
  const minuteFrom = Math.ceil((now.getTime() - MINUTE_RETENTION_DAYS * DAY_MS) / HOUR_MS) * HOUR_MS;
  let step = seriesBucketMs(Math.max(1, to - from));
  // Before minute retention only hour rollups are used: no point in finer buckets.
  if (from < minuteFrom) step = Math.max(step, HOUR_MS);
  const start = Math.floor(from / step) * step;
  const source = from >= minuteFrom ? "minute" : to <= minuteFrom ? "hour" : "mixed";

  // The rollups whose bucket overlaps [from, to) (not the whole first chart bucket: the figures would then
  // depend on the bucket size): minute rollups from `minuteFrom` on, hour rollups before it.
  const rows = await db.$queryRaw<Row[]>`
    SELECT bucket AS t, granularity, "backendId", "backendKind" AS kind, requests, errors, "inputTokens"::float8 AS "inputTokens",
           "outputTokens"::float8 AS "outputTokens", "busyMs"::float8 AS "busyMs", "latencyHist", "ttftHist"
    FROM "UsageRollup"
    WHERE "deploymentId" = ${dep.id} AND "teamId" = ${teamId}
      AND ((granularity = 'minute' AND bucket >= ${new Date(Math.max(Math.floor(from / MINUTE_MS) * MINUTE_MS, minuteFrom))} AND bucket < ${new Date(to)})
        OR (granularity = 'hour' AND bucket >= ${new Date(Math.floor(from / HOUR_MS) * HOUR_MS)} AND bucket < ${new Date(Math.min(minuteFrom, to))}))`;
  // Events in the chart's range plus, per router and backend, the last one before it (the state at its start).
  const events = [
    ...(await db.$queryRaw<Array<{ routerId: string; backendId: string; backendKind: string | null; state: string; at: Date; replicas: number }>>`
      SELECT "routerId", "backendId", "backendKind", state, at, replicas FROM "UsageBackendEvent"
      WHERE "deploymentId" = ${dep.id} AND at >= ${new Date(start)} AND at < ${new Date(to)}`),
    ...(await latestBackendEvents([dep.id], new Date(start))),
  ];
  const viewEnds = await routerViewEnds(events.map((e) => e.routerId), now);
  const spotGpu = dep.spotGpu ?? dep.serverlessGpu;
  const priceSamples = spotGpu ? await loadSpotPriceSamples([dep.teamId], [spotGpu], new Date(start), new Date(to)) : [];
  const spotIds = new Set(rows.filter((r) => r.kind === "spot").map((r) => r.backendId));
  const spotEvents = events
    .filter((e) => e.backendKind === "spot" || (e.backendKind === null && (spotIds.has(e.backendId) || dep.mode === "spot")))
    .map((e) => ({ routerId: e.routerId, backendId: e.backendId, state: e.state, at: e.at.getTime(), replicas: e.replicas }));

  const points: SeriesPoint[] = [];
  const byStep = new Map<number, Row[]>();
  for (const r of rows) {
    const k = Math.floor(r.t.getTime() / step) * step;
    entry(byStep, k, () => []).push(r);
  }
  for (let t = start; t < to; t += step) {
    const a = Math.max(t, from);
    const b = Math.min(t + step, to);
    const list = byStep.get(t) ?? [];
    const lat = emptyHistogram();
    const ttft = emptyHistogram();
    const activity = new Map<string, ActivitySample>();
    const p = { requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, serverless: 0, spot: 0, byId: {} as Record<string, number> };
    for (const r of list) {
      p.requests += r.requests;
      p.errors += r.errors;
      p.inputTokens += Number(r.inputTokens);
      p.outputTokens += Number(r.outputTokens);
      if (r.kind === "spot") p.spot += r.requests;
      else p.serverless += r.requests;
      p.byId[r.backendId] = (p.byId[r.backendId] ?? 0) + r.requests;
      addInto(lat, toCanonical(r.latencyHist));
      addInto(ttft, toCanonical(r.ttftHist));
      const s = activitySample(activity, r);
      s.requests += r.requests;
      s.busyMs += Number(r.busyMs);
      s.inputTokens += Number(r.inputTokens);
      s.outputTokens += Number(r.outputTokens);
    }
    // Each point is priced on its own slice of time: an idle window running past the slice's end is billed
    // in the next slice only if that slice has activity, and a long request's time before the slice is billed
    // here apart from the previous slice's traffic, so a series' sum can differ slightly from the total.
    // Minute rollups price every slice they cover, whatever the step (`bucketMs` is theirs, not the step's).
    const cost = computeCost(buildCostInput(dep, a, b, MINUTE_MS, [...activity.values()], readyIntervalsFromEvents(spotEvents, a, b, { viewEnds }), priceSamples));
    points.push({
      t: new Date(t).toISOString(),
      requests: p.requests,
      rps: Math.round((p.requests / ((b - a) / 1000)) * 1000) / 1000,
      errors: p.errors,
      errorRate: p.requests ? Math.round((p.errors / p.requests) * 10_000) / 10_000 : null,
      latencyMs: q3(lat),
      ttftMs: q3(ttft),
      backends: { serverless: p.serverless, spot: p.spot, byId: p.byId },
      inputTokens: p.inputTokens,
      outputTokens: p.outputTokens,
      cost: cost.actual,
      counterfactual: cost.counterfactual,
      savings: cost.savings ? { vsServerless: cost.savings.vsServerless, vsOnDemand: cost.savings.vsOnDemand } : null,
      approximate: list.some((r) => r.granularity === "hour"),
    });
  }
  const total = computeCost(
    buildCostInput(
      dep,
      from,
      to,
      MINUTE_MS,
      aggregate(rows),
      readyIntervalsFromEvents(spotEvents, from, to, { viewEnds }),
      priceSamples,
    ),
  );
  const approximateBefore = rows.some((r) => r.granularity === "hour") ? new Date(minuteFrom).toISOString() : null;
  return {
    deploymentId: dep.id,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    bucketMs: step,
    /** Rollups the range is priced from: "mixed" = hour rollups before minute retention, minute ones after. */
    source,
    points,
    summary: {
      actual: total.actual,
      counterfactual: total.counterfactual,
      savings: total.savings,
      costPer1MOutputTokens: total.costPer1MOutputTokens,
      usage: total.usage,
      explanation: approximateBefore
        ? [
            ...total.explanation,
            `before ${approximateBefore} only hour rollups remain (minute rollups are kept ${MINUTE_RETENTION_DAYS} days): serverless worker ` +
              "time there, and the all-serverless figure, are an estimate (the idle windows between an hour's requests are taken as if the requests arrived at random)",
          ]
        : total.explanation,
      /** Start of the exact figures when part of the range was priced from hour rollups (an estimate), else null. */
      approximateBefore,
    },
  };
}

/** The activity sample of a rollup's bucket and backend kind in `m` (hour rollups carry their bucket length). */
function activitySample(m: Map<string, ActivitySample>, r: Row): ActivitySample {
  const kind = r.kind === "spot" ? "spot" : "serverless";
  const t = r.t.getTime();
  return entry(m, `${t}|${kind}`, () => ({
    t, kind, requests: 0, busyMs: 0, inputTokens: 0, outputTokens: 0, ...(r.granularity === "hour" ? { bucketMs: HOUR_MS } : {}),
  }));
}

function aggregate(rows: Row[]): ActivitySample[] {
  const m = new Map<string, ActivitySample>();
  for (const r of rows) {
    const s = activitySample(m, r);
    s.requests += r.requests;
    s.busyMs += Number(r.busyMs);
    s.inputTokens += Number(r.inputTokens);
    s.outputTokens += Number(r.outputTokens);
  }
  return [...m.values()];
}

const sumOrNull = (vals: Array<number | null>) => (vals.some((v) => v === null) ? null : vals.reduce<number>((s, v) => s + (v ?? 0), 0));

/** Spend this month, savings and the top deployments by spend. */
export async function teamOverview(teamId: string, opts: { now?: Date; top?: number } = {}) {
  const now = opts.now ?? new Date();
  const spend = (await monthToDateSpend([teamId], now)).get(teamId)!;
  const costs = spend.costs;
  const withData = costs.filter((c) => c.cost.savings !== null);
  const actualOfData = withData.reduce((s, c) => s + (c.cost.actual.total ?? 0), 0);
  const cfS = sumOrNull(withData.map((c) => c.cost.counterfactual.allServerless));
  const cfO = sumOrNull(withData.map((c) => c.cost.counterfactual.allOnDemand));
  const requests = costs.reduce((s, c) => s + c.cost.usage.requests, 0);
  const outputTokens = costs.reduce((s, c) => s + c.cost.usage.outputTokens, 0);
  const pct = (saving: number, base: number) => (base ? Math.round((saving / base) * 1000) / 10 : null);
  // Known amounts throughout, as the total counts them (a partly unpriced deployment counts its priced part).
  const spendOf = (c: (typeof costs)[number]) => spend.deployments.get(c.deployment.id) ?? 0;
  const known = costs.map((c) => knownParts(c.cost));
  const top = [...costs].sort((x, y) => spendOf(y) - spendOf(x)).slice(0, opts.top ?? 5);
  // A destroyed deployment and its replacement share a slug: the status tells the two rows apart.
  const [statuses, budgetBlocks] = await Promise.all([
    top.length ? db.deployment.findMany({ where: { teamId, id: { in: top.map((c) => c.deployment.id) } }, select: { id: true, status: true } }) : [],
    teamBudgetBlocks(teamId, { now }),
  ]);
  const statusOf = new Map(statuses.map((d) => [d.id, d.status]));
  return {
    period: budgetPeriod(now),
    spendMicros: spend.total,
    breakdown: {
      serverless: known.reduce((s, k) => s + k.serverless, 0),
      spot: known.reduce((s, k) => s + k.spot, 0),
      router: known.reduce((s, k) => s + k.router, 0),
    },
    unpricedDeployments: costs.filter((c) => spend.unpriced.includes(c.deployment.id)).map((c) => ({ id: c.deployment.id, slug: c.deployment.slug })),
    requests,
    outputTokens,
    costPer1MOutputTokens: outputTokens ? Math.round((spend.total * 1_000_000) / outputTokens) : null,
    // Savings only over deployments that reported usage: never a saving computed from no data.
    savings:
      withData.length === 0
        ? null
        : {
            vsServerless: cfS === null ? null : cfS - actualOfData,
            vsServerlessPct: cfS === null ? null : pct(cfS - actualOfData, cfS),
            vsOnDemand: cfO === null ? null : cfO - actualOfData,
            vsOnDemandPct: cfO === null ? null : pct(cfO - actualOfData, cfO),
          },
    topDeployments: top.map((c) => ({
      deploymentId: c.deployment.id,
      slug: c.deployment.slug,
      mode: c.deployment.mode,
      status: statusOf.get(c.deployment.id) ?? null,
      createdAt: c.deployment.createdAt,
      destroyedAt: c.deployment.destroyedAt,
      spendMicros: spendOf(c),
      requests: c.cost.usage.requests,
      savings: c.cost.savings,
    })),
    /** Budgets at 100%: the router answers 429 insufficient_quota to the requests they cover. */
    budgetBlocks,
  };
}
