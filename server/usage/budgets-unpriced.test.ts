import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { priceMs } from "./cost";
import { evaluateBudgets, listBudgets, monthToDateSpend, setBudget } from "./budgets";
import { ingestUsageReport } from "./ingest";
import { setUsageLinks } from "./links";
import { teamOverview } from "./metrics";
import { LOCAL_L4_MICROS_PER_HOUR, makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();
setUsageLinks({ notify: async () => {}, bumpRouterConfigVersion: async () => {} });

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 2);
/** 30 s of serverless busy time in its own minute: 30 s + the 60 s idle window billed at the local L4 price. */
const SERVERLESS_STEP = priceMs(90_000, 1, LOCAL_L4_MICROS_PER_HOUR);
const adminActor = (f: { admin: { id: string; email: string } }) => ({ userId: f.admin.id, label: f.admin.email });

/** H200 has no spot price in any cloud's static table: spot-only on aws, with its spot fleet ready from T0. */
async function spotReady(teamId: string, deploymentId: string, keyId: string, at = T0) {
  await ingestUsageReport(
    makeReport(new Date(at), [{ keyId, deploymentId, backendKind: "spot", backendId: "spot", requests: 10, busyMs: 10_000 }], [
      { type: "backend_state", deploymentId, backendId: "spot", state: "ready", at: new Date(at).toISOString() },
    ]),
  );
}

describe("budgets and deployments without a known price", () => {
  test("the known parts of a partly unpriced deployment count (serverless here), so its team budget alerts and blocks", async () => {
    const f = await makeRoleFixture("Mixed");
    // Hybrid: serverless on the local L4 (priced), spot on H200 (no price on aws).
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "mixed", spotGpu: "H200", spotClouds: ["aws"], createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await spotReady(f.team.id, dep.id, key.id);
    await ingestUsageReport(makeReport(new Date(T0 + HOUR), [{ keyId: key.id, deploymentId: dep.id, requests: 3, busyMs: 30_000 }]));
    const now = new Date(T0 + 10 * DAY);

    const spend = (await monthToDateSpend([f.team.id], now)).get(f.team.id)!;
    assert.equal(spend.costs[0].cost.actual.total, null, "the cost model does not know the whole cost");
    assert.equal(spend.total, SERVERLESS_STEP, "the serverless part is counted, not dropped to $0 with the spot part");
    assert.equal(spend.deployments.get(dep.id), SERVERLESS_STEP);
    assert.deepEqual(spend.unpriced, [dep.id]);
    assert.deepEqual(spend.unpricedParts.get(dep.id), ["spot"]);

    const set = await setBudget(f.team.id, adminActor(f), { scope: "team", monthlyLimitMicros: SERVERLESS_STEP }, { now: new Date(T0 + 2 * HOUR) });
    assert.deepEqual(set.warnings, ["Spend of mixed with no known price is not counted: no known spot price for H200 on aws."]);
    const r = await evaluateBudgets(now, { teamIds: [f.team.id] });
    assert.deepEqual(r.alerts.map((a) => a.threshold), [80, 90, 100]);
    assert.equal(r.newlyBlocked.length, 1);
  });

  test("a live spot price that arrives mid-month prices the spot time from then on", async () => {
    const f = await makeRoleFixture("LateSample");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "h200-late", mode: "spot", serverlessProvider: null, serverlessGpu: null, spotGpu: "H200", spotClouds: ["aws"], createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await spotReady(f.team.id, dep.id, key.id);
    // The team's SkyPilot API server first quotes H200 on aws five days later, at $3/GPU-h.
    await db.spotPriceSample.create({ data: { teamId: f.team.id, cloud: "aws", gpu: "H200", pricePerGpuHourMicros: 3_000_000n, observedAt: new Date(T0 + 5 * DAY) } });
    const spend = (await monthToDateSpend([f.team.id], new Date(T0 + 10 * DAY))).get(f.team.id)!;
    assert.equal(spend.total, priceMs(5 * DAY, 1, 3_000_000), "the five priced days count; the five before stay unknown");
    assert.deepEqual(spend.unpriced, [dep.id]);
  });

  test("setting a budget names the deployments it cannot count; a deployment budget on one is refused", async () => {
    const f = await makeRoleFixture("Warned");
    const priced = await makeDeployment(f.team.id, f.admin.id, { slug: "priced" });
    // No usage yet: its price is unknown all the same (the budget could never count it).
    const h200 = await makeDeployment(f.team.id, f.admin.id, { slug: "h200-idle", mode: "spot", serverlessProvider: null, serverlessGpu: null, spotGpu: "H200", spotClouds: ["aws"] });
    const now = { now: new Date(T0 + DAY) };

    const team = await setBudget(f.team.id, adminActor(f), { scope: "team", monthlyLimitMicros: 50_000_000 }, now);
    assert.deepEqual(team.warnings, ["Spend of h200-idle with no known price is not counted: no known spot price for H200 on aws."]);
    const audit = await db.auditLog.findFirstOrThrow({ where: { teamId: f.team.id, action: "budget.create" } });
    assert.deepEqual((audit.metadata as Record<string, unknown>).unpricedDeployments, ["h200-idle"]);

    // A key that reaches every deployment reaches the unpriced one; a key limited to the priced one does not.
    const everywhere = await makeApiKey(f.team.id, f.admin.id, "everywhere");
    const narrow = await makeApiKey(f.team.id, f.admin.id, "narrow");
    await db.apiKey.update({ where: { id: narrow.id }, data: { deploymentIds: [priced.id] } });
    assert.equal((await setBudget(f.team.id, adminActor(f), { scope: "apikey", targetId: everywhere.id, monthlyLimitMicros: 1_000_000 }, now)).warnings.length, 1);
    assert.deepEqual((await setBudget(f.team.id, adminActor(f), { scope: "apikey", targetId: narrow.id, monthlyLimitMicros: 1_000_000 }, now)).warnings, []);
    assert.deepEqual((await setBudget(f.team.id, adminActor(f), { scope: "deployment", targetId: priced.id, monthlyLimitMicros: 1_000_000 }, now)).warnings, []);

    // A budget of the unpriced deployment alone would limit nothing: refused, saying why, and nothing is written.
    const refused = (e: unknown) => {
      assert.ok(e instanceof DomainError);
      assert.equal(e.code, "BAD_REQUEST");
      assert.equal(e.reason, "price_unknown");
      assert.equal(e.message, "No known spot price for H200 on aws, so a budget of deployment h200-idle could not be enforced; redeploy it on another GPU or cloud.");
      return true;
    };
    await assert.rejects(setBudget(f.team.id, adminActor(f), { scope: "deployment", targetId: h200.id, monthlyLimitMicros: 1_000_000 }, now), refused);
    assert.equal(await db.budget.count({ where: { teamId: f.team.id, scope: "deployment", targetId: h200.id } }), 0);
    await assert.rejects(
      callerFor(f.admin, f.team.id).usage.budgets.set({ scope: "deployment", targetId: h200.id, monthlyLimitMicros: 1_000_000 }),
      (e: TRPCError) => e.code === "BAD_REQUEST" && /could not be enforced/.test(e.message),
    );

    // The settings list says, per budget, what it does not count.
    const listed = await listBudgets(f.team.id, now);
    const unpricedOf = (name: string) => listed.find((b) => b.name === name)?.unpriced;
    assert.deepEqual(unpricedOf("team Warned"), [{ deploymentId: h200.id, slug: "h200-idle", reasons: ["no known spot price for H200 on aws"] }]);
    assert.deepEqual(unpricedOf("key everywhere")?.map((u) => u.slug), ["h200-idle"]);
    assert.deepEqual(unpricedOf("key narrow"), []);
    assert.deepEqual(unpricedOf("deployment priced"), []);

    // Once destroyed (and without spend this month) it no longer needs naming.
    await db.deployment.update({ where: { id: h200.id }, data: { status: "destroyed", destroyedAt: new Date(T0 + DAY) } });
    assert.deepEqual((await setBudget(f.team.id, adminActor(f), { scope: "team", monthlyLimitMicros: 60_000_000 }, now)).warnings, []);
  });

  test("the Overview names an unpriced deployment ({id, slug}) and counts its known part", async () => {
    const f = await makeRoleFixture("Overview");
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "mixed-ov", spotGpu: "H200", spotClouds: ["aws"], createdAt: new Date(T0 - HOUR) });
    const key = await makeApiKey(f.team.id, f.admin.id);
    await spotReady(f.team.id, dep.id, key.id);
    await ingestUsageReport(makeReport(new Date(T0 + HOUR), [{ keyId: key.id, deploymentId: dep.id, requests: 3, busyMs: 30_000 }]));
    const o = await teamOverview(f.team.id, { now: new Date(T0 + DAY) });
    assert.deepEqual(o.unpricedDeployments, [{ id: dep.id, slug: "mixed-ov" }]);
    assert.equal(o.spendMicros, SERVERLESS_STEP);
    const sums = (x: typeof o) => x.breakdown.serverless + x.breakdown.spot + x.breakdown.router;
    assert.equal(sums(o), o.spendMicros, "the breakdown adds up to the spend");
    assert.deepEqual(o.topDeployments.map((d) => [d.slug, d.spendMicros]), [["mixed-ov", SERVERLESS_STEP]], "its known part, as the total counts it");

    // A live H200 price from noon on: the spot time after it is known, the morning's is not.
    await db.spotPriceSample.create({ data: { teamId: f.team.id, cloud: "aws", gpu: "H200", pricePerGpuHourMicros: 3_000_000n, observedAt: new Date(T0 + 12 * HOUR) } });
    const late = await teamOverview(f.team.id, { now: new Date(T0 + DAY) });
    const spend = (await monthToDateSpend([f.team.id], new Date(T0 + DAY))).get(f.team.id)!;
    assert.equal(spend.costs[0].cost.actual.spot, null, "spot is only partly priced");
    assert.ok(late.breakdown.spot > 0, "its priced spot time shows in the breakdown");
    assert.equal(late.spendMicros, spend.total);
    assert.equal(sums(late), late.spendMicros, "the breakdown adds up to the spend");
    assert.deepEqual(late.topDeployments.map((d) => [d.slug, d.spendMicros]), [["mixed-ov", spend.deployments.get(dep.id)]]);
    assert.deepEqual(late.unpricedDeployments, [{ id: dep.id, slug: "mixed-ov" }]);
    // Another team does not learn of it.
    assert.deepEqual((await callerFor(f.outsider, f.otherTeam.id).usage.teamOverview()).unpricedDeployments, []);
  });
});
