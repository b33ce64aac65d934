import { describe, test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { InngestTestEngine } from "@inngest/test";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { lifecycle } from "../deployments";
import { decideApproval } from "../approvals";
import { deployFunction, destroyAllFunction, destroyFunction, reconcileFunction, spotPreemptedFunction } from "./functions";
import { actorOf, captureEvents, workflowFixture } from "./test/setup";
import { recSpot, recSvl } from "./test/recording-provider";

await useTestDatabase();
const sent = captureEvents();
const f = await workflowFixture();

const requested = (deploymentId: string) => {
  const e = sent.find((s) => s.name === "deployment/requested" && s.data.deploymentId === deploymentId);
  assert.ok(e, "deployment/requested was sent");
  return { name: e.name, data: e.data };
};
const dep = (id: string) => db.deployment.findUniqueOrThrow({ where: { id }, include: { components: true, events: true, approval: true } });
const routerVersion = async () => Number((await db.counter.findUnique({ where: { name: "router-config" } }))?.value ?? 0);

/** Deploys through the engine (no approval needed: admin) and returns the deployment id. */
async function deployActive(over = {}) {
  const { id } = await f.request("admin", over);
  const t = new InngestTestEngine({ function: deployFunction });
  const { result, error } = await t.execute({ events: [requested(id)] });
  assert.equal(error, undefined);
  assert.equal((result as { status: string }).status, "active");
  return id;
}

/** Reconcile looks at every team's deployments: retire the other tests' rows so only `id` is checked. */
async function onlyThis(id: string) {
  await db.deploymentComponent.updateMany({ where: { deploymentId: { not: id } }, data: { status: "destroyed" } });
  await db.deployment.updateMany({ where: { id: { not: id }, status: { in: ["active", "degraded", "failed", "destroying"] } }, data: { status: "destroyed" } });
}

beforeEach(() => {
  recSvl.reset();
  recSpot.reset();
});

describe("deploy", () => {
  test("hybrid without approval: both components in parallel, router published, active, spot ready", async () => {
    const v0 = await routerVersion();
    const { id, status } = await f.request("admin");
    assert.equal(status, "queued");
    const t = new InngestTestEngine({ function: deployFunction });
    const { result, ctx } = await t.execute({ events: [requested(id)] });
    assert.deepEqual(result, { status: "active", spot: "ready" });
    const d = await dep(id);
    assert.equal(d.status, "active");
    assert.ok(d.activatedAt);
    assert.deepEqual(d.components.map((c) => [c.kind, c.status]).sort(), [["serverless", "ready"], ["spot", "ready"]]);
    // Headers are stored encrypted, never in clear.
    assert.ok(!JSON.stringify(d.components.map((c) => c.upstreamHeadersCipher)).includes("tuna_up_"));
    assert.equal(recSvl.resources.size, 1);
    assert.equal(recSpot.resources.size, 1);
    assert.ok((await routerVersion()) > v0, "router snapshot version moved");
    const steps = d.events.map((e) => `${e.step}:${e.status}`);
    for (const s of ["request:ok", "start:ok", "deploy-serverless:ok", "deploy-spot:ok", "publish-router:ok", "activate:ok"]) assert.ok(steps.includes(s), s);
    assert.ok((ctx.step.run as unknown as { mock: { calls: unknown[][] } }).mock.calls.some((c) => c[0] === "deploy-spot"));
  });

  test("a deploy step that overlaps another run of itself never takes the component back from ready", async () => {
    // What Inngest's at-least-once steps (and its test engine's parallel steps) can do: a second run of
    // deploy-serverless is still inside the provider call when the first has finished and health made it ready.
    const { id } = await f.request("admin");
    assert.equal((await lifecycle.startDeploying(id, "overlap-run")).proceed, true);
    const release = recSvl.holdNextDeploy();
    const late = lifecycle.deployComponent(id, "serverless");
    while (!recSvl.calls.some((c) => c.method === "deploy")) await new Promise((r) => setTimeout(r, 5));
    const first = await lifecycle.deployComponent(id, "serverless");
    assert.equal((await lifecycle.checkComponent(id, "serverless")).state, "ready");
    release();
    assert.deepEqual(await late, first);
    const c = (await dep(id)).components.find((x) => x.kind === "serverless")!;
    assert.equal(c.status, "ready");
    assert.equal(c.endpointUrl, first.endpointUrl);
    // A late run that fails leaves it alone too.
    await db.deploymentComponent.update({ where: { id: c.id }, data: { status: "failed", endpointUrl: null } });
    recSvl.failNext("deploy", new Error("provider hiccup"));
    const releaseFailing = recSvl.holdNextDeploy();
    const lateFailing = lifecycle.deployComponent(id, "serverless");
    while (recSvl.calls.filter((x) => x.method === "deploy").length < 3) await new Promise((r) => setTimeout(r, 5));
    await db.deploymentComponent.update({ where: { id: c.id }, data: { status: "ready", endpointUrl: first.endpointUrl } });
    releaseFailing();
    await assert.rejects(lateFailing, /provider hiccup/);
    const after = (await dep(id)).components.find((x) => x.kind === "serverless")!;
    assert.equal(after.status, "ready");
    assert.equal(after.lastError, null);
  });

  test("overlapping runs of a first deploy push one upstream key, the one stored for the router", async () => {
    // Minted inside each provider call, two overlapping runs would push two keys, and the one sealed last need
    // not be the one the service kept: the router's requests would then be refused.
    const { id } = await f.request("admin");
    assert.equal((await lifecycle.startDeploying(id, "key-run")).proceed, true);
    const release = recSpot.holdNextDeploy();
    const late = lifecycle.deployComponent(id, "spot");
    while (!recSpot.calls.some((c) => c.method === "deploy")) await new Promise((r) => setTimeout(r, 5));
    await lifecycle.deployComponent(id, "spot");
    release();
    await late;
    assert.equal(recSpot.deployKeys.length, 2, "both runs called the provider");
    assert.match(recSpot.deployKeys[0] ?? "", /^tuna_up_/);
    assert.equal(recSpot.deployKeys[1], recSpot.deployKeys[0]);
    const stored = lifecycle.storedUpstreamKey(f.team.id, id, (await dep(id)).components.find((c) => c.kind === "spot"));
    assert.equal(stored, recSpot.deployKeys[0]);
  });

  test("serverless-only deploys no spot; spot-only waits for spot health", async () => {
    const svl = await deployActive({ mode: "serverless", direct: true, spotClouds: [] });
    const d = await dep(svl);
    assert.deepEqual(d.components.map((c) => c.kind), ["serverless"]);
    assert.equal(recSpot.calls.length, 0);
    const spot = await deployActive({ mode: "spot" });
    assert.deepEqual((await dep(spot)).components.map((c) => c.kind), ["spot"]);
  });

  test("approval required: waits, then approved by another admin → deploys", async () => {
    const { id, status } = await f.request("developer");
    assert.equal(status, "pending_approval");
    const t = new InngestTestEngine({ function: deployFunction });
    // Until an event arrives the run stops at the wait (what executeStep shows).
    const waiting = await t.executeStep("check-approval", { events: [requested(id)] });
    assert.equal(waiting.result, "pending");
    const approval = (await dep(id)).approval!;
    await decideApproval(f.team.id, actorOf(f.admin), approval.id, "approve", "ok");
    const approvedEvent = sent.find((s) => s.name === "deployment/approved" && s.data.deploymentId === id)!;
    const { result } = await t.execute({
      events: [requested(id)],
      steps: [
        { id: "wait-for-approval", handler: () => ({ name: approvedEvent.name, data: approvedEvent.data }) },
        { id: "wait-for-rejection", handler: () => null },
      ],
    });
    assert.equal((result as { status: string }).status, "active");
    assert.equal((await dep(id)).status, "active");
  });

  test("approval rejected → deployment rejected, nothing created", async () => {
    const { id } = await f.request("developer");
    const approval = (await dep(id)).approval!;
    await decideApproval(f.team.id, actorOf(f.admin), approval.id, "reject", "too big");
    const rejected = sent.find((s) => s.name === "deployment/rejected" && s.data.deploymentId === id)!;
    const t = new InngestTestEngine({ function: deployFunction });
    const { result } = await t.execute({
      events: [requested(id)],
      steps: [
        { id: "wait-for-approval", handler: () => null },
        { id: "wait-for-rejection", handler: () => ({ name: rejected.name, data: rejected.data }) },
      ],
    });
    assert.deepEqual(result, { status: "rejected" });
    assert.equal((await dep(id)).status, "rejected");
    assert.equal(recSvl.calls.length + recSpot.calls.length, 0);
  });

  test("approval expires (wait times out) → deployment and approval expired", async () => {
    const { id } = await f.request("developer");
    await db.approvalRequest.update({ where: { deploymentId: id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const t = new InngestTestEngine({ function: deployFunction });
    const { result } = await t.execute({
      events: [requested(id)],
      steps: [
        { id: "wait-for-approval", handler: () => null },
        { id: "wait-for-rejection", handler: () => null },
      ],
    });
    assert.deepEqual(result, { status: "expired" });
    const d = await dep(id);
    assert.equal(d.status, "expired");
    assert.equal(d.approval!.status, "expired");
    assert.equal(recSvl.calls.length, 0);
  });

  test("an event claiming no approval is needed does not start a deployment still waiting for one", async () => {
    const { id, status } = await f.request("developer");
    assert.equal(status, "pending_approval");
    const forged = requested(id);
    const t = new InngestTestEngine({ function: deployFunction });
    const { result } = await t.execute({ events: [{ name: forged.name, data: { ...forged.data, requiresApproval: false } }] });
    assert.deepEqual(result, { status: "skipped" });
    const d = await dep(id);
    assert.equal(d.status, "pending_approval");
    assert.equal(d.approval!.status, "pending");
    assert.equal(d.components.length, 0);
    assert.equal(recSvl.calls.length + recSpot.calls.length, 0);
    // Once approved, the same start goes ahead.
    await decideApproval(f.team.id, actorOf(f.admin), d.approval!.id, "approve", "ok");
    assert.equal((await lifecycle.startDeploying(id)).proceed, true);
    assert.equal((await dep(id)).status, "deploying");
  });

  // @inngest/test does not model step failures being handed back to the function (no retries, the run
  // just errors), so compensation and retries are tested with the local runner in faults.test.ts.
});

describe("destroy and destroy-all", () => {
  test("destroy removes every component and storage, revokes from the router; twice is fine", async () => {
    const id = await deployActive();
    const v0 = await routerVersion();
    const t = new InngestTestEngine({ function: destroyFunction });
    const ev = { name: "deployment/destroy.requested", data: { deploymentId: id, teamId: f.team.id } };
    const first = await t.execute({ events: [ev] });
    assert.deepEqual((first.result as { destroyed: string[] }).destroyed.sort(), ["serverless", "spot"]);
    assert.equal(recSvl.held() + recSpot.held(), 0);
    assert.equal((await dep(id)).status, "destroyed");
    assert.ok((await routerVersion()) > v0);
    const second = await new InngestTestEngine({ function: destroyFunction }).execute({ events: [ev] });
    assert.deepEqual(second.result, { status: "destroyed", destroyed: [] });
  });

  test("destroy-all marks every live deployment and fans out one destroy per deployment", async () => {
    const a = await deployActive();
    const b = await deployActive({ mode: "serverless", spotClouds: [] });
    const t = new InngestTestEngine({ function: destroyAllFunction });
    const { result, ctx } = await t.execute({
      events: [{ name: "deployment/destroy-all.requested", data: { teamId: f.team.id } }],
      steps: [{ id: "fan-out", handler: () => ({ ids: [] }) }],
    });
    assert.ok((result as { count: number }).count >= 2);
    const call = (ctx.step.sendEvent as unknown as { mock: { calls: unknown[][] } }).mock.calls.find((c) => c[0] === "fan-out");
    assert.ok(call, "step.sendEvent fan-out");
    const payload = call[1] as Array<{ name: string; data: { deploymentId: string } }>;
    assert.ok(payload.every((e) => e.name === "deployment/destroy.requested"));
    const fanned = payload.map((e) => e.data.deploymentId);
    assert.ok(fanned.includes(a) && fanned.includes(b));
    for (const id of [a, b]) {
      assert.equal((await dep(id)).status, "destroying");
      await new InngestTestEngine({ function: destroyFunction }).execute({ events: [{ name: "deployment/destroy.requested", data: { deploymentId: id, teamId: f.team.id } }] });
      assert.equal((await dep(id)).status, "destroyed");
    }
    assert.equal(recSvl.held() + recSpot.held(), 0);
  });
});

describe("reconcile and spot-preempted", () => {
  test("reconcile marks drift (degraded) and recovery (active)", async () => {
    const id = await deployActive();
    await onlyThis(id);
    recSvl.statusOverride = "failed";
    const t = new InngestTestEngine({ function: reconcileFunction });
    const r1 = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }] });
    assert.ok((r1.result as { drifted: number }).drifted >= 1);
    let d = await dep(id);
    assert.equal(d.status, "degraded");
    assert.equal(d.components.find((c) => c.kind === "serverless")!.status, "failed");
    assert.ok(d.events.some((e) => e.step === "reconcile" && e.status === "drift"));
    recSvl.statusOverride = null;
    await t.execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }] });
    d = await dep(id);
    assert.equal(d.status, "active");
  });

  test("reconcile turns a lost spot replica into a spot.preempted event", async () => {
    const id = await deployActive();
    await onlyThis(id);
    recSpot.statusOverride = "failed";
    const t = new InngestTestEngine({ function: reconcileFunction });
    const { ctx } = await t.execute({
      events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }],
      steps: [{ id: `preempted-${id}`, handler: () => ({ ids: [] }) }],
    });
    const call = (ctx.step.sendEvent as unknown as { mock: { calls: unknown[][] } }).mock.calls.find((c) => c[0] === `preempted-${id}`);
    assert.ok(call, "spot.preempted sent");
    assert.equal((call[1] as { name: string }).name, "deployment/spot.preempted");
    assert.equal((await dep(id)).status, "active", "hybrid keeps serving from serverless");
  });

  test("reconcile destroys orphaned components of ended deployments", async () => {
    const id = await deployActive();
    await onlyThis(id);
    // A destroy that gave up: the deployment is marked failed but its components still exist.
    await db.deployment.update({ where: { id }, data: { status: "failed" } });
    const t = new InngestTestEngine({ function: reconcileFunction });
    const { result } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }] });
    assert.ok((result as { orphans: number }).orphans >= 1);
    assert.equal(recSvl.held() + recSpot.held(), 0);
  });

  test("spot-preempted drains spot, checks serverless, waits for the replacement, alerts", async () => {
    const id = await deployActive();
    const v0 = await routerVersion();
    recSpot.statusOverride = "creating";
    const t = new InngestTestEngine({ function: spotPreemptedFunction });
    let checks = 0;
    const { result } = await t.execute({
      events: [{ name: "deployment/spot.preempted", data: { deploymentId: id, source: "router" } }],
      steps: [
        { id: "grace", handler: () => null },
        ...Array.from({ length: 5 }, (_, i) => ({
          id: `replace-wait-${i}`,
          handler: () => {
            if (++checks >= 2) recSpot.statusOverride = null; // SkyServe brought a new replica up
            return null;
          },
        })),
      ],
    });
    assert.deepEqual(result, { status: "replaced" });
    const d = await dep(id);
    assert.ok(d.events.some((e) => e.step === "spot" && e.status === "draining"));
    assert.equal(d.components.find((c) => c.kind === "spot")!.status, "ready");
    assert.equal(d.status, "active");
    assert.ok((await routerVersion()) > v0);
  });

  test("a lost spot service is relaunched with the key the router already holds (no 401s from replicas still running)", async () => {
    const id = await deployActive();
    const spotOf = async () => (await dep(id)).components.find((c) => c.kind === "spot");
    const key = lifecycle.storedUpstreamKey(f.team.id, id, await spotOf());
    assert.match(key ?? "", /^tuna_up_/);
    // The lifecycle minted the key before the first deploy call; @inngest/test may run that parallel step twice, and
    // every call pushed the same key.
    const first = recSpot.deployKeys.length;
    assert.ok(first >= 1 && recSpot.deployKeys.every((k) => k === key), `the first deploy pushes the stored key: ${first} call(s)`);
    const t = new InngestTestEngine({ function: spotPreemptedFunction });
    const { result } = await t.execute({
      events: [{ name: "deployment/spot.preempted", data: { deploymentId: id, source: "router" } }],
      steps: [
        { id: "grace", handler: () => null },
        // The service is gone after the grace period (SkyServe could not replace the replica): relaunch.
        { id: "check-spot", handler: () => ({ state: "failed" }) },
        ...Array.from({ length: 5 }, (_, i) => ({ id: `replace-wait-${i}`, handler: () => null })),
      ],
    });
    assert.deepEqual(result, { status: "replaced" });
    assert.deepEqual(recSpot.deployKeys.slice(first), [key], "the relaunch pushed the stored key");
    assert.equal(lifecycle.storedUpstreamKey(f.team.id, id, await spotOf()), key, "the router keeps the same key");
    assert.ok((await dep(id)).events.some((e) => e.step === "relaunch-spot" && e.status === "ok"));
  });
});
