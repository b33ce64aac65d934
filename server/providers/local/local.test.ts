import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { processAlive } from "../../test/process";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTestSpec } from "../base/testing";
import { type Component, type Provider, type ResourceRef, refFromPlan } from "../base/types";
import { createLocalProvider, localServerless, localSpot, preemptLocal, waitForLocalReady } from "./index";
import { readState, simulatorPath, stateDir, stopAllSimulators } from "./process";

// Each test run gets its own state dir, so nothing leaks between runs or into the repo's .tuna/.
const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-local-provider-"));
process.env.TUNA_LOCAL_PROVIDER_DIR = dir;

const simMissing = existsSync(simulatorPath()) ? false : `simulator not found at ${simulatorPath()} (router-service/src/sim/main.ts not written yet)`;

/** Every pid this file started, killed in `after` whatever happened. */
const started = new Set<number>();
function track(c: Component): Component {
  started.add(Number(c.externalIds.pid));
  return c;
}
const alive = processAlive;

after(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test("state files live in TUNA_DATA_DIR/local-provider unless TUNA_LOCAL_PROVIDER_DIR sets them apart", () => {
  const saved = { local: process.env.TUNA_LOCAL_PROVIDER_DIR, data: process.env.TUNA_DATA_DIR };
  try {
    delete process.env.TUNA_LOCAL_PROVIDER_DIR;
    process.env.TUNA_DATA_DIR = "/srv/tuna-data";
    assert.equal(stateDir(), "/srv/tuna-data/local-provider");
    process.env.TUNA_LOCAL_PROVIDER_DIR = "/elsewhere";
    assert.equal(stateDir(), "/elsewhere");
  } finally {
    for (const [k, v] of [["TUNA_LOCAL_PROVIDER_DIR", saved.local], ["TUNA_DATA_DIR", saved.data]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

describe("local provider: plan and preflight (no processes)", () => {
  test("plan is deterministic, carries the engine command and forces --dtype half on T4", () => {
    const spec = makeTestSpec({ gpu: "T4", name: "tuna-plan-test" });
    const p = localServerless.plan(spec);
    assert.deepEqual(p, localServerless.plan(spec));
    assert.equal(p.provider, "local");
    assert.equal(p.kind, "serverless");
    assert.equal(p.resourceName, "tuna-plan-test-svl");
    assert.equal(localSpot.plan(spec).resourceName, "tuna-plan-test-spot");
    assert.match(p.files["engine-command.sh"], /^vllm serve 'Qwen\/Qwen3-0\.6B' .* --dtype half\n$/);
    assert.ok((p.request.engineArgs as string[]).includes("half"));
    assert.ok(p.notes.some((n) => /T4 is Turing/.test(n)));
    assert.deepEqual(p.request.simulator, { model: "qwen-small", coldStartMs: 1500, ttftMs: 50, tokensPerS: 200 });
    assert.equal((localSpot.plan(spec).request.simulator as { coldStartMs: number }).coldStartMs, 4000);
  });

  test("cold start comes from the environment when set", () => {
    process.env.TUNA_LOCAL_COLD_START_MS = "321";
    try {
      assert.equal((localServerless.plan(makeTestSpec()).request.simulator as { coldStartMs: number }).coldStartMs, 321);
      process.env.TUNA_LOCAL_COLD_START_MS = "soon";
      assert.throws(() => localServerless.plan(makeTestSpec()), /TUNA_LOCAL_COLD_START_MS must be a non-negative integer/);
    } finally {
      delete process.env.TUNA_LOCAL_COLD_START_MS;
    }
  });

  test("plan rejects an invalid spec with readable errors", () => {
    assert.throws(() => localServerless.plan(makeTestSpec({ gpu: "V100" })), /gpu: unknown GPU "V100"/);
  });

  test("needs no credentials", () => {
    assert.equal(localServerless.credentialsSchema.safeParse({}).success, true);
  });

  test("preflight passes when the simulator exists, and names it when it does not", async () => {
    const plan = localServerless.plan(makeTestSpec());
    const ok = await localServerless.preflight(plan, undefined);
    assert.deepEqual(ok.filter((f) => f.level === "error").map((f) => f.code), simMissing ? ["simulator_missing"] : []);
    process.env.TUNA_LOCAL_SIM_PATH = path.join(dir, "nope.ts");
    try {
      const bad = await localServerless.preflight(plan, undefined);
      const f = bad.find((x) => x.code === "simulator_missing");
      assert.ok(f && f.level === "error" && f.message.includes("nope.ts"));
    } finally {
      delete process.env.TUNA_LOCAL_SIM_PATH;
    }
  });

  test("status, destroy and cleanup of something never deployed: gone, and no error", async () => {
    const ref: ResourceRef = { resourceName: "never-deployed", region: "local", externalIds: {} };
    assert.deepEqual(await localServerless.status(ref, {}), { state: "gone" });
    await localServerless.destroy(ref, {});
    await localServerless.cleanupStorage(ref, {});
  });
});

describe("local provider: real simulator processes", { skip: simMissing }, () => {
  const fast: Provider = createLocalProvider({ kind: "serverless", coldStartMs: 300, ttftMs: 5, tokensPerS: 0 });
  const spot: Provider = createLocalProvider({ kind: "spot", coldStartMs: 300, ttftMs: 5, tokensPerS: 0 });

  before(() => {
    if (simMissing) console.log(`SKIP: ${simMissing}`);
  });

  test("deploy → creating → ready → chat completion → destroy → gone → destroy again", async () => {
    const plan = fast.plan(makeTestSpec({ name: "tuna-e2e-local" }));
    plan.request.simulator = { ...(plan.request.simulator as object), coldStartMs: 1500 };
    const c = track(await fast.deploy(plan, {}, { timeoutMs: 20_000 }));
    assert.equal(c.provider, "local");
    assert.equal(c.kind, "serverless");
    assert.match(c.endpointUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(c.upstreamHeaders, {});
    assert.deepEqual(Object.keys(c.externalIds).sort(), ["pid", "port", "stateFile"]);
    assert.equal(c.externalIds.port, new URL(c.endpointUrl).port);

    const ref = refFromPlan(plan, c.externalIds);
    // Cold start: the process is up but the model is not loaded yet.
    assert.equal((await fast.status(ref, {})).state, "creating");
    const ready = await waitForLocalReady(fast, ref, 15_000);
    assert.equal(ready.state, "ready", ready.message);
    assert.deepEqual(ready.replicas, { ready: 1, total: 1 });

    const res = await fetch(`${c.endpointUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hello" }], max_tokens: 4 }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
    assert.ok(body.choices[0].message.content.length > 0);
    assert.equal(body.usage.completion_tokens, 4);

    // A second deploy of the same plan (a retried workflow step) reuses the running simulator.
    const again = await fast.deploy(plan, {});
    assert.deepEqual(again, c);

    // Another process (no in-memory state) can see and destroy it: only the state file is shared.
    const pid = Number(c.externalIds.pid);
    await fast.destroy({ resourceName: plan.resourceName, region: "local", externalIds: {} }, {});
    assert.equal(alive(pid), false, "the simulator process is killed");
    assert.deepEqual(await fast.status(ref, {}), { state: "gone" });
    await fast.destroy(ref, {});
    await assert.rejects(fetch(`${c.endpointUrl}/health`));

    assert.ok(existsSync(c.externalIds.stateFile));
    await fast.cleanupStorage(ref, {});
    assert.equal(existsSync(c.externalIds.stateFile), false);
    await fast.cleanupStorage(ref, {});
    assert.deepEqual(await fast.status(ref, {}), { state: "gone" });
  });

  test("spot: preempt → failed (preempted); destroy still succeeds", async () => {
    const plan = spot.plan(makeTestSpec({ name: "tuna-e2e-preempt" }));
    const c = track(await spot.deploy(plan, {}));
    assert.equal(c.provider, "local-spot");
    assert.equal(c.kind, "spot");
    const ref = refFromPlan(plan, c.externalIds);
    assert.equal((await waitForLocalReady(spot, ref, 15_000)).state, "ready");

    await preemptLocal(ref, { graceMs: 100 });
    assert.equal(alive(Number(c.externalIds.pid)), false);
    const s = await spot.status(ref, {});
    assert.equal(s.state, "failed");
    assert.match(s.message ?? "", /preempted/);

    await spot.destroy(ref, {});
    assert.equal((await spot.status(ref, {})).state, "gone");
    await spot.cleanupStorage(ref, {});
  });

  test("a simulator that dies on its own is reported failed with its log", async () => {
    const plan = fast.plan(makeTestSpec({ name: "tuna-e2e-crash" }));
    const c = track(await fast.deploy(plan, {}));
    const ref = refFromPlan(plan, c.externalIds);
    process.kill(Number(c.externalIds.pid), "SIGKILL");
    let s = await fast.status(ref, {});
    for (let i = 0; i < 40 && s.state !== "failed"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await fast.status(ref, {});
    }
    assert.equal(s.state, "failed");
    assert.match(s.message ?? "", /exited unexpectedly/);
    await fast.destroy(ref, {});
    await fast.cleanupStorage(ref, {});
    assert.equal(readState(c.externalIds.stateFile), undefined);
  });

  test("stopAllSimulators stops what a state folder records as running, and nothing else", async () => {
    const a = track(await fast.deploy(fast.plan(makeTestSpec({ name: "tuna-e2e-sweep-a" })), {}));
    const b = track(await spot.deploy(spot.plan(makeTestSpec({ name: "tuna-e2e-sweep-b" })), {}));
    // A state file whose pid is alive but is not a simulator of that resource (here: this test process).
    const foreign = path.join(dir, "not-ours.json");
    writeFileSync(foreign, JSON.stringify({ ...readState(a.externalIds.stateFile), resourceName: "not-ours", pid: process.pid }));
    writeFileSync(path.join(dir, "garbage.json"), "{ not json");
    try {
      assert.equal(await stopAllSimulators(dir), 2);
      assert.equal(alive(Number(a.externalIds.pid)), false);
      assert.equal(alive(Number(b.externalIds.pid)), false);
      assert.equal(await stopAllSimulators(dir), 0, "a second sweep finds nothing running");
      assert.equal(await stopAllSimulators(path.join(dir, "no-such-folder")), 0);
    } finally {
      rmSync(foreign, { force: true });
      rmSync(path.join(dir, "garbage.json"), { force: true });
    }
  });

  test("deploy fails with the simulator's own error when it cannot start", async () => {
    const plan = fast.plan(makeTestSpec({ name: "tuna-e2e-badsim" }));
    const bad = path.join(dir, "bad-sim.mjs");
    writeFileSync(bad, 'console.error("boom: no GPU here"); process.exit(3);\n');
    process.env.TUNA_LOCAL_SIM_PATH = bad;
    try {
      await assert.rejects(fast.deploy(plan, {}), (e: unknown) => e instanceof Error && /exited before listening \(code 3\).*boom: no GPU here/s.test(e.message));
    } finally {
      delete process.env.TUNA_LOCAL_SIM_PATH;
      const st = readState(path.join(dir, `${plan.resourceName}.json`));
      if (st) started.add(st.pid);
      await fast.cleanupStorage(refFromPlan(plan), {});
    }
    assert.equal(existsSync(path.join(dir, `${plan.resourceName}.json`)), false);
  });
});
