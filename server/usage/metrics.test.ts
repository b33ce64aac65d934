import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { priceMs } from "./cost";
import { ingestUsageReport } from "./ingest";
import { deploymentSeries, seriesBucketMs, teamOverview } from "./metrics";
import { makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();

const MIN = 60_000;
const HOUR = 60 * MIN;
const BASE = Date.UTC(2026, 10, 12, 9, 0, 0);

describe("usage metrics", () => {
  test("bucket size follows the range", () => {
    assert.equal(seriesBucketMs(2 * HOUR), MIN);
    assert.equal(seriesBucketMs(6 * HOUR), 5 * MIN);
    assert.equal(seriesBucketMs(24 * HOUR), 15 * MIN);
    assert.equal(seriesBucketMs(7 * 24 * HOUR), HOUR);
    assert.equal(seriesBucketMs(30 * 24 * HOUR), 6 * HOUR);
    assert.equal(seriesBucketMs(365 * 24 * HOUR), 24 * HOUR);
  });

  test("deployment series: rps, quantiles from histograms, error rate, backend split, cost and savings", async () => {
    const f = await makeRoleFixture("Series");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "series" });
    const key = await makeApiKey(f.team.id, f.admin.id);
    // Minute 0: 60 serverless requests (50 at ≤ 500 ms, 10 at ≤ 5 s), 6 errors. Minute 2: 30 spot requests.
    const r0 = makeReport(new Date(BASE), [
      { keyId: key.id, deploymentId: dep.id, requests: 50, busyMs: 20_000, latencyMs: 400 },
      { keyId: key.id, deploymentId: dep.id, requests: 10, errors: 6, busyMs: 40_000, latencyMs: 4000 },
    ]);
    const r2 = makeReport(new Date(BASE + 2 * MIN), [{ keyId: key.id, deploymentId: dep.id, backendKind: "spot", requests: 30, busyMs: 9000, latencyMs: 300 }], [
      { type: "backend_state", deploymentId: dep.id, backendId: "spot", state: "ready", at: new Date(BASE + 2 * MIN).toISOString() },
    ]);
    await ingestUsageReport(r0);
    await ingestUsageReport(r2);

    const s = await deploymentSeries(f.team.id, { deploymentId: dep.id, from: new Date(BASE), to: new Date(BASE + HOUR) }, { now: new Date(BASE + 2 * HOUR) });
    assert.equal(s.bucketMs, MIN);
    assert.equal(s.points.length, 60);
    const p0 = s.points[0];
    assert.equal(p0.requests, 60);
    assert.equal(p0.rps, 1);
    assert.equal(p0.errorRate, 0.1);
    assert.deepEqual(p0.backends, { serverless: 60, spot: 0, byId: { serverless: 60 } });
    // p50 lies in the (250, 500] bucket: 250 + 250 × 30/50 = 400
    assert.equal(p0.latencyMs.p50, 400);
    // p95 → rank 57 of 60, in the (2500, 5000] bucket holding 10: 2500 + 2500 × 7/10 = 4250
    assert.equal(p0.latencyMs.p95, 4250);
    assert.ok(p0.cost.serverless! > 0);
    assert.ok(p0.savings !== null);
    assert.equal(s.points[1].savings, null, "a minute with no traffic and no spot shows no saving");
    assert.equal(s.points[1].errorRate, null);
    const p2 = s.points[2];
    assert.deepEqual(p2.backends, { serverless: 0, spot: 30, byId: { spot: 30 } });
    assert.equal(p2.cost.spot, 4667); // a ready minute of L4 spot at $0.28/h
    // Spot stays ready (no later event): every later minute carries its idle cost, and so a (negative) saving.
    assert.equal(s.points[30].cost.spot, 4667);
    assert.equal(s.summary.usage.requests, 90);
    assert.equal(s.summary.actual.spot, priceMs(58 * MIN, 1, 280_000)); // the summary prices the whole range at once
    assert.equal(s.summary.usage.spotReadyReplicaMs, 58 * MIN);

    // Through tRPC as a viewer (budget.read).
    const viaTrpc = await callerFor(f.viewer, f.team.id).usage.deploymentSeries({ deploymentId: dep.id, from: new Date(BASE), to: new Date(BASE + HOUR) });
    assert.equal(viaTrpc.points[0].requests, 60);

    const o = await teamOverview(f.team.id, { now: new Date(BASE + HOUR) });
    assert.equal(o.period, "2026-11");
    assert.equal(o.requests, 90);
    assert.equal(o.topDeployments[0].deploymentId, dep.id);
    assert.equal(o.spendMicros, o.breakdown.serverless + o.breakdown.spot + o.breakdown.router);
    assert.ok(o.savings !== null);
  });

  test("team overview of a team without usage shows no saving", async () => {
    const f = await makeRoleFixture("Quiet");
    await makeDeployment(f.team.id, f.admin.id, { slug: "idle" });
    const o = await callerFor(f.viewer, f.team.id).usage.teamOverview();
    assert.equal(o.spendMicros, 0);
    assert.equal(o.savings, null);
    assert.equal(o.costPer1MOutputTokens, null);
    assert.equal(o.topDeployments.length, 1);
    assert.equal(o.topDeployments[0].savings, null);
  });

  test("cross-tenant: another team gets NOT_FOUND for a deployment's series and sees none of its spend", async () => {
    const f = await makeRoleFixture("Private");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "private" });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await ingestUsageReport(makeReport(new Date(BASE), [{ keyId: key.id, deploymentId: dep.id, requests: 5, busyMs: 1000, latencyMs: 100 }]));
    const range = { deploymentId: dep.id, from: new Date(BASE - HOUR), to: new Date(BASE + HOUR) };
    await assert.rejects(callerFor(f.outsider, f.otherTeam.id).usage.deploymentSeries(range), (e: { code?: string }) => e.code === "NOT_FOUND");
    await assert.rejects(callerFor(f.outsider, f.team.id).usage.deploymentSeries(range), (e: { code?: string }) => e.code === "NOT_FOUND");
    const theirs = await callerFor(f.outsider, f.otherTeam.id).usage.teamOverview();
    assert.ok(theirs.topDeployments.every((d) => d.deploymentId !== dep.id));
    // The owner team does see it (the refusals above are about tenancy, not a broken query).
    await callerFor(f.viewer, f.team.id).usage.deploymentSeries(range);
  });
});
