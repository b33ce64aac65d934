import { describe, test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { InngestTestEngine } from "@inngest/test";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { createChannel } from "../alerts";
import { requestDestroy, setWorkflowFaultHook, lifecycle } from "../deployments";
import { buildRouterSnapshot, snapshotVersion } from "../routerconfig";
import { deliverLocalEvent, drainLocalRunner } from "./runner";
import { sendEvent, setEventSink } from "./events";
import { deployFunction, reconcileFunction } from "./functions";
import { costForDeployments, loadDeploymentsForCost } from "../usage/pricing";
import { actorOf, workflowFixture } from "./test/setup";
import { permanent, recSpot, recSvl } from "./test/recording-provider";

/**
 * Lifecycle states that used to stick or leak: a compensation or destroy that gives up, a relaunch racing a
 * destroy, a failing `start`, repeated or false alerts, a duplicate deploy. Through the local runner where
 * retries and failures handed back to the function matter, through @inngest/test where a step is mocked.
 */
await useTestDatabase();
process.env.TUNA_RUNNER_BACKOFF_MS = "10";
const f = await workflowFixture();
await createChannel(f.team.id, actorOf(f.admin), {
  name: "ops",
  kind: "webhook",
  url: "https://hooks.example.test/tuna",
  events: ["deployment.failed", "deployment.stuck", "deployment.started"],
});

/** Workflow events reach the runner; alert deliveries are only recorded (their rows are what we count). */
function runnerSink() {
  setEventSink(async (name, data) => {
    if (name !== "alert/send") await deliverLocalEvent(name, data);
  });
}

const dep = (id: string) => db.deployment.findUniqueOrThrow({ where: { id }, include: { components: true, events: { orderBy: { at: "asc" } } } });
const comp = async (id: string, kind: string) => (await dep(id)).components.find((c) => c.kind === kind)!;
const runsOf = (fn: string) => db.workflowRun.findMany({ where: { functionId: fn }, orderBy: { createdAt: "asc" } });
const alertsOf = async (deploymentId: string, type: string) =>
  (await db.alertDelivery.findMany({ where: { channel: { teamId: f.team.id } } }))
    .map((a) => (a.payload as { event: { type: string; deploymentId?: string; text: string } }).event)
    .filter((e) => e.deploymentId === deploymentId && e.type === type);
/** One cron run of reconcile (a fresh engine: one engine memoises step results across its executions). */
const reconcileOnce = () => new InngestTestEngine({ function: reconcileFunction }).execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/5 * * * *" } }] });

/** Reconcile looks at every deployment: retire the other tests' rows so only `id` is checked. */
async function onlyThis(id: string) {
  await db.deploymentComponent.updateMany({ where: { deploymentId: { not: id } }, data: { status: "destroyed" } });
  await db.deployment.updateMany({ where: { id: { not: id }, status: { in: ["active", "degraded", "deploying", "failed", "destroying"] } }, data: { status: "destroyed" } });
}

/** Requests a deployment without running it: returns its id and the deployment/requested event. */
async function requestOnly(over = {}) {
  const sent: Array<{ name: string; data: Record<string, unknown> }> = [];
  setEventSink(async (name, data) => void sent.push({ name, data }));
  const { id } = await f.request("admin", over);
  runnerSink();
  const e = sent.find((s) => s.name === "deployment/requested");
  assert.ok(e);
  return { id, event: { name: e.name, data: e.data } };
}

async function deployActive(over = {}) {
  const { id } = await f.request("admin", over);
  await drainLocalRunner({ timeoutMs: 20_000 });
  assert.equal((await dep(id)).status, "active");
  return id;
}

beforeEach(() => {
  recSvl.reset();
  recSpot.reset();
  setWorkflowFaultHook(null);
  runnerSink();
});

describe("deploy failures always end in a final state", () => {
  test("a compensation that gives up still fails the deployment (saying resources may remain), alerts, and the orphan sweep removes them", async () => {
    recSpot.failNext("deploy", permanent("no spot quota"));
    recSvl.failNext("destroy", permanent("403 forbidden: key lacks delete"), 1000);
    const { id } = await f.request("admin");
    await drainLocalRunner({ timeoutMs: 30_000 });
    const d = await dep(id);
    assert.equal(d.status, "failed");
    assert.equal(d.failureStep, "deploy-spot");
    assert.match(d.failureReason ?? "", /no spot quota/);
    assert.match(d.failureReason ?? "", /resources may remain/);
    assert.equal(recSvl.resources.size, 1, "the provider still holds the serverless endpoint");
    const alerts = await alertsOf(id, "deployment.failed");
    assert.equal(alerts.length, 1);
    assert.match(alerts[0]!.text, /may still be running/);
    assert.ok((await lifecycle.findOrphanedComponents()).some((o) => o.deploymentId === id && o.kind === "serverless"), "the orphan sweep sees it");

    recSvl.failNext("destroy", permanent("unused"), 0); // the key got its delete permission back
    await onlyThis(id);
    await reconcileOnce();
    assert.equal(recSvl.held() + recSpot.held(), 0);
    assert.ok((await dep(id)).components.every((c) => c.status === "destroyed"));
  });

  test("a permanent failure in 'start' fails the deployment at once with the reason and alerts", async () => {
    const { id, event } = await requestOnly();
    const orig = recSvl.plan;
    let plans = 0;
    recSvl.plan = () => {
      plans++;
      throw permanent("plan refused: GPU no longer offered");
    };
    try {
      await sendEvent(event.name, event.data);
      await drainLocalRunner({ timeoutMs: 30_000 });
    } finally {
      recSvl.plan = orig;
    }
    const d = await dep(id);
    assert.equal(d.status, "failed");
    assert.equal(d.failureStep, "start");
    assert.match(d.failureReason ?? "", /GPU no longer offered/);
    assert.equal(plans, 1, "a permanent error is not retried");
    assert.equal((await alertsOf(id, "deployment.failed")).length, 1);
  });

  test("a spot-only deployment gets SkyServe's readiness delay plus a margin, not the serverless 15 min", async () => {
    const run = async (minutesLater: number) => {
      const { id, event } = await requestOnly({ mode: "spot" });
      const t = new InngestTestEngine({ function: deployFunction });
      const { result } = await t.execute({
        events: [event],
        steps: [
          // The first check reports still starting, `minutesLater` after the deadline was set.
          { id: "check-spot-health-0", handler: () => ({ state: "creating", message: "replicas starting", ready: 0, now: Date.now() + minutesLater * 60_000 }) },
          { id: "wait-spot-health-0", handler: () => null },
        ],
      });
      return { id, result: result as { status: string; step?: string } };
    };
    const slow = await run(16);
    assert.equal(slow.result.status, "active", "16 min is within the 20 min readiness delay");
    const stuck = await run(31);
    assert.equal(stuck.result.status, "failed");
    assert.equal(stuck.result.step, "wait-spot-health");
    assert.match((await dep(stuck.id)).failureReason ?? "", /not healthy after 30 min/);
  });

  test("a destroy that overtakes a failing deploy sends no false 'Deployment failed' alert", async () => {
    let overtaken = false;
    setWorkflowFaultHook(async (s) => {
      if (s === "deploy-spot" && !overtaken) {
        overtaken = true;
        const d = await db.deployment.findFirstOrThrow({ where: { teamId: f.team.id, status: "deploying" }, orderBy: { createdAt: "desc" } });
        await requestDestroy(f.team.id, actorOf(f.admin), d.id);
        await lifecycle.destroyComponents(d.id);
        await lifecycle.finishDestroy(d.id);
        throw permanent("no spot quota");
      }
    });
    const { id } = await f.request("admin");
    await drainLocalRunner({ timeoutMs: 30_000 });
    assert.ok(overtaken);
    assert.equal((await dep(id)).status, "destroyed");
    assert.equal(recSvl.held() + recSpot.held(), 0);
    assert.deepEqual(await alertsOf(id, "deployment.failed"), []);
  });

  test("deployment/requested delivered twice starts the deploy once", async () => {
    const { id, event } = await requestOnly();
    await sendEvent(event.name, event.data);
    await sendEvent(event.name, event.data);
    await drainLocalRunner({ timeoutMs: 30_000 });
    assert.equal((await dep(id)).status, "active");
    const runs = (await runsOf("tuna-deploy")).filter((r) => (r.event as { event: { data: { deploymentId: string } } }).event.data.deploymentId === id);
    assert.equal(runs.length, 2);
    assert.equal(recSvl.calls.filter((c) => c.method === "deploy").length, 1, "one serverless deploy call");
    assert.equal(recSpot.calls.filter((c) => c.method === "deploy").length, 1, "one spot deploy call");
    assert.equal((await alertsOf(id, "deployment.deploying")).length, 1, "one 'started' alert");
  });
});

describe("teardown that gives up is retried by reconcile", () => {
  test("a destroy that gave up is picked up by the orphan sweep after a grace period and finished", async () => {
    const id = await deployActive();
    recSpot.failNext("destroy", permanent("403 forbidden"), 1000);
    await requestDestroy(f.team.id, actorOf(f.admin), id);
    await drainLocalRunner({ timeoutMs: 30_000 });
    assert.equal((await dep(id)).status, "destroying");
    assert.ok(!(await lifecycle.findOrphanedComponents()).some((o) => o.deploymentId === id), "a destroy still in its grace period is left to its own run");
    await db.$executeRaw`UPDATE "Deployment" SET "updatedAt" = now() - interval '2 hours' WHERE id = ${id}`;
    assert.ok((await lifecycle.findOrphanedComponents()).some((o) => o.deploymentId === id && o.kind === "spot"));

    recSpot.failNext("destroy", permanent("unused"), 0);
    await onlyThis(id);
    await reconcileOnce();
    const d = await dep(id);
    assert.equal(recSpot.held(), 0);
    assert.equal(d.status, "destroyed");
    assert.ok(d.components.every((c) => c.status === "destroyed"));
  });

  test("an orphan is alerted once, when first found, however often its destroy fails", async () => {
    const id = await deployActive();
    await onlyThis(id);
    await db.deployment.update({ where: { id }, data: { status: "failed" } });
    recSvl.failNext("destroy", permanent("403 forbidden"), 1000);
    await reconcileOnce();
    await reconcileOnce();
    assert.equal(recSvl.resources.size, 1);
    // Both components outlived the deployment: one alert each, not one per attempt or cron run.
    const orphanAlerts = async () => (await alertsOf(id, "deployment.orphaned")).map((a) => a.text.split(" ")[0]).sort();
    assert.deepEqual(await orphanAlerts(), ["serverless", "spot"]);
    recSvl.failNext("destroy", permanent("unused"), 0);
    await reconcileOnce();
    assert.equal(recSvl.held() + recSpot.held(), 0);
    assert.deepEqual(await orphanAlerts(), ["serverless", "spot"]);
  });

  test("an orphan whose teardown keeps failing is recalled once a day, and its removal is announced once", async () => {
    const id = await deployActive();
    await onlyThis(id);
    await db.deployment.update({ where: { id }, data: { status: "failed" } });
    recSvl.failNext("destroy", permanent("403 forbidden: key revoked"), 1000);
    await reconcileOnce();
    await reconcileOnce();
    const titles = async () => (await db.alertDelivery.findMany({ where: { channel: { teamId: f.team.id } }, orderBy: { createdAt: "asc" } }))
      .map((a) => (a.payload as { event: { deploymentId?: string; title: string; text: string } }).event)
      .filter((e) => e.deploymentId === id);
    const still = async () => (await titles()).filter((e) => e.title === "Orphaned resources still running");
    assert.equal((await still()).length, 0, "no reminder within a day of the first alert");

    // A day later, still failing: one reminder, naming the error; the next cron run does not repeat it.
    await db.$executeRaw`UPDATE "DeploymentEvent" SET at = at - interval '25 hours' WHERE "deploymentId" = ${id}`;
    await reconcileOnce();
    await reconcileOnce();
    const reminders = await still();
    assert.equal(reminders.length, 1);
    assert.match(reminders[0].text, /403 forbidden: key revoked/);
    assert.match(reminders[0].text, /bills until it is removed/);
    assert.equal((await titles()).filter((e) => e.title === "Orphaned resources removed").length, 0);

    recSvl.failNext("destroy", permanent("unused"), 0);
    await reconcileOnce();
    await reconcileOnce();
    assert.equal(recSvl.held() + recSpot.held(), 0);
    const removed = (await titles()).filter((e) => e.title === "Orphaned resources removed");
    assert.equal(removed.length, 1, "the removal is announced once");
    assert.equal((await alertsOf(id, "deployment.orphans_removed")).length, 1);
  });
});

describe("relaunches", () => {
  test("a spot relaunch racing a destroy removes what it created: nothing outlives the destroyed deployment", async () => {
    const id = await deployActive();
    const spotName = [...recSpot.resources.keys()][0]!;
    recSpot.resources.delete(spotName); // SkyServe lost the service
    let raced = false;
    setWorkflowFaultHook(async (s) => {
      if (s === "relaunch-spot" && !raced) {
        raced = true;
        // The user destroys now; the destroy run (on another runner) completes before the provider call.
        await requestDestroy(f.team.id, actorOf(f.admin), id);
        await lifecycle.destroyComponents(id);
        await lifecycle.finishDestroy(id);
      }
    });
    await sendEvent("deployment/spot.preempted", { deploymentId: id, teamId: f.team.id, source: "test" });
    await drainLocalRunner({ timeoutMs: 60_000 });
    assert.ok(raced);
    const d = await dep(id);
    assert.equal(d.status, "destroyed");
    assert.deepEqual([...recSpot.resources.keys()], [], "no spot service at the provider after destroy");
    assert.equal((await comp(id, "spot")).status, "destroyed");
  });

  test("a relaunched serverless backend is back in the router snapshot at once", async () => {
    const id = await deployActive();
    const svlName = [...recSvl.resources.keys()][0]!;
    recSvl.resources.delete(svlName);
    const v0 = await snapshotVersion();
    await sendEvent("deployment/spot.preempted", { deploymentId: id, teamId: f.team.id, source: "test" });
    await drainLocalRunner({ timeoutMs: 60_000 });
    assert.equal(recSvl.resources.size, 1, "relaunched");
    assert.equal((await comp(id, "serverless")).status, "creating");
    assert.ok((await snapshotVersion()) > v0);
    const mine = (await buildRouterSnapshot()).deployments.find((x) => x.id === id);
    assert.ok(mine?.backends.some((b) => b.kind === "serverless"), "serverless backend published");
  });
});

describe("status checks", () => {
  test("re-checking a gone component does not rewrite its row, nor move when it ended", async () => {
    const id = await deployActive();
    recSvl.resources.clear();
    await lifecycle.checkComponent(id, "serverless", "reconcile");
    const gone = await comp(id, "serverless");
    assert.equal(gone.status, "gone");
    await new Promise((r) => setTimeout(r, 30));
    await lifecycle.reconcileDeployment(id);
    await lifecycle.checkComponent(id, "serverless", "reconcile");
    const later = await comp(id, "serverless");
    assert.equal(later.status, "gone");
    assert.equal(later.updatedAt.getTime(), gone.updatedAt.getTime());
    assert.ok(gone.endedAt);
    assert.equal(later.endedAt?.getTime(), gone.endedAt.getTime());
  });
});

describe("billed lifetime of a component", () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Warm-worker time cost bills for the deployment's serverless component (1 warm worker: its live time). */
  const warmMs = async (id: string) => {
    const [c] = await costForDeployments(await loadDeploymentsForCost({ id }), new Date(Date.now() - 3_600_000), new Date(Date.now() + 3_600_000));
    return c!.cost.usage.serverlessWarmWorkerMs;
  };
  const destroy = async (id: string) => {
    await requestDestroy(f.team.id, actorOf(f.admin), id);
    await drainLocalRunner({ timeoutMs: 30_000 });
    assert.equal((await dep(id)).status, "destroyed");
  };

  test("a serverless endpoint seen gone, then destroyed, is billed until it was seen gone, not until the destroy", async () => {
    const id = await deployActive({ serverlessScaling: { minWorkers: 1 } });
    const born = (await comp(id, "serverless")).startedAt.getTime();
    recSvl.resources.clear(); // deleted out of band
    const seenFrom = Date.now();
    await lifecycle.reconcileDeployment(id);
    const seenBy = Date.now();
    const gone = await comp(id, "serverless");
    assert.equal(gone.status, "gone");
    await sleep(500);
    await destroy(id);
    const destroyed = await comp(id, "serverless");
    assert.equal(destroyed.status, "destroyed");
    assert.equal(destroyed.endedAt?.getTime(), gone.endedAt?.getTime(), "the destroy does not move the end");

    const billed = await warmMs(id);
    assert.ok(billed >= seenFrom - born && billed <= seenBy - born, `billed ${billed} ms, the endpoint existed ${seenFrom - born}..${seenBy - born} ms`);
    assert.equal(billed, gone.endedAt!.getTime() - born);
  });

  test("a relaunch starts a new billed life: the time the component was gone is not billed, the earlier life still is", async () => {
    const id = await deployActive({ serverlessScaling: { minWorkers: 1 } });
    const born = (await comp(id, "serverless")).startedAt.getTime();
    recSvl.resources.clear();
    const seenFrom = Date.now();
    await lifecycle.reconcileDeployment(id);
    const seenBy = Date.now();
    await sleep(500);
    const relaunchFrom = Date.now();
    await lifecycle.relaunchComponent(id, "serverless");
    const relaunchBy = Date.now();
    assert.equal(recSvl.resources.size, 1, "relaunched");
    await sleep(100);
    const destroyFrom = Date.now();
    await destroy(id);
    const destroyBy = Date.now();

    const billed = await warmMs(id);
    const least = seenFrom - born + (destroyFrom - relaunchBy);
    const most = seenBy - born + (destroyBy - relaunchFrom);
    assert.ok(billed >= least && billed <= most, `billed ${billed} ms, the endpoint existed ${least}..${most} ms (gone for ${relaunchFrom - seenBy} ms between)`);

    const c = await db.deploymentComponent.findFirstOrThrow({ where: { deploymentId: id, kind: "serverless" }, include: { earlierLives: true } });
    assert.equal(c.earlierLives.length, 1, "the lost endpoint's life is kept, once");
    assert.equal(c.earlierLives[0]!.startedAt.getTime(), born);
    assert.ok(c.earlierLives[0]!.endedAt.getTime() <= seenBy);
    assert.ok(c.startedAt.getTime() >= relaunchFrom && c.startedAt.getTime() <= relaunchBy, "the replacement's life starts at the relaunch");
    assert.ok(c.endedAt && c.endedAt.getTime() >= destroyFrom);
  });

  test("a resource the provider reports again after it was seen gone is billed again from then, not for the gap", async () => {
    const id = await deployActive({ serverlessScaling: { minWorkers: 1 } });
    const name = [...recSvl.resources.keys()][0]!;
    recSvl.resources.delete(name);
    await lifecycle.checkComponent(id, "serverless", "reconcile");
    const gone = await comp(id, "serverless");
    assert.ok(gone.endedAt);
    await sleep(300);
    recSvl.resources.set(name, { state: "ready", creates: 1 }); // the status call had missed it
    const backFrom = Date.now();
    await lifecycle.checkComponent(id, "serverless", "reconcile");
    const back = await db.deploymentComponent.findFirstOrThrow({ where: { deploymentId: id, kind: "serverless" }, include: { earlierLives: true } });
    assert.equal(back.status, "ready");
    assert.equal(back.endedAt, null);
    assert.ok(back.startedAt.getTime() >= backFrom);
    assert.deepEqual(back.earlierLives.map((l) => [l.startedAt.getTime(), l.endedAt.getTime()]), [[gone.startedAt.getTime(), gone.endedAt.getTime()]]);
  });
});
