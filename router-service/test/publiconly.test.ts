// publicOnly backends (a host a tenant chose: SkyServe endpoints) through a real router and real simulators: a
// connection to an internal address is refused before any byte is sent, fails over like any connect error, is
// counted and logged once; probes and warm-up pokes do not get through either; the operator's allowlist
// (TUNA_ALLOW_PRIVATE_URLS) lets it through; a name is resolved for every new connection (DNS rebinding).
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { pino } from "pino";
import type { BackendConfig, RoutingConfig } from "../src/contract.js";
import type { Resolve } from "../src/egress.js";
import { type RouterHandle, type RouterOptions, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, KEY, request, snapshot, sleep, spawnTs, waitFor } from "./helpers/fixtures.js";

const UPSTREAM_SECRET = "Bearer sky-upstream-secret-123";

interface Rig {
  sky: SimulatorHandle;
  svl: SimulatorHandle;
  router: RouterHandle;
  logs: string[];
  /** A counter's value from GET /metrics (0 when the series is absent). */
  metric(name: string, labels: string): Promise<number>;
  /** What the publicOnly backend's simulator saw: its /_sim/stats (connections read from the handle first). */
  skySaw(): Promise<{ connections: number; requests: number; probes: number }>;
  skyRt(): { state(): string };
}

let seq = 0;
async function rig(
  t: TestContext,
  o: { url?: (skyPort: number) => string; sky?: Partial<BackendConfig>; fallback?: boolean; routing?: Partial<RoutingConfig>; router?: Partial<RouterOptions> } = {},
): Promise<Rig> {
  const sky = await startSimulator({ model: "qwen-small" });
  const svl = await startSimulator({ model: "qwen-small" });
  const skyBackend: BackendConfig = {
    id: "sky", kind: "serverless", url: (o.url ?? ((p) => `http://127.0.0.1:${p}`))(sky.port), headers: { authorization: UPSTREAM_SECRET }, publicOnly: true, ...o.sky,
  };
  const d = deployment({ mode: "serverless" });
  d.backends = [skyBackend, ...(o.fallback === false ? [] : [{ id: "svl", kind: "serverless" as const, url: svl.url }])];
  d.routing = { ...d.routing, policy: "serverless-only", ejectAfterFailures: 100, ...o.routing };
  const logs: string[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void logs.push(s) });
  const router = await startRouter({ config: snapshot([d]), logger, stateDir: `/tmp/tuna-rt-publiconly-${process.pid}-${++seq}`, ...o.router });
  t.after(async () => {
    await router.close();
    await sky.close();
    await svl.close();
  });
  return {
    sky, svl, router, logs,
    async metric(name, labels) {
      const text = (await request(`${router.url}/metrics`)).body;
      const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
      return line ? Number(line.split(" ").pop()) : 0;
    },
    async skySaw() {
      const connections = sky.stats().connections; // before our own request to /_sim/stats
      const s = (await request(`${sky.url}/_sim/stats`)).json();
      return { connections, requests: s.requests, probes: s.probes };
    },
    skyRt() {
      const b = router.store.current?.deployments.get("dep_1")?.backends.find((x) => x.id === "sky");
      if (!b) throw new Error("no sky backend");
      return b;
    },
  };
}

const SKY = 'deployment="dep_1",backend="sky"';
const REFUSED = "tuna_router_upstream_refused_total";
const refusalLogs = (logs: string[]) => logs.filter((l) => l.includes("upstream connection refused"));

describe("publicOnly backends on internal addresses", () => {
  for (const [form, url, host] of [
    ["127.0.0.1", (p: number) => `http://127.0.0.1:${p}`, "127.0.0.1"],
    ["localhost", (p: number) => `http://localhost:${p}/v1-base`, "localhost"],
    ["[::ffff:127.0.0.1]", (p: number) => `http://[::ffff:127.0.0.1]:${p}`, "::ffff:7f00:1"],
  ] as const) {
    test(`${form}: refused; the serverless fallback answers (failover reason connect), counted, logged once without secrets`, async (t) => {
      const r = await rig(t, { url });
      for (let i = 0; i < 3; i++) {
        const res = await chat(r.router.url, KEY);
        assert.equal(res.status, 200, res.body);
        assert.equal(res.headers["x-tuna-backend"], "svl");
      }
      assert.equal(await r.metric("tuna_router_failovers_total", 'deployment="dep_1",from="sky",to="svl",reason="connect"'), 3);
      assert.equal(await r.metric(REFUSED, SKY), 3);
      assert.deepEqual(await r.skySaw(), { connections: 0, requests: 0, probes: 0 }, "the backend heard nothing");
      const warned = refusalLogs(r.logs);
      assert.equal(warned.length, 1, "logged once, not per refused connection");
      const line = JSON.parse(warned[0]);
      assert.equal(line.level, 40, "warn");
      assert.deepEqual([line.deployment, line.backend, line.host, line.addressClass], ["dep_1", "sky", host, "loopback"]);
      const all = r.logs.join("");
      assert.ok(!all.includes("sky-upstream-secret") && !all.includes("/v1-base"), "no upstream headers or URL paths in the logs");
    });
  }

  test("without a fallback: 502, and the backend heard nothing", async (t) => {
    const r = await rig(t, { fallback: false });
    const res = await chat(r.router.url, KEY);
    assert.equal(res.status, 502, res.body);
    assert.equal(res.json().error.code, "upstream_error");
    assert.equal(await r.metric(REFUSED, SKY), 1);
    assert.deepEqual(await r.skySaw(), { connections: 0, requests: 0, probes: 0 });
  });

  test("refusals count toward ejection; the ejected backend's health probes are refused too", async (t) => {
    const r = await rig(t, { routing: { ejectAfterFailures: 2, healthCheckIntervalMs: 50 } });
    for (let i = 0; i < 2; i++) assert.equal((await chat(r.router.url, KEY)).headers["x-tuna-backend"], "svl");
    assert.equal(r.skyRt().state(), "ejected");
    await waitFor(async () => (await r.metric(REFUSED, SKY)) >= 6, 3000);
    await sleep(100);
    assert.equal(r.skyRt().state(), "ejected", "probes never pass");
    assert.deepEqual(await r.skySaw(), { connections: 0, requests: 0, probes: 0 });
    assert.equal(refusalLogs(r.logs).length, 1);
  });

  test("a spot backend: warm-up pokes and readiness probes are refused, it never turns ready, serverless serves", async (t) => {
    const r = await rig(t, { sky: { kind: "spot", replicas: 1, maxInflightPerReplica: 8 }, routing: { policy: "spot-first", warmupPokeIntervalS: 0.05 } });
    await waitFor(async () => (await r.metric(REFUSED, SKY)) >= 6, 3000);
    assert.equal(r.skyRt().state(), "warming");
    const res = await chat(r.router.url, KEY);
    assert.equal(res.headers["x-tuna-backend"], "svl");
    assert.deepEqual(await r.skySaw(), { connections: 0, requests: 0, probes: 0 });
  });
});

describe("publicOnly: what still connects", () => {
  test("control: the same backend without publicOnly is used", async (t) => {
    const r = await rig(t, { sky: { publicOnly: undefined } });
    const res = await chat(r.router.url, KEY);
    assert.equal(res.headers["x-tuna-backend"], "sky");
    assert.equal(await r.metric(REFUSED, SKY), 0);
    assert.equal((await r.skySaw()).requests, 1);
  });

  test("the router's allowlist (TUNA_ALLOW_PRIVATE_URLS=127.0.0.1) lets 127.0.0.1 and its IPv4-mapped form through", async (t) => {
    for (const url of [(p: number) => `http://127.0.0.1:${p}`, (p: number) => `http://[::ffff:127.0.0.1]:${p}`]) {
      for (const [allowPrivateUrls, served] of [["127.0.0.1", "sky"], ["10.0.0.0/8, ::1", "svl"]] as const) {
        const r = await rig(t, { url, router: { allowPrivateUrls } });
        const res = await chat(r.router.url, KEY);
        assert.equal(res.headers["x-tuna-backend"], served, `allowPrivateUrls ${allowPrivateUrls}`);
        assert.equal(await r.metric(REFUSED, SKY), served === "sky" ? 0 : 1);
        assert.equal((await r.skySaw()).requests, served === "sky" ? 1 : 0);
      }
    }
  });

  test("TUNA_ALLOW_PRIVATE_URLS in the router process's environment (main.ts): allowed with it, refused without", async (t) => {
    const sky = await startSimulator({ model: "qwen-small" });
    t.after(() => sky.close());
    const dir = mkdtempSync(join(tmpdir(), "tuna-rt-publiconly-env-"));
    const d = deployment({ mode: "serverless" });
    d.backends = [{ id: "sky", kind: "serverless", url: sky.url, publicOnly: true }];
    d.routing = { ...d.routing, policy: "serverless-only" };
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify(snapshot([d])));
    for (const [allow, status] of [["127.0.0.1", 200], ["", 502]] as const) {
      const proc = await spawnTs("router-service/src/main.ts", ["--config", config, "--port", "0", "--state-dir", join(dir, `state-${status}`)], {
        TUNA_ALLOW_PRIVATE_URLS: allow, TUNA_CONTROL_PLANE_URL: "", LOG_LEVEL: "warn",
      });
      try {
        const res = await chat(`http://127.0.0.1:${proc.port}`, KEY);
        assert.equal(res.status, status, `TUNA_ALLOW_PRIVATE_URLS=${JSON.stringify(allow)}: ${res.body}`);
        if (status === 502) assert.match(proc.output(), /upstream connection refused/);
      } finally {
        await proc.stop();
      }
    }
    assert.equal(sky.stats().requests, 1, "only the allowed router reached the backend");
  });

  test("a name is resolved for every new connection: rebinding to an internal address is refused at the next one; Host stays the name", async (t) => {
    const name = "tenant-lb.tuna-test.invalid";
    let answer = ["127.0.0.1"];
    const resolved: string[] = [];
    const resolve: Resolve = (host, cb) => {
      resolved.push(host);
      setImmediate(() => cb(null, answer.map((address) => ({ address, family: 4 as const }))));
    };
    // 127.0.0.1 is allowed here, standing in for the public address the name had when it was published. A 1 ms
    // idle limit makes every request open a new connection.
    const r = await rig(t, { url: (p) => `http://${name}:${p}`, sky: { connectionIdleMs: 1 }, router: { allowPrivateUrls: "127.0.0.1", resolve } });
    let res = await chat(r.router.url, KEY);
    assert.equal(res.headers["x-tuna-backend"], "sky");
    assert.match(String(r.sky.stats().lastHeaders.host), new RegExp(`^${name.replace(/\./g, "\\.")}:\\d+$`), "Host is the name, not the address");

    answer = ["127.0.0.1", "169.254.169.254"];
    await sleep(5);
    res = await chat(r.router.url, KEY);
    assert.equal(res.headers["x-tuna-backend"], "svl", "refused: one of the name's addresses is link-local");
    assert.equal((await r.skySaw()).requests, 1);
    const warned = refusalLogs(r.logs).map((l) => JSON.parse(l));
    assert.deepEqual(warned.map((l) => [l.host, l.address, l.addressClass]), [[name, "169.254.169.254", "link-local"]]);

    answer = ["127.0.0.1"];
    await sleep(5);
    res = await chat(r.router.url, KEY);
    assert.equal(res.headers["x-tuna-backend"], "sky");
    assert.equal(r.logs.filter((l) => l.includes("upstream connections allowed again")).length, 1);
    assert.equal(resolved.length, 3, "one resolution per new connection");
  });

  test("publicOnly switched on for a backend in use: its open connections (idle or busy) are not reused unchecked", async (t) => {
    const r = await rig(t, { sky: { publicOnly: undefined } });
    // Two keep-alive connections to the backend, both idle.
    for (const res of await Promise.all([chat(r.router.url, KEY), chat(r.router.url, KEY)])) assert.equal(res.headers["x-tuna-backend"], "sky");
    assert.equal(r.sky.stats().connections, 2);
    // One of them busy with a slow request when the flag arrives; the other idle.
    r.sky.setFault({ mode: "slow", delayMs: 300 });
    const busy = chat(r.router.url, KEY);
    await waitFor(() => r.sky.stats().inflight === 1);
    const snap = r.router.store.current?.snapshot;
    assert.ok(snap);
    const next = structuredClone(snap);
    next.version = 2;
    next.deployments[0].backends[0].publicOnly = true;
    r.router.applySnapshot(next);
    assert.equal((await busy).headers["x-tuna-backend"], "sky", "the request in flight finishes where it runs");
    r.sky.setFault({ mode: "none" });
    for (let i = 0; i < 2; i++) assert.equal((await chat(r.router.url, KEY)).headers["x-tuna-backend"], "svl");
    assert.deepEqual(await r.skySaw(), { connections: 2, requests: 3, probes: 0 });
    assert.equal(await r.metric(REFUSED, SKY), 2);
  });
});
