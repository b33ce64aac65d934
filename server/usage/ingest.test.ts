import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { useTestDatabase } from "../test/db";
import { makeTeam, makeUser } from "../test/fixtures";
import { db } from "../db";
import { handleUsageRequest, ingestUsageReport } from "./ingest";
import { priceMs } from "./cost";
import { costForDeployments, loadDeploymentsForCost } from "./pricing";
import { pruneUsage } from "./retention";
import { hist, makeApiKey, makeDeployment, makeReport } from "./testing";
import { captureEvents } from "../workflows/test/setup";

await useTestDatabase();

// The real router-token check and last-used recorder (server/routerconfig).
process.env.TUNA_ROUTER_TOKEN = "router-secret";
const TOKEN = "Bearer router-secret";

async function rollup(deploymentId: string, granularity: "minute" | "hour") {
  return db.usageRollup.findMany({ where: { deploymentId, granularity }, orderBy: [{ bucket: "asc" }, { keyId: "asc" }] });
}

/** The fetch handler on a loopback HTTP server, as the Next.js route would expose it. */
let server: Server;
let url: string;
before(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const r = await handleUsageRequest(
      new Request(`http://127.0.0.1${req.url}`, {
        method: req.method,
        headers: req.headers as Record<string, string>,
        body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
      }),
    );
    res.writeHead(r.status, Object.fromEntries(r.headers));
    res.end(Buffer.from(await r.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/router/usage`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const post = (body: unknown, auth: string | null = TOKEN) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify(body) });

async function setup() {
  const user = await makeUser("owner");
  const team = await makeTeam([{ user, role: "admin" }], "Acme");
  const dep = await makeDeployment(team.id, user.id);
  const key = await makeApiKey(team.id, user.id);
  return { user, team, dep, key };
}

describe("usage ingest", () => {
  test("rolls up per minute and hour by deployment × backend × key, merging histograms bucket-wise", async () => {
    const { team, dep, key } = await setup();
    const t = new Date("2026-11-10T10:00:10Z");
    const a = makeReport(t, [
      { keyId: key.id, deploymentId: dep.id, requests: 3, busyMs: 3000, latencyMs: 800 },
      { keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 2, busyMs: 500, latencyMs: 200 },
    ]);
    const b = makeReport(new Date("2026-11-10T10:00:40Z"), [{ keyId: key.id, deploymentId: dep.id, requests: 1, errors: 1, busyMs: 7000, latencyMs: 7000 }]);
    const c = makeReport(new Date("2026-11-10T10:01:20Z"), [{ keyId: key.id, deploymentId: dep.id, requests: 4, busyMs: 400, latencyMs: 90 }]);
    for (const r of [a, b, c]) assert.equal((await ingestUsageReport(r)).duplicate, false);

    const minutes = await rollup(dep.id, "minute");
    assert.equal(minutes.length, 3); // 10:00 serverless, 10:00 spot, 10:01 serverless
    const svl0 = minutes.find((m) => m.bucket.toISOString() === "2026-11-10T10:00:00.000Z" && m.backendKind === "serverless")!;
    assert.equal(svl0.teamId, team.id);
    assert.equal(svl0.requests, 4);
    assert.equal(svl0.errors, 1);
    assert.equal(svl0.busyMs, 10_000n);
    assert.equal(svl0.outputTokens, 200n);
    assert.deepEqual((svl0.latencyHist as { counts: number[] }).counts, hist([[800, 3], [7000, 1]]).counts);
    const hours = await rollup(dep.id, "hour");
    assert.equal(hours.length, 2); // serverless and spot, both in the 10:00 hour
    const svlH = hours.find((h) => h.backendKind === "serverless")!;
    assert.equal(svlH.requests, 8);
    assert.deepEqual((svlH.latencyHist as { counts: number[] }).counts, hist([[800, 3], [7000, 1], [90, 4]]).counts);
    const k = await db.apiKey.findUniqueOrThrow({ where: { id: key.id } });
    assert.equal(k.lastUsedAt?.toISOString(), c.periodEnd); // batched last-used, from the report's period
  });

  test("a resent batch counts once, even when resent concurrently", async () => {
    const { dep, key } = await setup();
    const r = makeReport(new Date("2026-11-10T11:00:00Z"), [{ keyId: key.id, deploymentId: dep.id, requests: 5 }]);
    assert.equal((await ingestUsageReport(r)).duplicate, false);
    assert.equal((await ingestUsageReport(r)).duplicate, true);
    const r2 = makeReport(new Date("2026-11-10T11:00:00Z"), [{ keyId: key.id, deploymentId: dep.id, requests: 7 }]);
    const results = await Promise.all(Array.from({ length: 6 }, () => ingestUsageReport(r2)));
    assert.equal(results.filter((x) => !x.duplicate).length, 1);
    const [m] = await rollup(dep.id, "minute");
    assert.equal(m.requests, 12);
    assert.equal(await db.usageBatch.count({ where: { batchId: { in: [r.batchId, r2.batchId] } } }), 2);
  });

  test("a router that was down replays its whole spool without double counting", async () => {
    const { dep, key } = await setup();
    const spool = Array.from({ length: 8 }, (_, i) =>
      makeReport(new Date(Date.UTC(2026, 10, 10, 12, i)), [{ keyId: key.id, deploymentId: dep.id, requests: i + 1 }]),
    );
    // The first three were delivered but the router died before deleting them from its spool.
    for (const r of spool.slice(0, 3)) assert.equal((await post(r)).status, 200);
    // Back up: it replays everything, oldest first, and once more after a timeout it could not tell apart.
    const replies = [];
    for (const r of [...spool, ...spool.slice(5)]) replies.push(await (await post(r)).json());
    assert.deepEqual(replies.map((x) => x.duplicate), [true, true, true, false, false, false, false, false, true, true, true]);
    assert.ok(replies.every((x) => x.accepted === true));
    const minutes = await rollup(dep.id, "minute");
    assert.equal(minutes.reduce((s, m) => s + m.requests, 0), 36); // 1 + 2 + … + 8
    const [hour] = await rollup(dep.id, "hour");
    assert.equal(hour.requests, 36);
  });

  test("HTTP: 401 without the router token, 400 with zod issues, 400 on bad JSON", async () => {
    const { dep, key } = await setup();
    const r = makeReport(new Date(), [{ keyId: key.id, deploymentId: dep.id }]);
    assert.equal((await post(r, null)).status, 401);
    assert.equal((await post(r, "Bearer wrong")).status, 401);
    const bad = await post({ ...r, batchId: "not-a-uuid", entries: [{ ...r.entries[0], requests: -1 }] });
    assert.equal(bad.status, 400);
    const body = await bad.json();
    assert.equal(body.error.code, "invalid_report");
    const paths = body.error.issues.map((i: { path: unknown[] }) => i.path.join("."));
    assert.ok(paths.includes("batchId"), paths.join(","));
    assert.ok(paths.includes("entries.0.requests"), paths.join(","));
    const junk = await fetch(url, { method: "POST", headers: { authorization: TOKEN }, body: "{not json" });
    assert.equal(junk.status, 400);
    assert.equal(await db.usageRollup.count({ where: { deploymentId: dep.id } }), 0);
    const ok = await post(r);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { accepted: true, duplicate: false, skippedEntries: 0 });
  });

  test("backend state events keep the router's reason: cut to 200 characters and cleaned, none from an older router", async () => {
    const { dep } = await setup();
    const t0 = new Date("2026-11-12T09:00:00Z");
    const ev = (backendId: string, state: "ejected" | "cold" | "ready", reason?: string) => ({
      type: "backend_state" as const, deploymentId: dep.id, backendId, state, at: t0.toISOString(), ...(reason === undefined ? {} : { reason }),
    });
    const r = makeReport(t0, [], [
      ev("spot", "ejected", "ejected: 3 consecutive failures (connect)"),
      ev("serverless", "ready"),
      // Through HTTP the contract cleans it; a NUL would otherwise fail the whole group in PostgreSQL.
      ev("other", "cold", `idle\u0000: ${"z".repeat(400)}`),
    ]);
    assert.equal((await post(r)).status, 200);
    const rows = await db.usageBackendEvent.findMany({ where: { deploymentId: dep.id }, orderBy: { id: "asc" }, select: { backendId: true, state: true, reason: true } });
    assert.deepEqual(rows.slice(0, 2), [
      { backendId: "spot", state: "ejected", reason: "ejected: 3 consecutive failures (connect)" },
      { backendId: "serverless", state: "ready", reason: null },
    ]);
    assert.equal(rows[2].reason, `idle\ufffd: ${"z".repeat(200 - 7)}`);
    // A report handed to the ingest directly (not parsed by the contract) is bounded all the same.
    await ingestUsageReport(makeReport(t0, [], [ev("direct", "cold", "w".repeat(300))]));
    const direct = await db.usageBackendEvent.findFirst({ where: { deploymentId: dep.id, backendId: "direct" }, select: { reason: true } });
    assert.equal(direct?.reason, "w".repeat(200));
  });

  test("histograms on other bounds are re-bucketed conservatively; unknown deployments are skipped", async () => {
    const { dep, key } = await setup();
    const r = makeReport(new Date("2026-11-10T13:00:00Z"), [{ keyId: key.id, deploymentId: dep.id, requests: 3 }]);
    r.entries[0].latencyMs = { bounds: [100, 700, 3000], counts: [1, 1, 0, 1] };
    r.entries.push({ ...r.entries[0], deploymentId: "no-such-deployment" });
    const res = await ingestUsageReport(r);
    assert.equal(res.skippedEntries, 1);
    const [m] = await rollup(dep.id, "minute");
    // 100 → 100, 700 → 1000, +Inf → +Inf
    const counts = (m.latencyHist as { counts: number[] }).counts;
    assert.deepEqual(counts, hist([[100, 1], [1000, 1], [1e9, 1]]).counts);
  });

  test("a spot backend reported draining starts the spot-preempted workflow, once per report", async () => {
    const sent = captureEvents();
    const { dep } = await setup();
    await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "spot", provider: "local-spot", status: "ready", replicasReady: 1 } });
    const t0 = new Date("2026-11-12T10:00:00Z");
    const ev = (backendId: string, state: "ready" | "draining") => ({ type: "backend_state" as const, deploymentId: dep.id, backendId, state, at: t0.toISOString() });
    await ingestUsageReport(makeReport(t0, [], [ev("spot", "ready"), ev("serverless", "draining")]));
    assert.deepEqual(sent.filter((e) => e.name === "deployment/spot.preempted"), [], "ready spot and a draining serverless backend are not preemptions");
    const report = makeReport(t0, [], [ev("spot", "draining"), ev("spot", "draining")]);
    await ingestUsageReport(report);
    await ingestUsageReport(report); // resent: a duplicate batch reports nothing again
    const pre = sent.filter((e) => e.name === "deployment/spot.preempted");
    assert.equal(pre.length, 1);
    assert.deepEqual({ deploymentId: pre[0].data.deploymentId, teamId: pre[0].data.teamId, source: pre[0].data.source }, { deploymentId: dep.id, teamId: dep.teamId, source: "router" });
  });

  test("the spot state at the start of a range is the last event before it, not an older one", async () => {
    const { dep } = await setup();
    await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "spot", provider: "skyserve", status: "ready", replicasReady: 1, startedAt: dep.createdAt } });
    const t0 = new Date("2026-11-12T14:00:00Z");
    const ev = (state: "ready" | "cold", at: Date) => ({ type: "backend_state" as const, deploymentId: dep.id, backendId: "spot", state, at: at.toISOString() });
    const ago = (ms: number) => new Date(t0.getTime() - ms);
    // Cold two hours before the range, ready one hour before it, nothing inside it: ready all the way through.
    await ingestUsageReport(makeReport(ago(7_200_000), [], [ev("cold", ago(7_200_000))]));
    await ingestUsageReport(makeReport(ago(3_600_000), [], [ev("ready", ago(3_600_000))]));
    const deps = await loadDeploymentsForCost({ id: dep.id });
    const [c] = await costForDeployments(deps, t0, new Date(t0.getTime() + 3_600_000), { now: new Date("2026-11-13T00:00:00Z") });
    assert.equal(c.cost.usage.spotReadyReplicaMs, 3_600_000);
    assert.equal(c.cost.actual.spot, 280_000); // one hour × $0.28/h (AWS L4 spot, static table)
  });

  test("spot time is priced at the live price in force at each moment, the static table before the first sample", async () => {
    const { team, dep } = await setup();
    await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "spot", provider: "skyserve", status: "ready", replicasReady: 1, startedAt: dep.createdAt } });
    const t0 = new Date("2026-11-14T10:00:00Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    const ev = (state: "ready" | "cold", when: Date) => ({ type: "backend_state" as const, deploymentId: dep.id, backendId: "spot", state, at: when.toISOString() });
    await ingestUsageReport(makeReport(t0, [], [ev("ready", t0)]));
    await ingestUsageReport(makeReport(at(3_600_000), [], [ev("cold", at(3_600_000))]));
    const range = [t0, at(3_600_000)] as const;
    const now = { now: new Date("2026-11-15T00:00:00Z") };
    const costOf = async () => (await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), ...range, now))[0].cost;

    // No samples: the static table (AWS L4 $0.28/h).
    assert.equal((await costOf()).actual.spot, 280_000);
    // A live $0.30 in force since yesterday, $0.40 from half past; a cheaper GCP price does not count (the
    // deployment runs on AWS only), nor does another team's sample.
    const other = await makeTeam([{ user: await makeUser("admin"), role: "admin" }], "Other");
    await db.spotPriceSample.createMany({
      data: [
        { teamId: team.id, cloud: "aws", gpu: "L4", pricePerGpuHourMicros: 300_000n, observedAt: at(-86_400_000) },
        { teamId: team.id, cloud: "aws", gpu: "L4", pricePerGpuHourMicros: 400_000n, observedAt: at(1_800_000) },
        { teamId: team.id, cloud: "gcp", gpu: "L4", pricePerGpuHourMicros: 100_000n, observedAt: at(600_000) },
        { teamId: other.id, cloud: "aws", gpu: "L4", pricePerGpuHourMicros: 900_000n, observedAt: at(900_000) },
      ],
    });
    const c = await costOf();
    assert.equal(c.actual.spot, priceMs(1_800_000, 1, 300_000) + priceMs(1_800_000, 1, 400_000));
    assert.match(c.explanation.join("\n"), /at the prices in force \(1800.0 s on aws at \$0\.3000\/GPU-h, then 1800.0 s on aws at \$0\.4000\/GPU-h\)/);
    // Per-minute buckets follow the change too: the last minute is billed at $0.40.
    const last = c.buckets.find((b) => b.t === at(3_540_000).getTime());
    assert.equal(last?.spot, priceMs(60_000, 1, 400_000));
  });

  test("spot state events become ready time priced at the spot rate; retention prunes old data", async () => {
    const { dep, key } = await setup();
    await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "spot", provider: "skyserve", status: "ready", replicasReady: 1, startedAt: dep.createdAt } });
    const t0 = new Date("2026-11-10T14:00:00Z");
    const ev = (state: "ready" | "cold", at: Date) => ({ type: "backend_state" as const, deploymentId: dep.id, backendId: "spot", state, at: at.toISOString() });
    await ingestUsageReport(makeReport(t0, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 10 }], [ev("ready", t0)]));
    // A second router sees it ready a bit later and cold a bit later: the union counts, not the sum.
    await ingestUsageReport(makeReport(new Date(t0.getTime() + 60_000), [], [ev("ready", new Date(t0.getTime() + 60_000))], "router-b"));
    await ingestUsageReport(makeReport(new Date(t0.getTime() + 600_000), [], [ev("cold", new Date(t0.getTime() + 600_000))], "router-a"));
    await ingestUsageReport(makeReport(new Date(t0.getTime() + 900_000), [], [ev("cold", new Date(t0.getTime() + 900_000))], "router-b"));
    const deps = await loadDeploymentsForCost({ id: dep.id });
    const [c] = await costForDeployments(deps, t0, new Date(t0.getTime() + 3_600_000), { now: new Date("2026-11-11T00:00:00Z") });
    assert.equal(c.cost.usage.spotReadyReplicaMs, 900_000);
    assert.equal(c.cost.actual.spot, 70_000); // 900 s × $0.28/h (AWS L4 spot, static table)
    assert.equal(c.cost.actual.serverless, 0);
    assert.equal(c.keys.get(key.id), priceMs(60_000, 1, 280_000)); // the ready minute in which its requests ran

    const pruned = await pruneUsage(new Date("2027-03-01T00:00:00Z"));
    assert.ok(pruned.minuteRollups >= 1);
    assert.equal(pruned.hourRollups, 0);
    assert.ok(pruned.batches >= 4);
    assert.equal(await db.usageRollup.count({ where: { deploymentId: dep.id, granularity: "minute" } }), 0);
    assert.equal(await db.usageRollup.count({ where: { deploymentId: dep.id, granularity: "hour" } }), 1);
    // Backend events live as long as the hour rollups (spot ready time is derived from them)…
    assert.equal(pruned.events, 0);
    assert.equal(await db.usageBackendEvent.count({ where: { deploymentId: dep.id } }), 4);
    // …and past that, the last event per router and backend survives: the state at the start of what is kept.
    await pruneUsage(new Date("2028-01-01T00:00:00Z"));
    assert.equal(await db.usageBackendEvent.count({ where: { deploymentId: dep.id } }), 2);
  });
});
