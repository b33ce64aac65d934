import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { cheapestServerless, usdToMicros } from "../catalog";
import { budgetBlocks, evaluateBudgets, monthToDateSpend, setBudget } from "./budgets";
import { priceMs } from "./cost";
import { ingestUsageReport } from "./ingest";
import { setUsageLinks } from "./links";
import { deploymentSeries } from "./metrics";
import { costForDeployments, loadDeploymentsForCost } from "./pricing";
import { pruneUsage } from "./retention";
import { makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();
setUsageLinks({ notify: async () => {}, bumpRouterConfigVersion: async () => {} });

// Spot ready time is derived from the routers' backend state events, and each router's last `ready` used to last
// until the end of whatever range was asked: after a destroy (the router drops the backend, no closing event) or
// when a router stopped reporting, spot was billed forever. These are the auditor's reproductions.
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const L4_SPOT = 280_000; // AWS L4 spot, static table
const T0 = Date.UTC(2026, 10, 2, 10, 0, 0); // 2 Nov 2026 10:00 UTC

type Events = Parameters<typeof makeReport>[2];
const state = (deploymentId: string, s: "ready" | "cold", at: number): NonNullable<Events>[number] => ({
  type: "backend_state", deploymentId, backendId: "spot", state: s, at: new Date(at).toISOString(),
});
/** A report received at `at` (the control plane's clock: the router's sign of life). */
const report = (at: number, entries: Parameters<typeof makeReport>[1], events: Events = [], routerId = "router-a") =>
  ingestUsageReport(makeReport(new Date(at), entries, events, routerId), { receivedAt: new Date(at) });
/** An idle router's empty report (heartbeat). */
const heartbeat = (at: number, routerId = "router-a") => report(at, [], [], routerId);

describe("spot ready time ends with the spot component and the deployment", () => {
  test("a destroyed deployment stops billing spot at destroyedAt although its router never closed the backend", async () => {
    const f = await makeRoleFixture("Phantom");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "phantom", createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await report(T0, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 100, busyMs: 100_000 }], [state(dep.id, "ready", T0)]);
    await db.deployment.update({ where: { id: dep.id }, data: { status: "destroyed", destroyedAt: new Date(T0 + HOUR) } });
    await setBudget(f.team.id, { userId: f.admin.id, label: "admin" }, { scope: "team", monthlyLimitMicros: 20_000_000 }, { now: new Date(T0 + 2 * HOUR) });

    const oneHour = priceMs(HOUR, 1, L4_SPOT); // $0.28
    for (const days of [0.05, 1, 10, 28]) {
      const now = T0 + HOUR + days * DAY;
      await heartbeat(now - MIN); // the router is alive and well: it just dropped the destroyed backend
      const s = (await monthToDateSpend([f.team.id], new Date(now))).get(f.team.id)!;
      assert.equal(s.costs[0].cost.usage.spotReadyReplicaMs, HOUR, `destroy + ${days} d`);
      assert.equal(s.total, oneHour, `destroy + ${days} d: month-to-date was $67 at +10 d`);
    }
    // The $20 team budget is not tripped by spot time after the destroy (it blocked the team before).
    const r = await evaluateBudgets(new Date(T0 + HOUR + 10 * DAY), { teamIds: [f.team.id] });
    assert.equal(r.alerts.length, 0);
    assert.equal(r.newlyBlocked.length, 0);
    const blocks = await budgetBlocks(new Date(T0 + HOUR + 10 * DAY));
    assert.equal([...blocks.deployments.keys()].includes(dep.id), false);
  });

  test("spot ready time outside every life of the spot component is not billed", async () => {
    const f = await makeRoleFixture("SpotLives");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "lives", mode: "spot", serverlessProvider: null, serverlessGpu: null, createdAt: new Date(T0 - HOUR) });
    // The spot cluster lived T0−1h → T0+1h (seen gone), relaunched at T0+3h and still up.
    await db.deploymentComponent.create({
      data: {
        deploymentId: dep.id, kind: "spot", provider: "skypilot", status: "ready", startedAt: new Date(T0 + 3 * HOUR),
        earlierLives: { create: { startedAt: new Date(T0 - HOUR), endedAt: new Date(T0 + HOUR) } },
      },
    });
    // The router saw it ready from T0 and never said otherwise.
    await report(T0, [], [state(dep.id, "ready", T0)], "router-l");
    const now = T0 + 5 * HOUR;
    await heartbeat(now - MIN, "router-l");
    const [c] = await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), new Date(T0 - HOUR), new Date(now), { now: new Date(now) });
    assert.equal(c.cost.usage.spotReadyReplicaMs, HOUR + 2 * HOUR, "T0 → T0+1h and T0+3h → T0+5h");
    assert.equal(c.cost.actual.spot, priceMs(3 * HOUR, 1, L4_SPOT));
    // The chart's summary and points agree.
    const series = await deploymentSeries(f.team.id, { deploymentId: dep.id, from: new Date(T0 - HOUR), to: new Date(now) }, { now: new Date(now) });
    assert.equal(series.summary.usage.spotReadyReplicaMs, 3 * HOUR);
    const chartSum = series.points.reduce((n, p) => n + (p.cost.spot ?? 0), 0);
    assert.ok(Math.abs(chartSum - priceMs(3 * HOUR, 1, L4_SPOT)) <= series.points.length, `chart sum ${chartSum}`); // each point rounds
  });
});

describe("a router's view ends at its last sign of life", () => {
  test("a router that stops reporting stops billing one heartbeat after its last report", async () => {
    const f = await makeRoleFixture("Crash");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "crash", createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await report(T0, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 10, busyMs: 10_000 }], [state(dep.id, "ready", T0)], "router-c");
    for (let m = 1; m <= 60; m++) await heartbeat(T0 + m * MIN, "router-c"); // idle for an hour, then the host is gone
    const costAt = async (now: number) =>
      (await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), new Date(Date.UTC(2026, 10, 1)), new Date(now), { now: new Date(now) }))[0].cost;

    // Within the grace the router is taken to be alive: ready up to now.
    assert.equal((await costAt(T0 + 62 * MIN)).usage.spotReadyReplicaMs, 62 * MIN);
    // Past it, the view ends one heartbeat after the last report, whatever the range.
    for (const now of [T0 + 64 * MIN, T0 + 10 * DAY]) {
      const c = await costAt(now);
      assert.equal(c.usage.spotReadyReplicaMs, 61 * MIN, `now = T0 + ${(now - T0) / MIN} min`);
      assert.equal(c.actual.spot, priceMs(61 * MIN, 1, L4_SPOT));
    }
    // Next month: the "last event before the range" still reads `ready`, but the router was gone long before.
    const dec = Date.UTC(2026, 11, 1);
    const [d] = await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), new Date(dec), new Date(dec + 14 * DAY), { now: new Date(dec + 14 * DAY) });
    assert.equal(d.cost.usage.spotReadyReplicaMs, 0);
  });

  test("router restarted under a new id: the old id's phantom `ready` does not bill, in this month or the next", async () => {
    const f = await makeRoleFixture("Restart");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "restart", createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    // host-111 sees spot ready at T0 and dies; host-222 starts at T0+61 min, sees it ready, then cold (scale to zero) at T0+2h.
    await report(T0, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 10, busyMs: 10_000 }], [state(dep.id, "ready", T0)], "host-111-aaaa");
    await report(T0 + 61 * MIN, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 10, busyMs: 10_000 }], [state(dep.id, "ready", T0 + 61 * MIN)], "host-222-bbbb");
    await report(T0 + 2 * HOUR, [], [state(dep.id, "cold", T0 + 2 * HOUR)], "host-222-bbbb");
    const nov = async (now: number) => {
      await heartbeat(now - MIN, "host-222-bbbb");
      return (await monthToDateSpend([f.team.id], new Date(now))).get(f.team.id)!;
    };
    for (const now of [T0 + 3 * HOUR, T0 + 20 * DAY]) {
      const s = await nov(now);
      // host-111: T0 → its last report + 1 min. host-222: T0+61 min → T0+2h.
      assert.equal(s.costs[0].cost.usage.spotReadyReplicaMs, MIN + 59 * MIN);
      assert.equal(s.total, priceMs(HOUR, 1, L4_SPOT));
    }
    const dec = await nov(Date.UTC(2026, 11, 15));
    assert.equal(dec.costs[0].cost.usage.spotReadyReplicaMs, 0);
    assert.equal(dec.total, 0);
  });

  test("after the batch ids are pruned a silent router's last sign of life is still known", async () => {
    const f = await makeRoleFixture("Pruned");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "pruned", createdAt: new Date(T0 - HOUR) });
    await report(T0, [], [state(dep.id, "ready", T0)], "router-p");
    for (let m = 10; m <= 60; m += 10) await heartbeat(T0 + m * MIN, "router-p");
    const now = T0 + 10 * DAY; // batch ids are kept 7 days
    const readyMs = async () =>
      (await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), new Date(T0 - HOUR), new Date(now), { now: new Date(now) }))[0].cost.usage
        .spotReadyReplicaMs;
    assert.equal(await readyMs(), 61 * MIN);
    const pruned = await pruneUsage(new Date(now));
    assert.ok(pruned.batches > 0, "older batches are pruned");
    assert.equal(await db.usageBatch.count({ where: { routerId: "router-p" } }), 1, "the router's last batch is kept");
    assert.equal(await readyMs(), 61 * MIN);
    // Batches pruned before this rule existed: the router's last event is its last sign of life (never billed forever).
    await db.usageBatch.deleteMany({ where: { routerId: "router-p" } });
    assert.equal(await readyMs(), MIN);
  });
});

describe("all-serverless baseline", () => {
  test("warm workers of the baseline are billed for the deployment's live time, not the whole range", async () => {
    const f = await makeRoleFixture("Baseline");
    const dep = await makeDeployment(f.team.id, f.admin.id, {
      slug: "spot-only", mode: "spot", serverlessProvider: null, serverlessGpu: null, createdAt: new Date(T0),
      spec: { serverlessScaling: { minWorkers: 1, maxWorkers: 2, concurrency: 32, idleTimeoutS: 60, coldStartTimeoutS: 600 } },
    });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await report(T0 + 30 * MIN, [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 100, busyMs: 100_000 }], [state(dep.id, "ready", T0)], "router-b");
    await report(T0 + HOUR, [], [state(dep.id, "cold", T0 + HOUR)], "router-b");
    await db.deployment.update({ where: { id: dep.id }, data: { status: "destroyed", destroyedAt: new Date(T0 + HOUR) } });
    const now = T0 + 10 * DAY;
    const s = (await monthToDateSpend([f.team.id], new Date(now))).get(f.team.id)!;
    const c = s.costs[0].cost;
    assert.equal(c.actual.total, priceMs(HOUR, 1, L4_SPOT));
    // One warm worker for the hour the deployment lived covers all of its traffic (100 s busy in one minute).
    const cheapest = cheapestServerless("L4").price;
    assert.ok(cheapest !== null && cheapest !== undefined);
    assert.equal(c.counterfactual.allServerless, priceMs(HOUR, 1, usdToMicros(cheapest)), "was 10 days of a warm worker");
    assert.ok((c.savings?.vsServerlessPct ?? 100) < 99, `saving ${c.savings?.vsServerlessPct}% (was 99.8%)`);
  });
});
