// Dashboard benchmark (a script, not a test): seeds a fresh embedded PostgreSQL with 10,000 deployments and
// 1,000,000 audit rows for one team (plus a second team as noise) and the routers' backend state history of its
// serving deployments, then times the server work behind the
// deployments list and the audit log pages — the service functions, and the tRPC procedures (membership
// check included) — and prints p50/p95/p99 next to a `SELECT 1` baseline from the same run.
// It never fails on absolute numbers. Run: `npx tsx bench/dashboard/run.ts [--iterations 200]`.
import { performance } from "node:perf_hooks";
import pg from "pg";
import { startTestDatabase } from "../../scripts/test-db";
import { withDatabase } from "../../server/db/embedded";

const argv = process.argv.slice(2);
const arg = (name: string, d: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const ITERATIONS = arg("iterations", 200);
const WARMUP = arg("warmup", 20);
const DEPLOYMENTS = arg("deployments", 10_000);
const AUDIT_ROWS = arg("audit-rows", 1_000_000);
// Routers' backend state events per router × backend of each serving deployment (3 routers, 2 backends).
const ROUTER_EVENTS = arg("router-events", 100);
const TEAM = "team_bench";
const OTHER = "team_other";
const log = (s: string) => console.error(`[bench] ${s}`);

const server = await startTestDatabase(log);
const dbName = "tuna_bench_dashboard";
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}" TEMPLATE "${server.templateDb}"`);
await admin.end();
process.env.DATABASE_URL = withDatabase(server.adminUrl, dbName);

try {
  const seed = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await seed.connect();
  const t0 = performance.now();
  await seed.query(`
    INSERT INTO "User" (id, name, email, "updatedAt")
      SELECT 'user_' || i, 'Bench user ' || i, 'bench' || i || '@example.test', now() FROM generate_series(1, 6) i;
    INSERT INTO "Team" (id, name, slug) VALUES ('${TEAM}', 'Bench', 'bench'), ('${OTHER}', 'Other', 'other');
    INSERT INTO "Membership" (id, "teamId", "userId", role)
      SELECT 'mem_' || i, '${TEAM}', 'user_' || i, (CASE WHEN i = 1 THEN 'admin' ELSE 'developer' END)::"Role" FROM generate_series(1, 5) i;
    INSERT INTO "Membership" (id, "teamId", "userId", role) VALUES ('mem_other', '${OTHER}', 'user_6', 'admin');`);
  // Deployments: DEPLOYMENTS rows in the bench team over a year, a fifth as many in the other team.
  const statuses = ["destroyed", "destroyed", "destroyed", "active", "failed", "rejected", "expired", "degraded", "queued", "deploying"];
  const providers = ["modal", "runpod", "cloudrun", "azure", "local"];
  const gpus = ["T4", "L4", "A10G", "A100-80GB", "H100"];
  const modes = ["hybrid", "serverless", "spot"];
  const arr = (xs: string[]) => `ARRAY[${xs.map((x) => `'${x}'`).join(",")}]`;
  for (const [team, n, prefix] of [[TEAM, DEPLOYMENTS, "d"], [OTHER, Math.round(DEPLOYMENTS / 5), "o"]] as const) {
    await seed.query(`
      INSERT INTO "Deployment" (id, "teamId", slug, model, "servedModelName", mode, status, "serverlessProvider", "serverlessGpu", "spotGpu",
                                "spotClouds", "gpuCount", spec, "estimatedCostPerHourMicros", "createdById", "createdAt", "updatedAt")
      SELECT '${prefix}' || lpad(i::text, 8, '0'), '${team}', 'model-' || i, 'Qwen/Qwen3-0.6B', 'model-' || i,
             (${arr(modes)})[1 + i % 3]::"DeploymentMode", (${arr(statuses)})[1 + i % 10]::"DeploymentStatus",
             CASE WHEN i % 3 = 2 THEN NULL ELSE (${arr(providers)})[1 + i % 5] END, (${arr(gpus)})[1 + i % 5], (${arr(gpus)})[1 + (i / 7) % 5],
             ARRAY['aws'], 1, '{}'::jsonb, 100000 + (i % 50) * 10000,
             '${team === TEAM ? "user_' || (1 + i % 5)" : "user_6'"}, now() - make_interval(secs => (${n} - i) * 3153.6), now()
      FROM generate_series(1, ${n}) i`);
  }
  log(`deployments seeded (${Math.round(performance.now() - t0)} ms)`);
  // Audit: AUDIT_ROWS rows in the bench team (seq 1..N, time increasing with seq; every 100,000th is a rare
  // action), 10% of that in the other team.
  const actions = ["deployment.request", "deployment.destroy", "member.invite", "member.join", "secret.use", "secret.create", "apikey.create", "approval.approve", "policy.update", "budget.update"];
  for (const [team, n] of [[TEAM, AUDIT_ROWS], [OTHER, Math.round(AUDIT_ROWS / 10)]] as const) {
    await seed.query(`
      INSERT INTO "AuditLog" (id, "teamId", seq, "actorId", "actorLabel", action, "targetType", "targetId", metadata, ip, "createdAt", "prevHash", hash)
      SELECT '${team}_a' || i, '${team}', i, ${team === TEAM ? "'user_' || (1 + i % 5)" : "'user_6'"}, 'bench' || (1 + i % 5) || '@example.test',
             CASE WHEN i % 100000 = 0 THEN 'team.rename' ELSE (${arr(actions)})[1 + i % 10] END, 'deployment', 'd' || lpad((1 + i % ${DEPLOYMENTS})::text, 8, '0'), '{"bench":true}'::jsonb, '127.0.0.1',
             now() - make_interval(secs => (${n} - i) * 31.536), md5((i - 1)::text), md5(i::text)
      FROM generate_series(1, ${n}) i`);
  }
  // Routers' view: each serving (active/degraded) deployment of the bench team has 3 live routers reporting its
  // 2 backends, each with ROUTER_EVENTS state changes (cold → warming → ready cycles) over the 400 days events
  // are kept; the deployments list with `withRouterView` reads the latest per router × backend.
  await seed.query(`
    INSERT INTO "UsageBatch" ("batchId", "routerId", "receivedAt") SELECT 'batch_r' || r, 'router_' || r, now() FROM generate_series(1, 3) r;
    INSERT INTO "UsageBackendEvent" ("batchId", "routerId", "deploymentId", "backendId", "backendKind", state, replicas, at)
      SELECT 'batch_r' || r, 'router_' || r, d.id, d.id || '_' || k, k, (ARRAY['cold','warming','ready'])[1 + e % 3], 1,
             now() - make_interval(secs => (${ROUTER_EVENTS} - e) * 34560000.0 / ${ROUTER_EVENTS} + r)
      FROM "Deployment" d, generate_series(1, 3) r, unnest(ARRAY['serverless','spot']) k, generate_series(1, ${ROUTER_EVENTS}) e
      WHERE d."teamId" = '${TEAM}' AND d.status IN ('active', 'degraded')`);
  log(`router events seeded (${Math.round(performance.now() - t0)} ms)`);
  await seed.query(`ANALYZE`);
  await seed.end();
  log(`seeded ${DEPLOYMENTS} + ${Math.round(DEPLOYMENTS / 5)} deployments and ${AUDIT_ROWS} + ${Math.round(AUDIT_ROWS / 10)} audit rows (${Math.round(performance.now() - t0)} ms)`);

  const { db } = await import("../../server/db");
  const { listDeployments } = await import("../../server/deployments");
  const { listAudit } = await import("../../server/audit");
  const { appRouter, createCaller } = await import("../../server/trpc");
  const { costForDeployments, loadDeploymentsForCost } = await import("../../server/usage/pricing");
  const caller = createCaller({ user: { id: "user_1", email: "bench1@example.test" }, teamId: TEAM, ip: "127.0.0.1", userAgent: "bench" });
  // Looked up by name so the script runs whichever routers are mounted.
  const procs = caller as unknown as Record<string, Record<string, (input: unknown) => Promise<unknown>>>;
  const mounted = (path: string) => path in (appRouter._def.procedures as Record<string, unknown>);
  const viaTrpc = (router: string, proc: string, input: unknown) => () => procs[router][proc](input);

  const firstDeployments = await listDeployments(TEAM, { limit: 50 });
  let deepCursor: string | null = firstDeployments.nextCursor;
  for (let i = 0; i < 40 && deepCursor; i++) deepCursor = (await listDeployments(TEAM, { limit: 50, cursor: deepCursor })).nextCursor;
  const midSeq = Math.round(AUDIT_ROWS / 2);
  const monthAgo = new Date(Date.now() - 30 * 86_400_000);

  const activeIds = (await listDeployments(TEAM, { limit: 50, status: "active" })).items.map((d) => d.id);
  const activeForCost = await loadDeploymentsForCost({ id: { in: activeIds } });
  const monthStart = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1));
  type Case = { page: string; name: string; fn: () => Promise<unknown> };
  const cases: Case[] = [
    { page: "baseline", name: "SELECT 1", fn: () => db.$queryRaw`SELECT 1` },
    { page: "deployments", name: "listDeployments newest, page 1", fn: () => listDeployments(TEAM, { limit: 50 }) },
    { page: "deployments", name: "listDeployments newest, page 41 (cursor)", fn: () => listDeployments(TEAM, { limit: 50, cursor: deepCursor }) },
    { page: "deployments", name: "listDeployments oldest", fn: () => listDeployments(TEAM, { limit: 50, sort: "oldest" }) },
    { page: "deployments", name: "listDeployments by slug", fn: () => listDeployments(TEAM, { limit: 50, sort: "slug" }) },
    { page: "deployments", name: "listDeployments status=active", fn: () => listDeployments(TEAM, { limit: 50, status: "active" }) },
    { page: "deployments", name: "listDeployments status∈live set", fn: () => listDeployments(TEAM, { limit: 50, status: ["queued", "deploying", "active", "degraded"] }) },
    { page: "deployments", name: "listDeployments provider=runpod", fn: () => listDeployments(TEAM, { limit: 50, provider: "runpod" }) },
    { page: "deployments", name: "listDeployments gpu=H100", fn: () => listDeployments(TEAM, { limit: 50, gpu: "H100" }) },
    { page: "deployments", name: "listDeployments owner + status + gpu", fn: () => listDeployments(TEAM, { limit: 50, ownerId: "user_3", status: "destroyed", gpu: "L4" }) },
    { page: "deployments", name: "tRPC deployments.list (with membership check)", fn: viaTrpc("deployments", "list", { limit: 50 }) },
    { page: "deployments", name: "tRPC deployments.list status+provider", fn: viaTrpc("deployments", "list", { limit: 50, status: "active", provider: "modal" }) },
    { page: "deployments", name: "tRPC deployments.list withRouterView", fn: viaTrpc("deployments", "list", { limit: 50, withRouterView: true }) },
    { page: "deployments", name: "tRPC deployments.list status=active withRouterView", fn: viaTrpc("deployments", "list", { limit: 50, status: "active", withRouterView: true }) },
    { page: "usage", name: "month-to-date cost of 50 active deployments", fn: () => costForDeployments(activeForCost, monthStart, new Date()) },
    { page: "audit", name: "listAudit newest, page 1", fn: () => listAudit({ teamId: TEAM, limit: 50 }) },
    { page: "audit", name: "listAudit cursor mid-log", fn: () => listAudit({ teamId: TEAM, limit: 50, cursor: midSeq }) },
    { page: "audit", name: "listAudit action prefix 'secret.'", fn: () => listAudit({ teamId: TEAM, limit: 50, action: "secret." }) },
    { page: "audit", name: "listAudit action exact 'policy.update'", fn: () => listAudit({ teamId: TEAM, limit: 50, action: "policy.update" }) },
    { page: "audit", name: "listAudit rare action 'team.' (10 rows)", fn: () => listAudit({ teamId: TEAM, limit: 50, action: "team." }) },
    { page: "audit", name: "listAudit action with no rows", fn: () => listAudit({ teamId: TEAM, limit: 50, action: "nothing." }) },
    { page: "audit", name: "listAudit actor", fn: () => listAudit({ teamId: TEAM, limit: 50, actorId: "user_4" }) },
    { page: "audit", name: "listAudit last 30 days", fn: () => listAudit({ teamId: TEAM, limit: 50, from: monthAgo }) },
    { page: "audit", name: "listAudit range a year ago (old rows)", fn: () => listAudit({ teamId: TEAM, limit: 50, from: new Date(Date.now() - 365 * 86_400_000), to: new Date(Date.now() - 330 * 86_400_000) }) },
    { page: "audit", name: "listAudit actor + action + range", fn: () => listAudit({ teamId: TEAM, limit: 50, actorId: "user_2", action: "deployment.", from: monthAgo }) },
    { page: "audit", name: "tRPC audit.list (with membership check)", fn: viaTrpc("audit", "list", { limit: 50 }) },
  ];

  const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  const rows: Array<{ page: string; name: string; p50: number; p95: number; p99: number; x: number }> = [];
  let baseline = 0;
  for (const c of cases) {
    const m = /^tRPC (\S+)/.exec(c.name);
    if (m && !mounted(m[1])) {
      log(`skipping "${c.name}": ${m[1]} is not mounted`);
      continue;
    }
    for (let i = 0; i < WARMUP; i++) await c.fn();
    const times: number[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const s = performance.now();
      await c.fn();
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    const r = { page: c.page, name: c.name, p50: q(times, 50), p95: q(times, 95), p99: q(times, 99), x: 0 };
    if (c.page === "baseline") baseline = r.p95;
    r.x = baseline ? r.p95 / baseline : 0;
    rows.push(r);
  }

  const f = (n: number) => n.toFixed(2).padStart(8);
  console.log(`\nDashboard server time, ${ITERATIONS} iterations each after ${WARMUP} warm-up (ms); seed: ${DEPLOYMENTS} deployments, ${AUDIT_ROWS} audit rows in the measured team, ${ROUTER_EVENTS} router events per router × backend of each serving deployment (3 × 2)\n`);
  console.log(`| page        | query                                              |      p50 |      p95 |      p99 | p95 / SELECT 1 |`);
  console.log(`|-------------|----------------------------------------------------|----------|----------|----------|----------------|`);
  for (const r of rows) console.log(`| ${r.page.padEnd(11)} | ${r.name.padEnd(50)} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.p99)} | ${r.x.toFixed(1).padStart(13)}× |`);
  const worst = (page: string) => Math.max(...rows.filter((r) => r.page === page).map((r) => r.p95));
  console.log(`\nworst p95: deployments list ${worst("deployments").toFixed(2)} ms, audit log ${worst("audit").toFixed(2)} ms (target < 150 ms)`);
  await db.$disconnect();
} finally {
  await server.stop();
}
