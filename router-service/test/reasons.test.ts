// Why a backend's state changed, as the control plane receives it: each `backend_state` event of a usage report
// carries the router's reason (the dashboard shows it next to the state), bounded by the contract.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { describe, test } from "node:test";
import { BackendRuntime, type StateChange } from "../src/backend.js";
import { type BackendStateEvent, STATE_REASON_MAX_CHARS, usageReportSchema } from "../src/contract.js";
import { startRouter, startSimulator } from "../src/index.js";
import { type FakeControlPlane, startControlPlane } from "./helpers/controlPlane.js";
import { chat, deployment, KEY, snapshot, waitFor } from "./helpers/fixtures.js";

const spotEvents = (cp: FakeControlPlane): BackendStateEvent[] =>
  [...cp.reports.values()].flatMap((r) => r.events).filter((e) => e.backendId === "spot");

describe("backend state reasons in the usage report", () => {
  test("an ejection says how many requests failed in a row and how the last one failed", async () => {
    const svl = await startSimulator({ model: "qwen-small" });
    const spot = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    const stateDir = `/tmp/tuna-rt-reasons-eject-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    cp.setSnapshot(snapshot([deployment({ svlUrl: svl.url, spotUrl: spot.url, routing: { ...deployment().routing, healthCheckIntervalMs: 60_000 } })]));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 50, usageFlushMs: 50, stateDir, logLevel: "silent" });
    try {
      await waitFor(() => spotEvents(cp).some((e) => e.state === "ready"), 5000);
      // The spot instance goes away: nothing listens on its port any more, so every request fails to connect
      // (and fails over to serverless) until the third one ejects it.
      await spot.close();
      for (let i = 0; i < 3; i++) assert.equal((await chat(router.url, KEY)).status, 200, `request ${i + 1} fails over`);
      await waitFor(() => spotEvents(cp).some((e) => e.state === "ejected"), 5000);
      const ejected = spotEvents(cp).find((e) => e.state === "ejected");
      assert.equal(ejected?.reason, "ejected: 3 consecutive failures (connect)");
      assert.equal(cp.rejectedReports, 0);
      // Nothing of the backend's address or its upstream headers is in any reason.
      const reasons = [...cp.reports.values()].flatMap((r) => r.events.map((e) => e.reason ?? ""));
      for (const r of reasons) {
        assert.ok(!r.includes("127.0.0.1") && !r.includes("upstream-secret"), r);
        assert.ok(r.length <= STATE_REASON_MAX_CHARS);
      }
    } finally {
      await router.close();
      await cp.close();
      await svl.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("spot left idle goes cold, and the event says it was idle for how long", async () => {
    const svl = await startSimulator({ model: "qwen-small" });
    const spot = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    const stateDir = `/tmp/tuna-rt-reasons-idle-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    cp.setSnapshot(snapshot([deployment({ svlUrl: svl.url, spotUrl: spot.url, routing: { ...deployment().routing, idleTimeoutS: 0.3 } })]));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 50, usageFlushMs: 50, stateDir, logLevel: "silent" });
    try {
      await waitFor(() => spotEvents(cp).some((e) => e.state === "ready"), 5000);
      await waitFor(() => spotEvents(cp).at(-1)?.state === "cold", 5000);
      const states = spotEvents(cp).map((e) => [e.state, e.reason]);
      assert.deepEqual(states, [
        ["warming", "startup"],
        ["ready", "readiness probe passed"],
        ["cold", "idle: no requests for 0.3 s"],
      ]);
    } finally {
      await router.close();
      await cp.close();
      await svl.close();
      await spot.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("a drain notice and its end are named as such, not as a generic report or config change", () => {
    const changes: StateChange[] = [];
    const d = deployment({ svlUrl: "http://127.0.0.1:1", spotUrl: "http://127.0.0.1:2" });
    const spotCfg = d.backends[1];
    // Not started: no timers, no probes; spot stays cold until told otherwise.
    const b = new BackendRuntime("dep_1", spotCfg, d.routing, (c) => changes.push(c));
    try {
      b.report(undefined, true);
      b.report(undefined, false);
      b.update({ ...spotCfg, draining: true }, d.routing);
      b.update({ ...spotCfg, draining: false }, d.routing);
      assert.deepEqual(
        changes.map((c) => [c.state, c.reason]),
        [
          ["draining", "drain notice reported"],
          ["cold", "drain lifted by report"],
          ["draining", "drain notice in config"],
          ["cold", "drain lifted in config"],
        ],
      );
    } finally {
      b.dispose();
    }
  });
});

describe("usage report contract: backend state reasons", () => {
  const report = (events: unknown[]) => ({
    routerId: "router-1", batchId: "5b0f5a55-4a8a-4a4e-9a63-3c4c3d6f6b10", periodStart: "2026-11-03T14:00:00.000Z", periodEnd: "2026-11-03T14:00:05.000Z",
    configVersion: 1, entries: [], events,
  });
  const event = (extra: Record<string, unknown> = {}) => ({ type: "backend_state", deploymentId: "dep_1", backendId: "spot", state: "ejected", at: "2026-11-03T14:00:01.000Z", ...extra });

  test("no reason (an older router) is still valid; an over-long one is cut to 200 characters, never split inside a character, not refused", () => {
    const old = usageReportSchema.safeParse(report([event()]));
    assert.ok(old.success);
    assert.equal(old.data.events[0].reason, undefined);

    const long = usageReportSchema.safeParse(report([event({ reason: `ejected: ${"x".repeat(500)}` })]));
    assert.ok(long.success, "a long reason does not cost the report");
    assert.equal(long.data.events[0].reason?.length, STATE_REASON_MAX_CHARS);
    assert.equal(long.data.events[0].reason, `ejected: ${"x".repeat(STATE_REASON_MAX_CHARS - 9)}`);

    // A character outside the BMP (two UTF-16 units) straddling the cut is dropped whole.
    const emoji = usageReportSchema.safeParse(report([event({ reason: `${"y".repeat(STATE_REASON_MAX_CHARS - 1)}🔥tail` })]));
    assert.ok(emoji.success);
    assert.equal(emoji.data.events[0].reason, "y".repeat(STATE_REASON_MAX_CHARS - 1));

    const exact = "z".repeat(STATE_REASON_MAX_CHARS);
    assert.equal(usageReportSchema.parse(report([event({ reason: exact })])).events[0].reason, exact);
    assert.equal(usageReportSchema.safeParse(report([event({ reason: 42 })])).success, false, "still a string");
  });

  test("a reason is text that can be stored and shown: control characters and lone surrogate halves are replaced", () => {
    const parsed = usageReportSchema.parse(report([event({ reason: "a\u0000b\nc \ud83d 🔥 \ude00" })]));
    assert.equal(parsed.events[0].reason, "a\ufffdb\ufffdc \ufffd 🔥 \ufffd");
  });
});
