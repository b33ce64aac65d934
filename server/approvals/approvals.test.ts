import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, makeUser, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { verifyAuditChain } from "../audit";
import { setEventSink } from "../workflows/events";
import { createChannel } from "../alerts";
import { InngestTestEngine } from "@inngest/test";
import { expireApprovalsFunction } from "./functions";
import { createApprovalRequest, DEFAULT_POLICY, evaluateApprovalPolicy, expireApprovals, type ApprovalInput, type ApprovalPolicy } from "./index";

// The fake Slack and webhook servers are on loopback, which tenant URLs may not otherwise point at.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";
await useTestDatabase();

const sent: Array<{ name: string; data: Record<string, unknown> }> = [];
setEventSink(async (name, data) => void sent.push({ name, data }));
after(() => setEventSink(null));

const code = outcomeCode;

const policy = (p: Partial<ApprovalPolicy> = {}): ApprovalPolicy => ({ ...DEFAULT_POLICY, approvalRoles: [], ...p });
const req = (r: Partial<ApprovalInput> = {}): ApprovalInput => ({ requesterRole: "developer", mode: "hybrid", serverlessGpu: "L4", spotGpu: "L4", estimatedCostPerHourMicros: 1_000_000, ...r });

describe("approval policy (pure)", () => {
  const cases: Array<[string, ApprovalPolicy, ApprovalInput, string[]]> = [
    ["default policy: developers need approval", { ...DEFAULT_POLICY }, req(), ["requested by a developer"]],
    ["default policy: admins do not", { ...DEFAULT_POLICY }, req({ requesterRole: "admin" }), []],
    ["empty policy: nothing needs approval", policy(), req(), []],
    ["gated GPU on the spot side of a hybrid", policy({ approvalGpus: ["A100-80GB"] }), req({ spotGpu: "A100-80GB" }), ["GPU A100-80GB needs approval"]],
    ["gated GPU matches case-insensitively", policy({ approvalGpus: ["h100"] }), req({ serverlessGpu: "H100", spotGpu: null, mode: "serverless" }), ["GPU H100 needs approval"]],
    ["gated spot GPU does not matter for serverless-only", policy({ approvalGpus: ["A100-80GB"] }), req({ mode: "serverless", spotGpu: "A100-80GB" }), []],
    ["spot needs approval: spot-only", policy({ approvalForSpot: true }), req({ mode: "spot" }), ["spot capacity needs approval"]],
    ["spot needs approval: hybrid too", policy({ approvalForSpot: true }), req({ mode: "hybrid" }), ["spot capacity needs approval"]],
    ["spot needs approval: serverless-only is exempt", policy({ approvalForSpot: true }), req({ mode: "serverless" }), []],
    ["serverless needs approval", policy({ approvalForServerless: true }), req({ mode: "serverless" }), ["serverless capacity needs approval"]],
    ["serverless rule exempts spot-only", policy({ approvalForServerless: true }), req({ mode: "spot" }), []],
    ["cost above threshold", policy({ approvalCostThresholdMicros: 2_000_000 }), req({ estimatedCostPerHourMicros: 2_500_000 }), ["estimated $2.50/h is above the team's $2.00/h threshold"]],
    ["cost equal to threshold is fine", policy({ approvalCostThresholdMicros: 2_000_000 }), req({ estimatedCostPerHourMicros: 2_000_000 }), []],
    ["bigint cost", policy({ approvalCostThresholdMicros: 0 }), req({ estimatedCostPerHourMicros: 1n }), ["estimated $0.00/h is above the team's $0.00/h threshold"]],
    [
      "unknown price under a cost threshold: needs approval, saying the price is unknown",
      policy({ approvalCostThresholdMicros: 5_000_000 }),
      req({ estimatedCostPerHourMicros: 0, unknownPrices: ["no known spot price for H200 on aws"] }),
      ["price unknown (no known spot price for H200 on aws), so the estimate cannot be checked against the team's $5.00/h threshold"],
    ],
    ["unknown price without a cost threshold is fine", policy(), req({ unknownPrices: ["no known spot price for H200 on aws"] }), []],
    [
      "unknown price, known part already above the threshold: one reason",
      policy({ approvalCostThresholdMicros: 1_000_000 }),
      req({ estimatedCostPerHourMicros: 2_000_000, unknownPrices: ["no known spot price for H200 on aws"] }),
      ["estimated $2.00/h is above the team's $1.00/h threshold"],
    ],
    [
      "every rule at once, for an admin",
      policy({ approvalRoles: ["admin"], approvalGpus: ["L4"], approvalForSpot: true, approvalForServerless: true, approvalCostThresholdMicros: 1 }),
      req({ requesterRole: "admin" }),
      ["requested by an admin", "GPU L4 needs approval", "spot capacity needs approval", "serverless capacity needs approval", "estimated $1.00/h is above the team's $0.00/h threshold"],
    ],
  ];
  for (const [name, p, r, reasons] of cases) {
    test(name, () => {
      const got = evaluateApprovalPolicy(p, r);
      assert.deepEqual(got, { required: reasons.length > 0, reasons });
    });
  }
});

async function fixture() {
  const f = await makeRoleFixture();
  const admin2 = await makeUser("admin2");
  await db.membership.create({ data: { teamId: f.team.id, userId: admin2.id, role: "admin" } });
  return { ...f, admin2 };
}

async function pendingRequest(teamId: string, requestedById: string, ttlHours?: number) {
  const dep = await db.deployment.create({
    data: { teamId, slug: `big-${Math.random().toString(36).slice(2, 8)}`, model: "m", servedModelName: "m", mode: "hybrid", status: "pending_approval", spec: {}, createdById: requestedById, estimatedCostPerHourMicros: 3_500_000n },
  });
  const a = await db.$transaction((tx) =>
    createApprovalRequest(tx, {
      teamId,
      deploymentId: dep.id,
      requestedById,
      reasons: ["GPU A100-80GB needs approval"],
      summary: { slug: dep.slug, model: "m", mode: "hybrid", serverlessGpu: "A100-80GB", costDisplay: "$3.50/h" },
      estimatedCostPerHourMicros: 3_500_000n,
      ...(ttlHours !== undefined ? { ttlHours } : {}),
    }),
  );
  return { dep, a };
}

describe("approvals", () => {
  test("policy: defaults, admin-only update, audited", async () => {
    const f = await fixture();
    const got = await callerFor(f.viewer, f.team.id).policy.get();
    assert.deepEqual(got, DEFAULT_POLICY);
    assert.equal(await code(callerFor(f.developer, f.team.id).policy.update({ approvalForSpot: true })), "FORBIDDEN");
    const updated = await callerFor(f.admin, f.team.id).policy.update({ approvalGpus: ["A100-80GB"], approvalCostThresholdMicros: 2_000_000, approvalTtlHours: 4 });
    assert.deepEqual(updated, { ...DEFAULT_POLICY, approvalGpus: ["A100-80GB"], approvalCostThresholdMicros: 2_000_000, approvalTtlHours: 4 });
    assert.deepEqual(await callerFor(f.outsider, f.otherTeam.id).policy.get(), DEFAULT_POLICY, "another team's policy is untouched");
    const { a } = await pendingRequest(f.team.id, f.developer.id);
    assert.ok(Math.abs(a.expiresAt.getTime() - (Date.now() + 4 * 3_600_000)) < 60_000, "TTL comes from the policy");
    const actions = (await db.auditLog.findMany({ where: { teamId: f.team.id }, orderBy: { seq: "asc" } })).map((x) => x.action);
    assert.deepEqual(actions, ["policy.update", "approval.request"]);
  });

  test("an admin approves another member's request: audited, workflow woken, channel told", async () => {
    const f = await fixture();
    const { dep, a } = await pendingRequest(f.team.id, f.developer.id);
    const channel = await createChannel(f.team.id, { userId: f.admin.id, label: f.admin.email }, { name: "#approvals", kind: "webhook", url: "http://127.0.0.1:9/hook", events: ["approval.decided"] });
    const list = await callerFor(f.viewer, f.team.id).approvals.list({ status: "pending" });
    assert.deepEqual(list.map((x) => [x.id, x.estimatedCostDisplay, x.requestedByEmail]), [[a.id, "$3.50/h", f.developer.email]]);
    assert.equal(await code(callerFor(f.developer, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })), "FORBIDDEN");
    sent.length = 0;
    const v = await callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve", comment: "ok for the demo" });
    assert.equal(v.status, "approved");
    assert.equal(v.decidedByEmail, f.admin.email);
    const ev = sent.find((s) => s.name === "deployment/approved");
    assert.ok(ev, `events: ${sent.map((s) => s.name)}`);
    assert.deepEqual({ ...ev.data }, { deploymentId: dep.id, teamId: f.team.id, approvalId: a.id, decidedById: f.admin.id, comment: "ok for the demo" });
    const told = sent.find((s) => s.name === "alert/send");
    assert.equal(told?.data.channelId, channel.id, "the team's channel is told");
    assert.equal(told?.data.type, "approval.decided");
    assert.match(String(told?.data.text), new RegExp(`Requested by ${f.developer.email.replace(/[.]/g, "\\.")}`), "the requester is named");
    const audit = await db.auditLog.findFirst({ where: { teamId: f.team.id, action: "approval.approve" } });
    assert.equal(audit?.actorId, f.admin.id);
    assert.equal((audit?.metadata as { comment?: string } | undefined)?.comment, "ok for the demo");
    assert.equal(await code(callerFor(f.admin2, f.team.id).approvals.decide({ approvalId: a.id, decision: "reject" })), "PRECONDITION_FAILED");
    assert.equal((await verifyAuditChain(f.team.id)).ok, true);
  });

  test("nobody approves their own request; rejecting (withdrawing) it is allowed", async () => {
    const f = await fixture();
    const { a } = await pendingRequest(f.team.id, f.admin.id);
    assert.equal(await code(callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })), "FORBIDDEN");
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: a.id } })).status, "pending");
    sent.length = 0;
    const v = await callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "reject", comment: "changed my mind" });
    assert.equal(v.status, "rejected");
    assert.ok(sent.some((s) => s.name === "deployment/rejected" && s.data.comment === "changed my mind"));
    const { a: b } = await pendingRequest(f.team.id, f.admin.id);
    await callerFor(f.admin2, f.team.id).approvals.decide({ approvalId: b.id, decision: "approve" });
    const actions = (await db.auditLog.findMany({ where: { teamId: f.team.id, action: { startsWith: "approval." } }, orderBy: { seq: "asc" } })).map((x) => x.action);
    assert.deepEqual(actions, ["approval.request", "approval.reject", "approval.request", "approval.approve"]);
  });

  test("a sole admin's own request: the view says nobody else can approve it, approving stays refused, a new admin can", async () => {
    const f = await makeRoleFixture("Solo");
    const { a } = await pendingRequest(f.team.id, f.admin.id);
    const { a: fromDev } = await pendingRequest(f.team.id, f.developer.id);
    const byId = async () => new Map((await callerFor(f.admin, f.team.id).approvals.list({ status: "pending" })).map((x) => [x.id, x.otherApprovers]));
    assert.deepEqual(Object.fromEntries(await byId()), { [a.id]: 0, [fromDev.id]: 1 }, "only the requester could approve their own; the admin can approve the developer's");
    assert.equal((await callerFor(f.viewer, f.team.id).approvals.get({ approvalId: a.id })).otherApprovers, 0);
    await assert.rejects(callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" }), (e: Error) => {
      assert.match(e.message, /cannot approve your own request, and this team has no other admin: invite one in Members/);
      return true;
    });
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: a.id } })).status, "pending", "the rule still holds");
    // A developer cannot approve it either; a newly invited admin can.
    assert.equal(await code(callerFor(f.developer, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })), "FORBIDDEN");
    const admin2 = await makeUser("admin2");
    await db.membership.create({ data: { teamId: f.team.id, userId: admin2.id, role: "admin" } });
    assert.deepEqual(Object.fromEntries(await byId()), { [a.id]: 1, [fromDev.id]: 2 });
    await assert.rejects(callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" }), /another admin must\.$/);
    assert.equal((await callerFor(admin2, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })).status, "approved");
  });

  test("two admins deciding at once: one wins", async () => {
    const f = await fixture();
    const { a } = await pendingRequest(f.team.id, f.developer.id);
    const results = await Promise.all([
      code(callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })),
      code(callerFor(f.admin2, f.team.id).approvals.decide({ approvalId: a.id, decision: "reject" })),
    ]);
    assert.deepEqual(results.sort(), ["OK", "PRECONDITION_FAILED"]);
    assert.equal(await db.auditLog.count({ where: { teamId: f.team.id, action: { in: ["approval.approve", "approval.reject"] } } }), 1);
  });

  test("requests expire: no decision after expiry; the sweeper marks and audits them", async () => {
    const f = await fixture();
    const { a } = await pendingRequest(f.team.id, f.developer.id, 1);
    const { a: fresh } = await pendingRequest(f.team.id, f.developer.id, 1);
    await db.approvalRequest.update({ where: { id: a.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    assert.equal(await code(callerFor(f.admin, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })), "PRECONDITION_FAILED");
    const admin = callerFor(f.admin, f.team.id);
    assert.deepEqual((await admin.approvals.list({ status: "expired" })).map((x) => x.id), [a.id], "shown as expired before the sweep");
    assert.deepEqual((await admin.approvals.list({ status: "pending" })).map((x) => x.id), [fresh.id]);
    assert.equal(await expireApprovals(new Date()), 1);
    assert.equal(await expireApprovals(new Date()), 0, "idempotent");
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: a.id } })).status, "expired");
    const audit = await db.auditLog.findFirst({ where: { teamId: f.team.id, action: "approval.expire" } });
    assert.equal(audit?.targetId, a.id);
    assert.equal(audit?.actorLabel, "system");
    // The scheduled sweeper does the same.
    await db.approvalRequest.update({ where: { id: fresh.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const t = new InngestTestEngine({ function: expireApprovalsFunction });
    const { result } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }] });
    assert.deepEqual(result, { expired: 1 });
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: fresh.id } })).status, "expired");
  });

  test("cross-tenant: another team's admin cannot see or decide a request", async () => {
    const f = await fixture();
    const { a } = await pendingRequest(f.team.id, f.developer.id);
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    assert.deepEqual(await stranger.approvals.list({}), []);
    assert.equal(await code(stranger.approvals.get({ approvalId: a.id })), "NOT_FOUND");
    assert.equal(await code(stranger.approvals.decide({ approvalId: a.id, decision: "approve" })), "NOT_FOUND");
    assert.equal(await code(callerFor(f.outsider, f.team.id).approvals.decide({ approvalId: a.id, decision: "approve" })), "NOT_FOUND");
    assert.equal((await db.approvalRequest.findUniqueOrThrow({ where: { id: a.id } })).status, "pending");
  });
});
