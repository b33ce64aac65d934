import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor } from "../test/fixtures";
import { db } from "../db";
import { updateTeamPolicy } from "../approvals";
import { DomainError } from "../lib/errors";
import { setBudget } from "../usage/budgets";
import { setUsageLinks } from "../usage/links";
import { captureEvents, recInput, workflowFixture } from "../workflows/test/setup";

await useTestDatabase();
captureEvents();
setUsageLinks({ notify: async () => {}, bumpRouterConfigVersion: async () => {} });

/** Spot-only on the recording spot provider: only the spot price matters. */
const spotOnly = (gpu: string, spotClouds: Array<"aws" | "gcp" | "azure">, slug: string) =>
  recInput({ mode: "spot", gpu, spotClouds, slug, provider: "cheapest" });

const H200_REFUSAL = "No known spot price for H200 on aws, so the team's budget could not be enforced; choose another GPU or cloud.";

function refusedWith(message: string) {
  return (e: TRPCError) => {
    assert.equal(e.code, "BAD_REQUEST");
    assert.ok(e.cause instanceof DomainError);
    assert.equal(e.cause.reason, "price_unknown");
    assert.equal(e.message, message);
    return true;
  };
}

describe("deployments without a known price", () => {
  test("without budgets: the quote says plainly which part has no known price, and the deployment may be created", async () => {
    const f = await workflowFixture();
    const admin = callerFor(f.admin, f.team.id);
    const q = await admin.deployments.quote(spotOnly("H200", ["aws"], "h200-free"));
    assert.deepEqual(q.unknownPrices, ["No known spot price for H200 on aws"]);
    // L40S: aws has a spot price, gcp none; with both allowed the cost model prices it (at aws's price).
    assert.deepEqual((await admin.deployments.quote(spotOnly("L40S", ["gcp"], "l40s-gcp"))).unknownPrices, ["No known spot price for L40S on gcp"]);
    assert.deepEqual((await admin.deployments.quote(spotOnly("L40S", ["gcp", "aws"], "l40s-both"))).unknownPrices, []);
    // Hybrid with a priced serverless side: only the spot part is named.
    const hybrid = await admin.deployments.quote({ model: "Qwen/Qwen3-0.6B", slug: "h200-hybrid", mode: "hybrid", serverlessGpu: "L4", spotGpu: "H200", provider: "local", spotProvider: "rec-spot", spotClouds: ["aws"] });
    assert.deepEqual(hybrid.unknownPrices, ["No known spot price for H200 on aws"]);
    const r = await admin.deployments.create(spotOnly("H200", ["aws"], "h200-free"));
    assert.equal(r.status, "queued");
  });

  test("with a team budget: quote and create refuse it with a field-level reason; nothing is written", async () => {
    const f = await workflowFixture();
    const admin = callerFor(f.admin, f.team.id);
    await setBudget(f.team.id, { userId: f.admin.id, label: f.admin.email }, { scope: "team", monthlyLimitMicros: 1_000_000 });
    const n = await db.deployment.count({ where: { teamId: f.team.id } });
    await assert.rejects(admin.deployments.quote(spotOnly("H200", ["aws"], "h200-budget")), refusedWith(H200_REFUSAL));
    await assert.rejects(admin.deployments.create(spotOnly("H200", ["aws"], "h200-budget")), refusedWith(H200_REFUSAL));
    await assert.rejects(
      admin.deployments.create(spotOnly("L40S", ["gcp", "azure"], "l40s-budget")),
      refusedWith("No known spot price for L40S on gcp or azure, so the team's budget could not be enforced; choose another GPU or cloud."),
    );
    // A hybrid whose spot side is unknown is refused too (its serverless side alone would not be the whole spend).
    await assert.rejects(
      admin.deployments.create({ model: "Qwen/Qwen3-0.6B", slug: "h200-hybrid", mode: "hybrid", serverlessGpu: "L4", spotGpu: "H200", provider: "local", spotProvider: "rec-spot", spotClouds: ["aws"] }),
      refusedWith(H200_REFUSAL),
    );
    // A serverless provider without a published price for the GPU: another provider fixes that.
    await assert.rejects(
      admin.deployments.create(recInput({ mode: "serverless", gpu: "L4", provider: "rec-svl", slug: "svl-unpriced" })),
      refusedWith("No known rec-svl price for L4, so the team's budget could not be enforced; choose another GPU or provider."),
    );
    assert.equal(await db.deployment.count({ where: { teamId: f.team.id } }), n);
    // Priced choices go through: another GPU, or another cloud.
    assert.deepEqual((await admin.deployments.quote(spotOnly("H100", ["aws"], "h100-budget"))).unknownPrices, []);
    await admin.deployments.create(spotOnly("L40S", ["aws"], "l40s-aws"));
    // A live price from the team's own SkyPilot API server makes H200 on aws priced.
    await db.spotPriceSample.create({ data: { teamId: f.team.id, cloud: "aws", gpu: "H200", pricePerGpuHourMicros: 3_500_000n } });
    assert.equal((await admin.deployments.create(spotOnly("H200", ["aws"], "h200-live"))).status, "queued");
  });

  test("a key budget covering every deployment refuses it as well; one limited to other deployments does not", async () => {
    const f = await workflowFixture();
    const admin = callerFor(f.admin, f.team.id);
    const actor = { userId: f.admin.id, label: f.admin.email };
    const key = await db.apiKey.create({ data: { teamId: f.team.id, createdById: f.admin.id, label: "ci-bot", prefix: "tuna_sk_t", hash: `h-${f.team.id}` } });
    await setBudget(f.team.id, actor, { scope: "apikey", targetId: key.id, monthlyLimitMicros: 1_000_000 });
    await assert.rejects(
      admin.deployments.create(spotOnly("H200", ["aws"], "h200-key")),
      refusedWith("No known spot price for H200 on aws, so the budget of key ci-bot could not be enforced; choose another GPU or cloud."),
    );
    const other = await admin.deployments.create(spotOnly("L4", ["aws"], "l4-other"));
    await db.apiKey.update({ where: { id: key.id }, data: { deploymentIds: [other.id] } });
    assert.equal((await admin.deployments.create(spotOnly("H200", ["aws"], "h200-key"))).status, "queued");
  });

  test("a cost threshold: an unknown price needs approval (not counted as $0 under it), saying the price is unknown", async () => {
    const f = await workflowFixture();
    const admin = callerFor(f.admin, f.team.id);
    await updateTeamPolicy(f.team.id, { userId: f.admin.id, label: f.admin.email }, { approvalRoles: [], approvalCostThresholdMicros: 50_000_000 });
    const reason = "price unknown (no known spot price for H200 on aws), so the estimate cannot be checked against the team's $50.00/h threshold";
    const q = await admin.deployments.quote(spotOnly("H200", ["aws"], "h200-threshold"));
    assert.equal(q.estimatedCostPerHourMicros, 0, "the estimate leaves the unknown part out");
    assert.deepEqual(q.approval, { required: true, reasons: [reason] });
    const r = await admin.deployments.create(spotOnly("H200", ["aws"], "h200-threshold"));
    assert.equal(r.status, "pending_approval");
    const [pending] = await admin.approvals.list({ status: "pending" });
    assert.equal(pending.deploymentId, r.id);
    assert.deepEqual(pending.reasons, [reason]);
    // A priced request under the threshold still goes straight through.
    const priced = await admin.deployments.quote(spotOnly("H100", ["aws"], "h100-threshold"));
    assert.deepEqual(priced.approval, { required: false, reasons: [] });
    assert.ok(priced.estimatedCostPerHourMicros > 0);
    // No threshold: an unknown price alone needs no approval.
    await updateTeamPolicy(f.team.id, { userId: f.admin.id, label: f.admin.email }, { approvalCostThresholdMicros: null });
    assert.deepEqual((await admin.deployments.quote(spotOnly("H200", ["aws"], "h200-nothreshold"))).approval, { required: false, reasons: [] });
  });

  test("approval: the approver is told, and approving is refused once a budget applies (rejecting still works)", async () => {
    const f = await workflowFixture();
    const dev = callerFor(f.developer, f.team.id);
    const admin = callerFor(f.admin, f.team.id);
    const req = await dev.deployments.create(spotOnly("H200", ["aws"], "h200-review"));
    assert.equal(req.status, "pending_approval");
    const [pending] = await admin.approvals.list({ status: "pending" });
    assert.deepEqual((pending.summary as { unknownPrices?: string[] }).unknownPrices, ["No known spot price for H200 on aws"]);

    const set = await setBudget(f.team.id, { userId: f.admin.id, label: f.admin.email }, { scope: "team", monthlyLimitMicros: 1_000_000 });
    assert.deepEqual(set.warnings, ["Spend of h200-review with no known price is not counted: no known spot price for H200 on aws."]);
    await assert.rejects(
      admin.approvals.decide({ approvalId: pending.id, decision: "approve" }),
      refusedWith("No known spot price for H200 on aws, so the team's budget could not be enforced; reject this request and ask for another GPU or cloud."),
    );
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: pending.id } })).status, "pending");
    assert.equal((await admin.approvals.decide({ approvalId: pending.id, decision: "reject", comment: "pick a priced GPU" })).status, "rejected");
  });
});
