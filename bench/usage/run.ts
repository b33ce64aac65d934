// Usage ingest benchmark (a script, not a test): realistic router reports ingested as fast as possible by
// several concurrent writers against the embedded PostgreSQL, compared in the same run with a baseline that
// only inserts the batch id (the floor any idempotent ingest pays). Prints a table; never fails on numbers.
// Run: `node --import tsx bench/usage/run.ts [--duration-s 20] [--writers 64] [--deployments 200]`. Writers stand for
// routers posting at the same time (each waits for its answer before sending the next report).
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import pg from "pg";
import { startTestDatabase } from "../../scripts/test-db";

const argv = process.argv.slice(2);
const arg = (name: string, d: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const DURATION_MS = arg("duration-s", 20) * 1000;
const BASELINE_MS = arg("baseline-s", 5) * 1000;
const WRITERS = arg("writers", 64);
const DEPLOYMENTS = arg("deployments", 200);
const KEYS_PER_TEAM = 5;
const ROUTERS = 50;

const log = (s: string) => console.error(`[bench] ${s}`);
const server = await startTestDatabase(log);
const dbName = `bench_usage_${process.pid}`;
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}" TEMPLATE "${server.templateDb}"`);
await admin.end();
const url = new URL(server.adminUrl);
url.pathname = `/${dbName}`;
process.env.DATABASE_URL = url.toString();
process.env.TUNA_USAGE_POOL = String(WRITERS);

// Imported after DATABASE_URL is set (the Prisma client reads it on first use).
const { db } = await import("../../server/db");
const { ingestStats, ingestUsageReport } = await import("../../server/usage/ingest");

const { CANONICAL_BOUNDS_MS } = await import("../../server/usage/histogram");
const { closeUsagePool, usagePool } = await import("../../server/usage/pool");
const { usageReportSchema } = await import("@tuna/router-service/contract");
// Last-used is written by the router-config domain at most once a minute per key: keep it in the loop.

// ── Fixtures: teams, deployments (serverless + spot backends), keys.
const user = await db.user.create({ data: { email: `bench-${process.pid}@example.test` } });
const deps: Array<{ id: string; keys: string[] }> = [];
for (let t = 0; t < DEPLOYMENTS / 4; t++) {
  const team = await db.team.create({ data: { name: `Bench ${t}`, slug: `bench-${process.pid}-${t}` } });
  const keys: string[] = [];
  for (let k = 0; k < KEYS_PER_TEAM; k++) {
    const key = await db.apiKey.create({ data: { teamId: team.id, label: `k${k}`, prefix: "tuna_sk_b", hash: randomUUID() + randomUUID(), createdById: user.id } });
    keys.push(key.id);
  }
  for (let d = 0; d < 4; d++) {
    const dep = await db.deployment.create({
      data: { teamId: team.id, slug: `d${d}`, model: "m", servedModelName: "m", mode: "hybrid", status: "active", serverlessProvider: "local", serverlessGpu: "L4", spotGpu: "L4", spec: {}, createdById: user.id },
    });
    deps.push({ id: dep.id, keys });
  }
}
log(`${deps.length} deployments, ${deps.length / 4 * KEYS_PER_TEAM} keys`);

const pick = <T>(a: T[]) => a[Math.floor(Math.random() * a.length)];
function histogram(n: number) {
  const counts = new Array(CANONICAL_BOUNDS_MS.length + 1).fill(0);
  for (let i = 0; i < n; i++) counts[4 + Math.floor(Math.random() * 6)]++;
  return { bounds: [...CANONICAL_BOUNDS_MS], counts };
}

/** A router's 5-second report: a few key × deployment × backend entries, now and then a state event. */
function report() {
  const end = Date.now();
  const entries = [];
  const n = 2 + Math.floor(Math.random() * 5);
  for (let i = 0; i < n; i++) {
    const d = pick(deps);
    const kind = Math.random() < 0.7 ? "spot" : "serverless";
    const requests = 1 + Math.floor(Math.random() * 40);
    entries.push({
      keyId: pick(d.keys), deploymentId: d.id, backendId: kind, backendKind: kind as "spot" | "serverless",
      requests, errors: Math.random() < 0.05 ? 1 : 0, inputTokens: requests * 400, outputTokens: requests * 150,
      latencyMs: histogram(requests), ttftMs: histogram(requests), busyMs: requests * 900,
    });
  }
  const events =
    Math.random() < 0.02
      ? [{ type: "backend_state" as const, deploymentId: pick(deps).id, backendId: "spot", state: pick(["ready", "cold", "warming"] as const), at: new Date(end).toISOString() }]
      : [];
  return { routerId: `router-${Math.floor(Math.random() * ROUTERS)}`, batchId: randomUUID(), periodStart: new Date(end - 5000).toISOString(), periodEnd: new Date(end).toISOString(), configVersion: 1, entries, events };
}

function pct(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
}

async function drive(name: string, ms: number, one: () => Promise<unknown>) {
  const lat: number[] = [];
  let errors = 0;
  const stopAt = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (performance.now() < stopAt) {
        const s = performance.now();
        try {
          await one();
          lat.push(performance.now() - s);
        } catch (e) {
          errors++;
          if (errors < 5) log(`${name}: ${(e as Error).message.slice(0, 200)}`);
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { name, ops: lat.length, rate: lat.length / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors };
}

// Warm-up: pool connections, team cache, JIT.
await drive("warm-up", 1500, () => ingestUsageReport(report()));

// Baseline: one INSERT of the batch id per report (autocommit), on the same driver the ingest uses.
const baseline = await drive("baseline: INSERT batch id only", BASELINE_MS, () =>
  usagePool().query(`INSERT INTO "UsageBatch" ("batchId", "routerId") VALUES ($1, 'bench') ON CONFLICT DO NOTHING`, [randomUUID()]),
);
// What the HTTP handler does per report after auth: parse the body, validate it with the router's contract, ingest.
const before = ingestStats();
const full = await drive("parse + validate + ingest (full)", DURATION_MS, () =>
  ingestUsageReport(usageReportSchema.parse(JSON.parse(JSON.stringify(report())))),
);
const afterFull = ingestStats();
const dupReports = Array.from({ length: 200 }, () => report());
for (const r of dupReports) await ingestUsageReport(r);
const dup = await drive("resent batch (duplicate)", BASELINE_MS, () => ingestUsageReport(pick(dupReports)));

const rows = await db.usageRollup.count();
const [{ n: batches }] = await db.$queryRaw<Array<{ n: bigint }>>`SELECT count(*) AS n FROM "UsageBatch"`;
console.log(`\nusage ingest, ${WRITERS} concurrent writers, ${cpus().length} CPU(s), embedded PostgreSQL, ${deps.length} deployments`);
console.log("| case | reports | reports/s | p50 ms | p99 ms | errors |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of [baseline, full, dup]) {
  console.log(`| ${r.name} | ${r.ops} | ${r.rate.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
}
console.log(`\nfull ingest reached ${full.rate.toFixed(0)} reports/s (${((full.rate / baseline.rate) * 100).toFixed(0)}% of the batch-id-only baseline; target 1000/s)`);
console.log(
  `reports per transaction (group commit): ${((afterFull.reports - before.reports) / Math.max(1, afterFull.groups - before.groups)).toFixed(1)}; rollup rows: ${rows}; batch ids: ${batches}`,
);

(await import("../../server/usage/budgets")).setBudgetEvaluationDelay(null);
await new Promise((r) => setTimeout(r, 200)); // let a budget evaluation scheduled by the last reports finish
await db.$disconnect();
await closeUsagePool();
const d = new pg.Client({ connectionString: server.adminUrl });
await d.connect();
await d.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
await d.end();
await server.stop();

