import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { priceMs } from "./cost";
import { ingestUsageReport } from "./ingest";
import { deploymentSeries, teamOverview } from "./metrics";
import { pruneUsage } from "./retention";
import { LOCAL_L4_MICROS_PER_HOUR, makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();

// The same usage must cost the same whichever chart range shows it, and must keep costing the same after the
// retention cron has run: dashboards, budgets and the savings claim all read these figures.
const S = 1000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const L4_SPOT = 280_000; // AWS L4 spot, static table

/** One 2-s serverless request per minute from `start` for `minutes` minutes (the worker never idles 60 s). */
async function steadyTraffic(deploymentId: string, keyId: string, start: number, minutes: number) {
  await Promise.all(
    Array.from({ length: minutes }, (_, i) =>
      ingestUsageReport(makeReport(new Date(start + i * MIN + 10 * S), [{ keyId, deploymentId, requests: 1, busyMs: 2 * S }])),
    ),
  );
}

const chartSum = (s: Awaited<ReturnType<typeof deploymentSeries>>) => s.points.reduce((n, p) => n + (p.cost.total ?? 0), 0);

describe("cost history", () => {
  test("serverless cost does not depend on the chart range: 25 h, 7 day and lifetime views and the overview agree", async () => {
    const f = await makeRoleFixture("Granularity");
    const day0 = Date.UTC(2026, 10, 10);
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "steady", mode: "serverless", spotGpu: null, spotClouds: [], createdAt: new Date(day0 - DAY) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await steadyTraffic(dep.id, key.id, day0, 24 * 60);
    const now = new Date(day0 + DAY + HOUR);
    const view = (from: number) => deploymentSeries(f.team.id, { deploymentId: dep.id, from: new Date(from), to: now }, { now });
    const v25h = await view(now.getTime() - 25 * HOUR);
    const v7d = await view(now.getTime() - 7 * DAY);
    const life = await view(day0 - DAY);
    assert.equal(v25h.bucketMs, 15 * MIN);
    assert.equal(v7d.bucketMs, HOUR);

    // Up all day: 1439 minutes of 60 s, then the last request's 2 s and its 60-s idle window.
    const expected = priceMs((1439 * 60 + 62) * S, 1, LOCAL_L4_MICROS_PER_HOUR);
    assert.equal(v25h.summary.actual.total, expected); // $16.32
    assert.equal(v7d.summary.actual.total, expected, "the 7-day view (1-h points) prices from minute rollups too (was $0.816)");
    assert.equal(life.summary.actual.total, expected);
    assert.equal(v7d.summary.counterfactual.allServerless, v25h.summary.counterfactual.allServerless);
    assert.deepEqual(v7d.summary.savings, v25h.summary.savings);
    assert.equal((await teamOverview(f.team.id, { now })).spendMicros, expected);
    // The 1-h points of the 7-day chart add up to the figure (to the idle seconds cut at each point's end).
    assert.ok(Math.abs(chartSum(v7d) - expected) < 1000, `chart sum ${chartSum(v7d)}`);
    assert.equal(v7d.summary.approximateBefore, null);
    assert.equal(v7d.source, "minute");
  });

  test("past minute retention: hour rollups price the old part only, flagged as an estimate; pruning changes nothing", async () => {
    const f = await makeRoleFixture("Older");
    const day0 = Date.UTC(2026, 8, 1);
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "older", mode: "serverless", spotGpu: null, spotClouds: [], createdAt: new Date(day0) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    // Two busy hours on day 0 (40 days before `now`) and two on day 39.
    await steadyTraffic(dep.id, key.id, day0 + 10 * HOUR, 120);
    await steadyTraffic(dep.id, key.id, day0 + 39 * DAY + 10 * HOUR, 120);
    const now = new Date(day0 + 40 * DAY);
    const view = (from: number, to = now.getTime()) => deploymentSeries(f.team.id, { deploymentId: dep.id, from: new Date(from), to: new Date(to) }, { now });

    const recent = await view(now.getTime() - 7 * DAY);
    assert.equal(recent.summary.usage.serverlessBilledWorkerMs, (119 * 60 + 62) * S);
    assert.equal(recent.summary.approximateBefore, null);

    const old = await view(day0, day0 + DAY);
    assert.equal(old.source, "hour");
    assert.equal(old.summary.usage.requests, 120);
    assert.ok(old.summary.approximateBefore !== null);
    assert.ok(old.summary.explanation.some((l) => /hour rollups/.test(l) && /estimate/.test(l)), old.summary.explanation.join("\n"));
    // The estimate of 2 busy hours is of the order of the truth (2 h), not the 2 × (2 min + 1 min) hour
    // buckets read as one run of requests would give.
    const oldMs = old.summary.usage.serverlessBilledWorkerMs;
    assert.ok(oldMs > 1.2 * HOUR && oldMs <= 2 * HOUR + MIN, `old billed ${oldMs / MIN} min`);

    // Lifetime: the recent part exactly as in the 7-day view, the old part as estimated.
    const life = await view(day0);
    assert.equal(life.source, "mixed");
    assert.equal(life.summary.usage.serverlessBilledWorkerMs, recent.summary.usage.serverlessBilledWorkerMs + oldMs);
    assert.equal(life.summary.usage.requests, 240);
    assert.ok(life.points.slice(0, 24).some((p) => p.approximate));
    assert.ok(life.points.slice(-24).every((p) => !p.approximate));

    // The retention cron deletes the old minute rollups, which were not used: no figure moves.
    const pruned = await pruneUsage(now);
    assert.equal(pruned.minuteRollups, 120);
    assert.deepEqual((await view(day0)).summary, life.summary);
  });

  test("retention keeps the spot history the hour rollups price: a 60-day-old deployment's lifetime spot cost survives pruning", async () => {
    const f = await makeRoleFixture("Retention");
    const day0 = Date.UTC(2026, 8, 1);
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "old-hybrid", createdAt: new Date(day0) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    // Every day: spot ready 10:00–12:00 serving traffic, scaled to zero otherwise.
    for (let d = 0; d < 60; d++) {
      const t = day0 + d * DAY + 10 * HOUR;
      await ingestUsageReport(
        makeReport(new Date(t + 30 * MIN), [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 600, busyMs: 600 * S }], [
          { type: "backend_state", deploymentId: dep.id, backendId: "spot", state: "ready", at: new Date(t).toISOString() },
          { type: "backend_state", deploymentId: dep.id, backendId: "spot", state: "cold", at: new Date(t + 2 * HOUR).toISOString() },
        ]),
      );
    }
    const now = new Date(day0 + 60 * DAY);
    const lifetime = async (at = now) => (await deploymentSeries(f.team.id, { deploymentId: dep.id, from: new Date(day0), to: at }, { now: at })).summary;
    const before = await lifetime();
    assert.equal(before.usage.spotReadyReplicaMs, 120 * HOUR);
    assert.equal(before.actual.spot, priceMs(120 * HOUR, 1, L4_SPOT)); // $33.60

    const pruned = await pruneUsage(now);
    assert.equal(pruned.events, 0, "backend events are kept as long as the hour rollups");
    const after = await lifetime();
    assert.equal(after.actual.spot, before.actual.spot, "was $19.60: the ready time of days 0–24 was lost");
    assert.deepEqual(after.counterfactual, before.counterfactual);
    assert.deepEqual(after.savings, before.savings);

    // Past hour retention the events go too, except the last one per router and backend: the state at the cut.
    const later = new Date(now.getTime() + 400 * DAY);
    await pruneUsage(later);
    const left = await db.usageBackendEvent.findMany({ where: { deploymentId: dep.id } });
    assert.deepEqual(left.map((e) => e.state), ["cold"]);
    assert.equal((await lifetime(later)).actual.spot, 0);
  });
});
