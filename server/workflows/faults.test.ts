import { describe, test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { requestDestroy, requestDestroyAll, setWorkflowFaultHook, lifecycle } from "../deployments";
import { drainLocalRunner } from "./runner";
import { sendEvent, setEventSink } from "./events";
import { actorOf, workflowFixture } from "./test/setup";
import { permanent, recSpot, recSvl, transient } from "./test/recording-provider";

/**
 * Fault injection through the local runner (real retries, real compensation): every external step of
 * `deploy` fails in turn; afterwards the providers hold nothing and the deployment is failed naming the step.
 */
await useTestDatabase();
process.env.TUNA_RUNNER_BACKOFF_MS = "10";
const f = await workflowFixture();
const dep = (id: string) => db.deployment.findUniqueOrThrow({ where: { id }, include: { components: true, events: { orderBy: { at: "asc" } } } });
const held = () => recSvl.held() + recSpot.held();

async function deployWith(inject: () => void, over = {}) {
  inject();
  const { id } = await f.request("admin", over);
  await drainLocalRunner({ timeoutMs: 20_000 });
  return dep(id);
}

beforeEach(() => {
  recSvl.reset();
  recSpot.reset();
  setWorkflowFaultHook(null);
  setEventSink(null);
});

describe("deploy: a failure at any external step compensates", () => {
  const cases: Array<{ step: string; inject: () => void; reason: RegExp }> = [
    { step: "deploy-serverless", inject: () => recSvl.failNext("deploy", permanent("model too large for L4")), reason: /model too large/ },
    { step: "deploy-spot", inject: () => recSpot.failNext("deploy", permanent("no spot quota")), reason: /no spot quota/ },
    {
      step: "publish-router",
      inject: () => setWorkflowFaultHook((s) => {
        if (s === "publish-router") throw new Error("snapshot store unavailable");
      }),
      reason: /snapshot store unavailable/,
    },
    { step: "wait-serverless-health", inject: () => recSvl.failNext("status", permanent("endpoint rejected the health check")), reason: /health check/ },
    {
      step: "activate",
      inject: () => setWorkflowFaultHook((s) => {
        if (s === "activate") throw new Error("database went away");
      }),
      reason: /database went away/,
    },
  ];
  for (const c of cases) {
    test(`${c.step} fails → providers hold nothing, deployment failed at ${c.step}`, async () => {
      const d = await deployWith(c.inject);
      assert.equal(d.status, "failed");
      assert.equal(d.failureStep, c.step);
      assert.match(d.failureReason ?? "", c.reason);
      assert.equal(held(), 0, `left behind: ${[...recSvl.resources.keys(), ...recSpot.resources.keys(), ...recSvl.storage, ...recSpot.storage].join(", ")}`);
      assert.ok(d.components.every((x) => x.status === "destroyed"), "components marked destroyed");
      assert.ok(d.events.some((e) => e.step === c.step && e.status === "failed"), "timeline names the failed step");
    });
  }

  test("serverless that never becomes healthy fails the health step and is cleaned up", async () => {
    const d = await deployWith(() => {
      recSvl.statusOverride = "failed";
    });
    assert.equal(d.failureStep, "wait-serverless-health");
    assert.equal(held(), 0);
  });

  test("transient provider errors (503) retry with backoff and do not duplicate the resource", async () => {
    const d = await deployWith(() => recSvl.failNext("deploy", transient("upstream 503"), 2));
    assert.equal(d.status, "active");
    assert.equal(recSvl.calls.filter((c) => c.method === "deploy").length, 3);
    assert.equal(recSvl.resources.size, 1);
    assert.ok(d.events.some((e) => e.step === "deploy-serverless" && e.status === "retrying"));
  });
});

describe("destroy", () => {
  test("destroy twice succeeds (the second is a no-op)", async () => {
    const d = await deployWith(() => {});
    assert.equal(d.status, "active");
    await requestDestroy(f.team.id, actorOf(f.developer), d.id);
    await drainLocalRunner();
    assert.equal((await dep(d.id)).status, "destroyed");
    assert.equal(held(), 0);
    const again = await requestDestroy(f.team.id, actorOf(f.developer), d.id);
    assert.equal(again.status, "destroyed");
    // The workflow itself is idempotent too: a duplicate event completes without touching anything.
    const before = recSvl.calls.length;
    await sendEvent("deployment/destroy.requested", { deploymentId: d.id, teamId: f.team.id });
    await drainLocalRunner();
    const runs = await db.workflowRun.findMany({ where: { functionId: "tuna-destroy" }, orderBy: { createdAt: "desc" }, take: 2 });
    assert.ok(runs.every((r) => r.status === "completed"));
    assert.equal(recSvl.calls.length, before);
  });

  test("destroy of a half-created deployment removes what exists", async () => {
    // The deploy run stopped after the serverless endpoint was created (spot never started).
    setEventSink(async () => {});
    const { id } = await f.request("admin");
    await lifecycle.startDeploying(id);
    await lifecycle.deployComponent(id, "serverless");
    setEventSink(null);
    assert.equal(recSvl.resources.size, 1);
    await requestDestroy(f.team.id, actorOf(f.admin), id);
    await drainLocalRunner();
    const d = await dep(id);
    assert.equal(d.status, "destroyed");
    assert.equal(held(), 0);
    assert.deepEqual(d.components.map((c) => c.status).sort(), ["destroyed", "destroyed"]);
  });

  test("destroy while the provider is flaky retries until everything is gone", async () => {
    const d = await deployWith(() => {});
    recSpot.failNext("destroy", transient("503 from provider"), 2);
    await requestDestroy(f.team.id, actorOf(f.admin), d.id);
    await drainLocalRunner();
    assert.equal((await dep(d.id)).status, "destroyed");
    assert.equal(held(), 0);
  });

  test("destroy-all fans out through step.sendEvent and tears down every deployment of the team", async () => {
    const a = await deployWith(() => {});
    const b = await deployWith(() => {}, { mode: "serverless", spotClouds: [] });
    assert.equal(recSvl.resources.size, 2);
    await requestDestroyAll(f.team.id, actorOf(f.admin));
    await drainLocalRunner({ timeoutMs: 20_000 });
    for (const d of [a, b]) assert.equal((await dep(d.id)).status, "destroyed");
    assert.equal(held(), 0);
  });
});

describe("destroy racing a deploy", () => {
  test("a destroy that lands while deploy steps run leaves nothing behind", async () => {
    let destroyedMidway = false;
    setWorkflowFaultHook(async (s) => {
      // The destroy request and its whole run happen between the serverless step's check and its external call.
      if (s === "deploy-serverless" && !destroyedMidway) {
        destroyedMidway = true;
        const d = await db.deployment.findFirstOrThrow({ where: { teamId: f.team.id, status: "deploying" }, orderBy: { createdAt: "desc" } });
        await requestDestroy(f.team.id, actorOf(f.admin), d.id);
      }
    });
    const { id } = await f.request("admin");
    await drainLocalRunner({ timeoutMs: 20_000 });
    assert.ok(destroyedMidway);
    const d = await dep(id);
    assert.equal(d.status, "destroyed");
    assert.equal(held(), 0, "nothing created by the overtaken deploy survives");
  });
});
