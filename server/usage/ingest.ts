/**
 * Usage ingest. Reports that arrive while a write is in progress are grouped (group commit): one
 * transaction per group, so the commit and the round trips are paid once per group, not per report.
 * Per group:
 *   1. INSERT the batch ids (ON CONFLICT DO NOTHING … RETURNING): only the ids that come back are new, so a
 *      resent batch changes nothing, even when resent concurrently (the second insert waits, then conflicts);
 *   2. upsert minute and hour rollups of the new reports in one statement (counters added, histograms
 *      merged bucket-wise), rows in key order so concurrent groups cannot deadlock;
 *   3. append the backend state events with the router's reason (spot ready intervals are derived from them at
 *      query time; the reason is what the dashboard's router view shows);
 *   4. commit, then resolve every caller; then batch the keys' last-used time.
 */
import { sendEvent } from "../workflows/events";
import { cleanStateReason, usageReportSchema, type UsageReport } from "@tuna/router-service/contract";
import type pg from "pg";
import { db } from "../db";
import { CANONICAL_BOUNDS_MS, toCanonical } from "./histogram";
import { budgetUsageArrived } from "./budgets";
import { usageLinks } from "./links";
import { usagePool } from "./pool";
import { HOUR_MS, MINUTE_MS } from "./pricing";
import { envInt } from "../lib/env";

export type { UsageReport };

export interface IngestResult {
  duplicate: boolean;
  /** Entries dropped because their deployment is unknown (e.g. deleted since the router's snapshot). */
  skippedEntries: number;
}

// deploymentId → teamId. A deployment never changes team, so entries never go stale; bounded anyway.
const teamCache = new Map<string, string>();
const TEAM_CACHE_MAX = 50_000;

async function teamsOf(deploymentIds: string[]): Promise<Map<string, string>> {
  const missing = deploymentIds.filter((id) => !teamCache.has(id));
  if (missing.length) {
    const rows = await db.deployment.findMany({ where: { id: { in: missing } }, select: { id: true, teamId: true } });
    if (teamCache.size + rows.length > TEAM_CACHE_MAX) teamCache.clear();
    for (const r of rows) teamCache.set(r.id, r.teamId);
  }
  const out = new Map<string, string>();
  for (const id of deploymentIds) {
    const t = teamCache.get(id);
    if (t) out.set(id, t);
  }
  return out;
}

/** Forgets cached deployment → team mappings (tests that reuse ids across databases). */
export function clearIngestCache(): void {
  teamCache.clear();
}

// Bucket-wise sum of two histograms on the canonical bounds, written out slot by slot: no set-returning
// function or subquery per row (measured: the zip-and-aggregate form doubled the cost of the upsert).
const HIST_MERGE = (col: string) =>
  `jsonb_build_object('bounds', EXCLUDED."${col}"->'bounds', 'counts', jsonb_build_array(${Array.from(
    { length: CANONICAL_BOUNDS_MS.length + 1 },
    (_, i) => `COALESCE(("UsageRollup"."${col}"->'counts'->>${i})::bigint, 0) + COALESCE((EXCLUDED."${col}"->'counts'->>${i})::bigint, 0)`,
  ).join(", ")}))`;

const INSERT_BATCHES_SQL = `
INSERT INTO "UsageBatch" ("batchId", "routerId", "receivedAt")
SELECT x.id, x.router, $2::timestamp FROM jsonb_to_recordset($1::jsonb) AS x(id text, router text) ORDER BY x.id
ON CONFLICT DO NOTHING RETURNING "batchId"`;

const UPSERT_SQL = `
WITH r AS (
  INSERT INTO "UsageRollup" (id, granularity, bucket, "teamId", "deploymentId", "backendId", "backendKind", "keyId",
                             requests, errors, "inputTokens", "outputTokens", "busyMs", "latencyHist", "ttftHist")
  SELECT gen_random_uuid()::text, x.g, x.b, x.team, x.dep, x.be, x.kind, x.key, x.req, x.err, x.it, x.ot, x.busy, x.lh, x.th
  FROM jsonb_to_recordset($1::jsonb) AS x(g text, b timestamp, team text, dep text, be text, kind text, key text,
                                          req int, err int, it bigint, ot bigint, busy bigint, lh jsonb, th jsonb)
  ORDER BY x.g, x.b, x.dep, x.be, x.key
  ON CONFLICT (granularity, bucket, "deploymentId", "backendId", "keyId") DO UPDATE SET
    requests = "UsageRollup".requests + EXCLUDED.requests,
    errors = "UsageRollup".errors + EXCLUDED.errors,
    "inputTokens" = "UsageRollup"."inputTokens" + EXCLUDED."inputTokens",
    "outputTokens" = "UsageRollup"."outputTokens" + EXCLUDED."outputTokens",
    "busyMs" = "UsageRollup"."busyMs" + EXCLUDED."busyMs",
    "latencyHist" = ${HIST_MERGE("latencyHist")},
    "ttftHist" = ${HIST_MERGE("ttftHist")}
  RETURNING 1
), e AS (
  INSERT INTO "UsageBackendEvent" ("batchId", "routerId", "deploymentId", "backendId", "backendKind", state, replicas, at, reason)
  SELECT x.batch, x.router, x.dep, x.be, x.kind, x.state, x.replicas, x.at, x.reason
  FROM jsonb_to_recordset($2::jsonb) AS x(batch text, router text, dep text, be text, kind text, state text, replicas int, at timestamp, reason text)
  RETURNING 1
)
SELECT (SELECT count(*) FROM r)::int AS rollups, (SELECT count(*) FROM e)::int AS events`;

interface RollupParam {
  g: "minute" | "hour";
  b: string;
  team: string;
  dep: string;
  be: string;
  kind: string;
  key: string;
  req: number;
  err: number;
  it: number;
  ot: number;
  busy: number;
  lh: { bounds: number[]; counts: number[] };
  th: { bounds: number[]; counts: number[] };
}

/** Where a report's counts land: the bucket holding the middle of its period (periods are a few seconds). */
function reportInstant(r: UsageReport): number {
  const s = Date.parse(r.periodStart);
  const e = Date.parse(r.periodEnd);
  return e >= s ? s + Math.floor((e - s) / 2) : e;
}

/** Adds a report's entries to `byKey`, summed per conflict key (one INSERT may not touch a row twice). */
function addRollupRows(byKey: Map<string, RollupParam>, report: UsageReport, teams: Map<string, string>): number {
  const at = reportInstant(report);
  const minute = new Date(Math.floor(at / MINUTE_MS) * MINUTE_MS).toISOString();
  const hour = new Date(Math.floor(at / HOUR_MS) * HOUR_MS).toISOString();
  let skipped = 0;
  for (const e of report.entries) {
    const team = teams.get(e.deploymentId);
    if (!team) {
      skipped++;
      continue;
    }
    const lh = toCanonical(e.latencyMs);
    const th = toCanonical(e.ttftMs);
    for (const [g, b] of [["minute", minute], ["hour", hour]] as const) {
      const k = `${g}|${b}|${e.deploymentId}|${e.backendId}|${e.keyId}`;
      const cur = byKey.get(k);
      if (!cur) {
        byKey.set(k, {
          g, b, team, dep: e.deploymentId, be: e.backendId, kind: e.backendKind, key: e.keyId,
          req: e.requests, err: e.errors, it: e.inputTokens, ot: e.outputTokens, busy: Math.round(e.busyMs),
          lh: { bounds: lh.bounds, counts: [...lh.counts] }, th: { bounds: th.bounds, counts: [...th.counts] },
        });
      } else {
        cur.req += e.requests;
        cur.err += e.errors;
        cur.it += e.inputTokens;
        cur.ot += e.outputTokens;
        cur.busy += Math.round(e.busyMs);
        for (let i = 0; i < lh.counts.length; i++) cur.lh.counts[i] += lh.counts[i];
        for (let i = 0; i < th.counts.length; i++) cur.th.counts[i] += th.counts[i];
      }
    }
  }
  return skipped;
}

interface EventParam {
  batch: string;
  router: string;
  dep: string;
  be: string;
  kind: string | null;
  state: string;
  replicas: number;
  at: string;
  /** The router's reason, cut to the contract's bound; null when it sent none. */
  reason: string | null;
}

/** Backend state events of the reports, with the backend kind and (spot) ready replica count resolved. */
async function eventRows(reports: UsageReport[], teams: Map<string, string>, client: pg.PoolClient): Promise<EventParam[]> {
  const events = reports.flatMap((r) => r.events.filter((e) => teams.has(e.deploymentId)).map((e) => ({ r, e })));
  if (events.length === 0) return [];
  // Replica count of each spot backend as the control plane knows it now (the router sees one endpoint).
  const { rows: comps } = await client.query<{ id: string; deploymentId: string; kind: string; replicasReady: number | null }>(
    `SELECT id, "deploymentId", kind::text AS kind, "replicasReady" FROM "DeploymentComponent" WHERE "deploymentId" = ANY($1::text[])`,
    [[...new Set(events.map(({ e }) => e.deploymentId))]],
  );
  return events.map(({ r, e }) => {
    // Snapshot backend ids are component ids; static configs may use "spot"/"serverless".
    const comp = comps.find((c) => c.deploymentId === e.deploymentId && (c.id === e.backendId || c.kind === e.backendId)) ?? null;
    const kind =
      r.entries.find((x) => x.deploymentId === e.deploymentId && x.backendId === e.backendId)?.backendKind ??
      (comp && comp.kind !== "router" ? comp.kind : null) ??
      (e.backendId === "spot" || e.backendId === "serverless" ? e.backendId : null);
    return {
      batch: r.batchId,
      router: r.routerId,
      dep: e.deploymentId,
      be: e.backendId,
      kind,
      state: e.state,
      replicas: kind === "spot" ? Math.max(1, comp?.replicasReady ?? 1) : 1,
      at: new Date(Date.parse(e.at)).toISOString(),
      // Cut again: a report handed to ingestUsageReport directly (not through the contract) is bounded too.
      reason: e.reason ? cleanStateReason(e.reason) : null,
    };
  });
}

interface Pending {
  report: UsageReport;
  receivedAt: Date;
  resolve(r: IngestResult): void;
  reject(e: unknown): void;
}

/**
 * One group in flight per process: while it writes, the next one fills up, so the group size follows the
 * load (bench/usage: ~64 reports per transaction with 64 routers posting). Several groups in flight were
 * not faster: they touch the same hot rollup rows and wait on each other's commit.
 */
const MAX_GROUP = 500;
const MAX_INFLIGHT_GROUPS = envInt("TUNA_USAGE_INGEST_GROUPS", 1, 1);
/** Beyond this many waiting reports the control plane answers 503 and the router keeps them spooled. */
const MAX_QUEUED = 20_000;
const queue: Pending[] = [];

export class IngestBusyError extends Error {
  constructor() {
    super("usage ingest is saturated");
    this.name = "IngestBusyError";
  }
}
let inflight = 0;

/**
 * A router that sees a spot backend start draining (preemption notice) reports it; the spot-preempted
 * workflow then keeps serverless warm and lets SkyServe replace the replica. One event per deployment per
 * batch group; the workflow itself is idempotent.
 */
async function reportPreemptions(events: EventParam[], teams: Map<string, string>): Promise<void> {
  const drained = new Map<string, EventParam>();
  for (const e of events) if (e.kind === "spot" && e.state === "draining") drained.set(e.dep, e);
  for (const [deploymentId, e] of drained) {
    try {
      await sendEvent("deployment/spot.preempted", { deploymentId, teamId: teams.get(deploymentId), source: "router", detail: `router ${e.router} saw ${e.be} draining at ${e.at}` });
    } catch (err) {
      console.error("[usage] could not report a preemption:", (err as Error).message);
    }
  }
}

async function writeGroup(group: Pending[]): Promise<Map<string, IngestResult>> {
  const reports = group.map((p) => p.report);
  const depIds = [...new Set(reports.flatMap((r) => [...r.entries.map((e) => e.deploymentId), ...r.events.map((e) => e.deploymentId)]))];
  const teams = await teamsOf(depIds);
  // One report per batch id inside the group: a copy resent at the same moment is a duplicate of it.
  const unique = new Map<string, UsageReport>();
  for (const r of reports) if (!unique.has(r.batchId)) unique.set(r.batchId, r);
  const out = new Map<string, IngestResult>();
  const client = await usagePool().connect();
  let fresh: UsageReport[];
  let stateEvents: EventParam[] = [];
  try {
    await client.query("BEGIN");
    const inserted = await client.query<{ batchId: string }>(INSERT_BATCHES_SQL, [
      JSON.stringify([...unique.values()].map((r) => ({ id: r.batchId, router: r.routerId }))),
      group[0].receivedAt.toISOString(),
    ]);
    fresh = inserted.rows.map((x) => unique.get(x.batchId)!);
    if (fresh.length > 0) {
      const byKey = new Map<string, RollupParam>();
      for (const r of fresh) out.set(r.batchId, { duplicate: false, skippedEntries: addRollupRows(byKey, r, teams) });
      const events = await eventRows(fresh, teams, client);
      stateEvents = events;
      await client.query(UPSERT_SQL, [JSON.stringify([...byKey.values()]), JSON.stringify(events)]);
    }
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
  await reportPreemptions(stateEvents, teams);
  if (fresh.length) budgetUsageArrived(fresh.flatMap((r) => r.entries.map((e) => teams.get(e.deploymentId)).filter((t): t is string => !!t)));
  // Last-used is batched by the router-config domain; a failure there must not fail the ingest.
  const keyIds = [...new Set(fresh.flatMap((r) => r.entries.filter((e) => e.requests > 0 && e.keyId).map((e) => e.keyId)))];
  if (keyIds.length) {
    const at = new Date(Math.max(...fresh.map((r) => Date.parse(r.periodEnd))));
    try {
      await usageLinks().recordKeysUsed(keyIds, at);
    } catch (err) {
      console.error("[usage] recordKeysUsed failed:", (err as Error).message);
    }
  }
  return out;
}

const DEADLOCK = /40P01|deadlock detected/;

const stats = { groups: 0, reports: 0 };

/** Transactions written and reports in them since start (the bench prints reports per transaction). */
export function ingestStats(): { groups: number; reports: number } {
  return { ...stats };
}

function pump(): void {
  while (inflight < MAX_INFLIGHT_GROUPS && queue.length > 0) {
    const group = queue.splice(0, MAX_GROUP);
    inflight++;
    stats.groups++;
    stats.reports += group.length;
    (async () => {
      let results: Map<string, IngestResult>;
      try {
        try {
          results = await writeGroup(group);
        } catch (e) {
          // Rows are locked in key order, so this should not happen; one retry keeps a rare one invisible.
          if (!DEADLOCK.test(String((e as Error)?.message))) throw e;
          results = await writeGroup(group);
        }
      } catch (e) {
        for (const p of group) p.reject(e);
        return;
      }
      const answered = new Set<string>();
      for (const p of group) {
        const r = results.get(p.report.batchId);
        if (r && !answered.has(p.report.batchId)) {
          answered.add(p.report.batchId);
          p.resolve(r);
        } else {
          p.resolve({ duplicate: true, skippedEntries: 0 });
        }
      }
    })().finally(() => {
      inflight--;
      pump();
    });
  }
}

/**
 * Ingests one validated report; resolves once it is committed. A duplicate batch id returns
 * `{ duplicate: true }` and changes nothing.
 */
export function ingestUsageReport(report: UsageReport, opts: { receivedAt?: Date } = {}): Promise<IngestResult> {
  if (queue.length >= MAX_QUEUED) return Promise.reject(new IngestBusyError());
  return new Promise<IngestResult>((resolve, reject) => {
    queue.push({ report, receivedAt: opts.receivedAt ?? new Date(), resolve, reject });
    pump();
  });
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** `POST /api/router/usage`: router token → zod contract → ingest. */
export async function handleUsageRequest(req: Request): Promise<Response> {
  if (req.method !== "POST") return json(405, { error: { code: "method_not_allowed", message: "Use POST." } });
  if (!(await usageLinks().routerTokenValid(req.headers.get("authorization")))) {
    return json(401, { error: { code: "unauthorized", message: "A valid router token is required." } });
  }
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    return json(400, { error: { code: "invalid_json", message: "The body is not valid JSON." } });
  }
  const parsed = usageReportSchema.safeParse(body);
  if (!parsed.success) {
    return json(400, {
      error: { code: "invalid_report", message: "The usage report does not match the contract.", issues: parsed.error.issues },
    });
  }
  try {
    const r = await ingestUsageReport(parsed.data);
    return json(200, { accepted: true, duplicate: r.duplicate, skippedEntries: r.skippedEntries });
  } catch (err) {
    // The router keeps the report spooled and resends it; the batch id makes that safe.
    if (!(err instanceof IngestBusyError)) console.error("[usage] ingest failed:", (err as Error).message);
    return new Response(JSON.stringify({ error: { code: "unavailable", message: "Usage could not be stored; resend later." } }), {
      status: 503,
      headers: { "content-type": "application/json", "retry-after": "5" },
    });
  }
}
