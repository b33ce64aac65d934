// Config sync from the control plane and usage delivery (with spool) against a fake control plane.
import assert from "node:assert/strict";
import http from "node:http";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, KEY, request, sleep, snapshot, waitFor } from "./helpers/fixtures.js";
import { type FakeControlPlane, startControlPlane, totalRequests } from "./helpers/controlPlane.js";

describe("config sync", () => {
  let sim: SimulatorHandle;
  let cp: FakeControlPlane;
  const stateDir = `/tmp/tuna-rt-sync-${process.pid}`;
  before(async () => {
    rmSync(stateDir, { recursive: true, force: true });
    sim = await startSimulator({ model: ["qwen-small", "new-model"] });
    cp = await startControlPlane();
  });
  after(async () => {
    await sim.close();
    await cp.close();
  });

  test("pulls with the router token, polls with If-None-Match, rejects invalid snapshots, caches the last good one", async () => {
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })], { version: 1 }));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 50, stateDir, logLevel: "silent" });
    try {
      assert.equal((await chat(router.url, KEY)).status, 200);
      await waitFor(() => cp.notModified >= 2);

      cp.setSnapshot({ version: 2, deployments: "nope", apiKeys: [] });
      await waitFor(() => router.metrics.configRejected.get() >= 1);
      assert.equal(router.store.current?.version, 1, "invalid snapshot is not applied");
      assert.equal((await chat(router.url, KEY)).status, 200, "still serving the last good config");

      const v3 = snapshot([deployment({ svlUrl: sim.url, models: ["qwen-small", "new-model"], routing: { policy: "serverless-only" } })], { version: 3 });
      cp.setSnapshot(v3);
      await waitFor(() => router.store.current?.version === 3);
      assert.equal((await chat(router.url, KEY, { model: "new-model" })).status, 200);
      assert.match((await request(`${router.url}/metrics`)).body, /tuna_router_config_version 3/);
      const cached = JSON.parse(readFileSync(`${stateDir}/config.json`, "utf8"));
      assert.equal(cached.version, 3);
    } finally {
      await router.close();
    }

    // Control plane down at boot: the cached snapshot serves.
    cp.configDown = true;
    const again = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 50, stateDir, logLevel: "silent" });
    try {
      assert.equal(again.store.current?.version, 3);
      assert.equal((await chat(again.url, KEY, { model: "new-model" })).status, 200);
    } finally {
      await again.close();
      cp.configDown = false;
    }
  });

  test("config reload under load drops nothing", async () => {
    const slow = await startSimulator({ model: "qwen-small", ttftMs: 20 });
    const mk = (v: number) => {
      const s = snapshot([deployment({ svlUrl: slow.url, spotUrl: sim.url, routing: { ...deployment().routing, policy: "weighted", weights: { svl: v % 2, spot: 1 } } })], { version: v });
      return s;
    };
    cp.setSnapshot(mk(10));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 30, stateDir: `${stateDir}-load`, logLevel: "silent" });
    try {
      let v = 10;
      const flipper = setInterval(() => cp.setSnapshot(mk(++v)), 60);
      const statuses: number[] = [];
      const end = Date.now() + 1500;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (Date.now() < end) statuses.push((await chat(router.url, KEY)).status);
        }),
      );
      clearInterval(flipper);
      assert.ok(v > 20, "many reloads happened");
      assert.ok((router.store.current?.version ?? 0) > 15);
      assert.ok(statuses.length > 100);
      assert.deepEqual([...new Set(statuses)], [200], "every request succeeded across reloads");
      await waitFor(() => router.inflight() === 0);
      for (const b of router.store.allBackends()) assert.equal(b.inflight, 0);
    } finally {
      await router.close();
      await slow.close();
    }
  });
});

describe("usage reports", () => {
  test("batched per key × deployment × backend, schema-valid, with backend state events", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const spot = await startSimulator({ model: "qwen-small", coldStartMs: 200 });
    const cp = await startControlPlane();
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, spotUrl: spot.url })], { version: 7 }));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 100, stateDir: `/tmp/tuna-rt-usage-${process.pid}`, logLevel: "silent" });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await chat(router.url, KEY, { max_tokens: 7 })).status, 200);
      await waitFor(() => totalRequests(cp) >= 5 && [...cp.reports.values()].some((r) => r.events.some((e) => e.state === "ready")), 5000);
      assert.equal(cp.rejectedReports, 0);
      const entries = [...cp.reports.values()].flatMap((r) => r.entries);
      const svl = entries.filter((e) => e.backendId === "svl");
      assert.equal(svl.reduce((s, e) => s + e.outputTokens, 0) + entries.filter((e) => e.backendId === "spot").reduce((s, e) => s + e.outputTokens, 0), 35);
      assert.equal(entries[0].keyId, "key_a");
      assert.equal(entries[0].deploymentId, "dep_1");
      const report = [...cp.reports.values()][0];
      assert.equal(report.configVersion, 7);
      assert.equal(entries.reduce((s, e) => s + e.latencyMs.counts.reduce((a, b) => a + b, 0), 0), 5);
      const events = [...cp.reports.values()].flatMap((r) => r.events).filter((e) => e.backendId === "spot").map((e) => e.state);
      assert.deepEqual(events.slice(0, 2), ["warming", "ready"]);
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
      await spot.close();
    }
  });

  test("every reported state is closed: a backend removed from the config or a router stopping ends in cold; a restart keeps the router id", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const spot = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    const stateDir = `/tmp/tuna-rt-close-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    const events = () => [...cp.reports.values()].flatMap((r) => r.events.map((e) => ({ ...e, routerId: r.routerId })));
    const spotStates = () => events().filter((e) => e.backendId === "spot").map((e) => e.state);
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, spotUrl: spot.url })], { version: 1 }));
    let router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 30, usageFlushMs: 50, stateDir, logLevel: "silent" });
    let firstId = "";
    try {
      await waitFor(() => spotStates().includes("ready"), 5000);
      firstId = events()[0].routerId;
      // The deployment is destroyed: the control plane's snapshot no longer carries it.
      cp.setSnapshot(snapshot([], { version: 2 }));
      await waitFor(() => spotStates().at(-1) === "cold", 3000);
      const closing = events().filter((e) => e.backendId === "spot").at(-1)!;
      assert.equal(closing.reason, "removed from config");
      assert.equal(events().filter((e) => e.backendId === "svl").at(-1)?.state, "cold", "every backend's view is closed, serverless too");
      cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, spotUrl: spot.url })], { version: 3 }));
      await waitFor(() => spotStates().at(-1) === "ready", 5000);
    } finally {
      await router.close();
    }
    // Stopping: the closing events go out in the last report, before the router exits.
    const last = events().filter((e) => e.backendId === "spot").at(-1)!;
    assert.deepEqual([last.state, last.reason], ["cold", "router stopped"]);
    assert.equal(readFileSync(`${stateDir}/router-id`, "utf8").trim(), firstId, "the id is kept in the state dir");

    router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 30, usageFlushMs: 50, stateDir, logLevel: "silent" });
    try {
      const before = events().length;
      await waitFor(() => events().slice(before).some((e) => e.backendId === "spot" && e.state === "ready"), 5000);
      assert.deepEqual([...new Set(events().map((e) => e.routerId))], [firstId], "a restarted router reports under the same id");
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
      await spot.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("an idle router still reports, empty, once per heartbeat period", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    const stateDir = `/tmp/tuna-rt-heartbeat-${process.pid}`;
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 20, usageHeartbeatMs: 300, stateDir, logLevel: "silent" });
    try {
      await sleep(1000);
      const reports = [...cp.reports.values()];
      const empty = reports.filter((r) => r.entries.length === 0 && r.events.length === 0);
      // ~1 s / 300 ms: 3-4 heartbeats (the first at the first flush), not one per 20 ms flush.
      assert.ok(empty.length >= 3 && empty.length <= 5, `${empty.length} empty reports`);
      assert.equal(cp.rejectedReports, 0);
      assert.equal((await chat(router.url, KEY)).status, 200);
      await waitFor(() => totalRequests(cp) === 1, 2000);
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test("a spool that cannot be written (disk full, removed) keeps reports in memory and delivers them; the router keeps serving", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    const stateDir = `/tmp/tuna-rt-spoolerr-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 50, stateDir, logLevel: "silent" });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await chat(router.url, KEY)).status, 200);
      await waitFor(() => totalRequests(cp) === 2, 3000);
      // The spool folder becomes a file: every write and listing fails from now on.
      rmSync(`${stateDir}/usage-spool`, { recursive: true, force: true });
      writeFileSync(`${stateDir}/usage-spool`, "not a folder");
      cp.usageDown = true;
      for (let i = 0; i < 3; i++) assert.equal((await chat(router.url, KEY)).status, 200);
      await sleep(300);
      assert.match((await request(`${router.url}/metrics`)).body, /tuna_router_usage_reports_total\{result="spool_failed"\} [1-9]/);
      cp.usageDown = false;
      await waitFor(() => totalRequests(cp) === 5, 5000);
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
    }
  });

  test("a state dir that cannot be created: the router starts, keeps reports in memory, and spools once the dir can be made", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    // A file where the state dir's parent should be: every mkdir and write under it fails (ENOTDIR), as on a
    // read-only mount.
    const blocker = `/tmp/tuna-rt-statefile-${process.pid}`;
    rmSync(blocker, { recursive: true, force: true });
    writeFileSync(blocker, "not a folder");
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 50, stateDir: `${blocker}/state`, logLevel: "silent" });
    try {
      assert.equal((await chat(router.url, KEY)).status, 200);
      await waitFor(() => totalRequests(cp) === 1, 3000);
      assert.match((await request(`${router.url}/metrics`)).body, /tuna_router_usage_reports_total\{result="spool_failed"\} [1-9]/);
      // The way is clear again: the next report is spooled on disk (mkdir retried), then delivered.
      rmSync(blocker);
      cp.usageDown = true;
      assert.equal((await chat(router.url, KEY)).status, 200);
      const spoolDir = `${blocker}/state/usage-spool`;
      await waitFor(() => existsSync(spoolDir) && readdirSync(spoolDir).some((f) => f.endsWith(".json")), 3000);
      cp.usageDown = false;
      await waitFor(() => totalRequests(cp) === 2, 5000);
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
      rmSync(blocker, { recursive: true, force: true });
    }
  });

  test("every request is counted once where it ended: a fallback that filled up meanwhile, a client that left mid-attempt", async () => {
    const spot = await startSimulator({ model: "qwen-small" });
    const svl = await startSimulator({ model: "qwen-small", ttftMs: 1000 });
    const cp = await startControlPlane();
    const d = deployment({ svlUrl: svl.url, spotUrl: spot.url });
    d.backends[0].maxInflight = 1;
    d.backends[1].maxInflightPerReplica = 1;
    d.routing.firstByteTimeoutMs = 300;
    d.routing.responseTimeoutMs = 300;
    cp.setSnapshot(snapshot([d]));
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 50, stateDir: `/tmp/tuna-rt-usage-once-${process.pid}`, logLevel: "silent" });
    try {
      await waitFor(() => router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot")?.state() === "ready");
      spot.setFault({ mode: "slow", delayMs: 2000 });
      // A goes to spot and times out; B meanwhile fills serverless (its only slot), so A has nowhere to fail over.
      const a = chat(router.url, KEY);
      await sleep(50);
      const b = chat(router.url, KEY);
      assert.deepEqual([(await a).status, (await b).status], [504, 504]);
      // C leaves while its attempt is still waiting for spot.
      await new Promise<void>((resolve) => {
        const req = http.request(`${router.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
        req.on("error", () => resolve());
        req.end(JSON.stringify({ model: "qwen-small", messages: [], max_tokens: 2 }));
        setTimeout(() => req.destroy(), 100);
      });
      await waitFor(() => router.inflight() === 0, 3000);
      const m = (await request(`${router.url}/metrics`)).body;
      const answered = [...m.matchAll(/^tuna_router_requests_total\{.*\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
      assert.equal(answered, 3);
      await waitFor(() => totalRequests(cp) >= 3, 3000);
      await sleep(200);
      assert.equal(totalRequests(cp), 3, "usage counts each request once, like the metrics");
      const entries = [...cp.reports.values()].flatMap((r) => r.entries);
      assert.equal(entries.reduce((n, e) => n + e.errors, 0), 3);
    } finally {
      await router.close();
      await cp.close();
      await spot.close();
      await svl.close();
    }
  });

  test("control-plane outage and router restart lose nothing (disk spool, retried, deduped by batchId)", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    const stateDir = `/tmp/tuna-rt-spool-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    cp.usageDown = true;
    const r1 = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 50, stateDir, logLevel: "silent" });
    for (let i = 0; i < 4; i++) await chat(r1.url, KEY);
    await waitFor(() => existsSync(`${stateDir}/usage-spool`) && readdirSync(`${stateDir}/usage-spool`).some((f) => f.endsWith(".json")));
    for (let i = 0; i < 3; i++) await chat(r1.url, KEY);
    await r1.close(); // flushes the rest into the spool; delivery fails
    assert.equal(cp.reports.size, 0);
    const spooled = readdirSync(`${stateDir}/usage-spool`).filter((f) => f.endsWith(".json"));
    assert.ok(spooled.length >= 2);

    cp.usageDown = false;
    const r2 = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 50, stateDir, logLevel: "silent" });
    try {
      await waitFor(() => totalRequests(cp) === 7, 5000);
      await waitFor(() => readdirSync(`${stateDir}/usage-spool`).filter((f) => f.endsWith(".json")).length === 0);
    } finally {
      await r2.close();
      await cp.close();
      await sim.close();
    }
  });
});

describe("control plane not up yet", () => {
  test("router starts without config, answers 503 and readyz not ready, then serves once the control plane answers", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cp = await startControlPlane();
    cp.configDown = true;
    const stateDir = `/tmp/tuna-rt-late-${process.pid}`;
    rmSync(stateDir, { recursive: true, force: true });
    const router = await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, configPollMs: 50, stateDir, logLevel: "silent" });
    try {
      assert.equal((await request(`${router.url}/readyz`)).status, 503);
      const early = await chat(router.url, KEY);
      assert.equal(early.status, 503);
      assert.ok(early.headers["retry-after"]);
      cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
      cp.configDown = false;
      await waitFor(() => router.store.current !== undefined);
      assert.equal((await request(`${router.url}/readyz`)).status, 200);
      assert.equal((await chat(router.url, KEY)).status, 200);
    } finally {
      await router.close();
      await cp.close();
      await sim.close();
    }
  });
});
