// Routing: spot lifecycle, spillover, failover rules, draining, ejection with hysteresis, splits and rules.
import assert from "node:assert/strict";
import http from "node:http";
import { describe, test } from "node:test";
import type { DeploymentConfig } from "../src/contract.js";
import { type RouterHandle, type SimulatorHandle, type SimulatorOptions, startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, KEY, request, sleep, snapshot, waitFor } from "./helpers/fixtures.js";

interface Rig {
  svl: SimulatorHandle;
  spot: SimulatorHandle;
  router: RouterHandle;
  spotState(): string;
  spotRt(): { inflight: number; consecutiveFailures: number; state(): string; ejectedSince(): number | undefined };
  close(): Promise<void>;
}

let rigSeq = 0;
async function rig(dep: (svl: string, spot: string) => Partial<DeploymentConfig> = () => ({}), spotOpts: SimulatorOptions = {}, svlOpts: SimulatorOptions = {}, routerOpts: { adminToken?: string; maxInflight?: number } = {}): Promise<Rig> {
  const svl = await startSimulator({ model: "qwen-small", ...svlOpts });
  const spot = await startSimulator({ model: "qwen-small", ...spotOpts });
  const d = deployment({ svlUrl: svl.url, spotUrl: spot.url });
  Object.assign(d, dep(svl.url, spot.url));
  const router = await startRouter({ config: snapshot([d]), logLevel: "silent", stateDir: `/tmp/tuna-rt-routing-${process.pid}-${++rigSeq}`, ...routerOpts });
  const spotRt = () => {
    const b = router.store.current?.deployments.get("dep_1")?.backends.find((x) => x.id === "spot");
    if (!b) throw new Error("no spot backend");
    return b;
  };
  return {
    svl, spot, router, spotRt,
    spotState: () => spotRt().state(),
    async close() {
      await router.close();
      await svl.close();
      await spot.close();
    },
  };
}

const backendOf = (r: { headers: http.IncomingHttpHeaders }) => r.headers["x-tuna-backend"];

/** Reads an SSE response; resolves with the text and whether the stream ended cleanly. */
function streamChat(base: string, body: Record<string, unknown> = {}): Promise<{ status: number; text: string; clean: boolean; backend?: string }> {
  return new Promise((resolve) => {
    const req = http.request(`${base}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, clean: true, backend: res.headers["x-tuna-backend"] as string }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, text, clean: false, backend: res.headers["x-tuna-backend"] as string }));
    });
    req.on("error", () => resolve({ status: 0, text: "", clean: false }));
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true, ...body }));
  });
}

describe("spot lifecycle", () => {
  test("COLD → WARMING (pokes) → READY; serverless meanwhile, spot after", async () => {
    const r = await rig(() => ({}), { coldStartMs: 700 });
    try {
      assert.equal(r.spotState(), "warming", "spot warms up at startup");
      const early = await chat(r.router.url, KEY);
      assert.equal(early.status, 200);
      assert.equal(backendOf(early), "svl");
      await sleep(400);
      assert.ok(r.spot.stats().probes >= 4, "keep-alive pokes and readiness probes while warming");
      await waitFor(() => r.spotState() === "ready", 5000);
      const late = await chat(r.router.url, KEY);
      assert.equal(backendOf(late), "spot");
      // A backend with no configured credentials gets none: the client's key is not a fallback.
      assert.equal(r.spot.stats().lastHeaders.authorization, undefined);
      const m = (await request(`${r.router.url}/metrics`)).body;
      assert.match(m, /tuna_router_backend_state\{deployment="dep_1",backend="spot",state="ready"\} 1/);
      assert.doesNotMatch(m, /tuna_router_backend_state\{deployment="dep_1",backend="spot",state="warming"\}/, "only the current state is exported");
    } finally {
      await r.close();
    }
  });

  test("a backend URL with a path (RunPod's …/v2/<id>/openai): probes, pokes and requests all go under it", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const svl = await startSimulator({ model: "qwen-small" });
    // A RunPod-like front: the OpenAI API only under the prefix, 404 anywhere else.
    const prefix = "/v2/ep1/openai";
    const seen: string[] = [];
    const front = http.createServer((req, res) => {
      seen.push(req.url ?? "");
      if (!req.url?.startsWith(`${prefix}/`)) return void res.writeHead(404).end();
      const up = http.request(`${sim.url}${req.url.slice(prefix.length)}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
    const spotUrl = `http://127.0.0.1:${(front.address() as { port: number }).port}${prefix}`;
    const router = await startRouter({ config: snapshot([deployment({ svlUrl: svl.url, spotUrl })]), logLevel: "silent", stateDir: `/tmp/tuna-rt-routing-${process.pid}-${++rigSeq}` });
    try {
      const spot = () => router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot")?.state();
      await waitFor(() => spot() === "ready", 3000);
      assert.equal(backendOf(await chat(router.url, KEY)), "spot");
      assert.deepEqual(seen.filter((u) => !u.startsWith(`${prefix}/`)), [], "nothing outside the backend's path");
      assert.ok(seen.includes(`${prefix}/v1/models`) && seen.includes(`${prefix}/v1/chat/completions`));
    } finally {
      await router.close();
      front.close();
      await sim.close();
      await svl.close();
    }
  });

  test("READY → COLD when idle, and traffic on serverless warms it again", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, idleTimeoutS: 0.3 } }));
    try {
      await waitFor(() => r.spotState() === "ready");
      await waitFor(() => r.spotState() === "cold", 3000);
      const res = await chat(r.router.url, KEY);
      assert.equal(backendOf(res), "svl", "cold spot gets no traffic");
      assert.notEqual(r.spotState(), "cold", "that request started warming");
      await waitFor(() => r.spotState() === "ready");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "spot");
    } finally {
      await r.close();
    }
  });

  test("WARMING → COLD after the warm-up timeout", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, warmupTimeoutS: 0.4 } }), { coldStartMs: 60_000 });
    try {
      assert.equal(r.spotState(), "warming");
      await waitFor(() => r.spotState() === "cold", 3000);
    } finally {
      await r.close();
    }
  });

  test("replica report endpoint: 0 replicas → COLD, draining → no new requests", async () => {
    const r = await rig(() => ({}), {}, {}, { adminToken: "admin-tok" });
    try {
      await waitFor(() => r.spotState() === "ready");
      const post = (body: object, tok = "admin-tok") => request(`${r.router.url}/_tuna/backends`, { headers: { authorization: `Bearer ${tok}` }, body });
      assert.equal((await post({ deploymentId: "dep_1", backendId: "spot", replicas: 0 }, "wrong")).status, 401);
      const cold = await post({ deploymentId: "dep_1", backendId: "spot", replicas: 0 });
      assert.equal(cold.json().state, "cold");
      await post({ deploymentId: "dep_1", backendId: "spot", replicas: 2 });
      await waitFor(() => r.spotState() === "ready");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "spot");
      const drain = await post({ deploymentId: "dep_1", backendId: "spot", draining: true });
      assert.equal(drain.json().state, "draining");
      const before = r.spot.stats().requests;
      for (let i = 0; i < 5; i++) assert.equal(backendOf(await chat(r.router.url, KEY)), "svl");
      assert.equal(r.spot.stats().requests, before, "a draining backend gets no new requests");
      await post({ deploymentId: "dep_1", backendId: "spot", draining: false });
      assert.equal(backendOf(await chat(r.router.url, KEY)), "spot");
      // A drain notice holds until the control plane's snapshot says something new about the backend (its
      // replicas were replaced): the report does not outlive the replicas it was about.
      await post({ deploymentId: "dep_1", backendId: "spot", draining: true });
      assert.equal(r.spotState(), "draining");
      r.router.applySnapshot(snapshot([deployment({ svlUrl: r.svl.url, spotUrl: r.spot.url })], { version: 2 }));
      assert.equal(r.spotState(), "draining", "an unchanged snapshot keeps the report");
      const replaced = deployment({ svlUrl: r.svl.url, spotUrl: r.spot.url });
      replaced.backends[1].replicas = 2;
      r.router.applySnapshot(snapshot([replaced], { version: 3 }));
      await waitFor(() => r.spotState() === "ready");
    } finally {
      await r.close();
    }
  });

  test("draining from the snapshot; a new snapshot applies without touching in-flight requests", async () => {
    const r = await rig(() => ({}), { ttftMs: 300 });
    try {
      await waitFor(() => r.spotState() === "ready");
      const inflight = streamChat(r.router.url);
      await sleep(50);
      assert.equal(r.spotRt().inflight, 1);
      const snap = snapshot([deployment({ svlUrl: r.svl.url, spotUrl: r.spot.url })], { version: 2 });
      snap.deployments[0].backends[1].draining = true;
      r.router.applySnapshot(snap);
      assert.equal(r.spotState(), "draining");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "svl");
      const s = await inflight;
      assert.ok(s.clean && s.text.includes("[DONE]"), "in-flight stream on the draining backend completes");
      assert.equal(s.backend, "spot");
      await waitFor(() => r.spotRt().inflight === 0);
    } finally {
      await r.close();
    }
  });
});

describe("policy", () => {
  test("spillover to serverless when spot is at capacity", async () => {
    const r = await rig((s, p) => ({ backends: [deployment({ svlUrl: s }).backends[0], { id: "spot", kind: "spot", url: p, replicas: 1, maxInflightPerReplica: 2 }] }), { ttftMs: 300 }, { ttftMs: 300 });
    try {
      await waitFor(() => r.spotState() === "ready");
      const results = await Promise.all(Array.from({ length: 5 }, () => chat(r.router.url, KEY)));
      assert.ok(results.every((x) => x.status === 200));
      const bySpot = results.filter((x) => backendOf(x) === "spot").length;
      assert.equal(bySpot, 2, "spot takes exactly its capacity");
      assert.equal(results.length - bySpot, 3);
    } finally {
      await r.close();
    }
  });

  test("spot-only with spot not ready → 503 with Retry-After; serverless-only never touches spot", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, policy: "spot-only" } }), { coldStartMs: 60_000 });
    try {
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 503);
      assert.equal(res.json().error.code, "no_backend_available");
      assert.ok(Number(res.headers["retry-after"]) >= 1);
      assert.equal(r.svl.stats().requests, 0);
    } finally {
      await r.close();
    }
  });

  test("weighted split (canary) and request-aware rules", async () => {
    const r = await rig((s) => ({
      routing: {
        ...deployment({ svlUrl: s }).routing,
        policy: "weighted",
        weights: { svl: 1, spot: 3 },
        rules: [
          { when: { maxTokensAbove: 100 }, prefer: "serverless" },
          { when: { promptTokensAbove: 1000 }, prefer: "serverless" },
        ],
      },
    }));
    try {
      await waitFor(() => r.spotState() === "ready");
      let spot = 0;
      for (let i = 0; i < 200; i++) if (backendOf(await chat(r.router.url, KEY)) === "spot") spot++;
      assert.ok(spot > 120 && spot < 180, `~75% on spot, got ${spot}/200`);
      for (let i = 0; i < 10; i++) assert.equal(backendOf(await chat(r.router.url, KEY, { max_tokens: 500 })), "svl", "rule: long generations → serverless");
      // ~1,250 estimated prompt tokens (5,000 characters / 4).
      const longPrompt = { messages: [{ role: "user", content: "x".repeat(5000) }], max_tokens: 4 };
      for (let i = 0; i < 10; i++) assert.equal(backendOf(await chat(r.router.url, KEY, longPrompt)), "svl", "rule: long prompts → serverless");
    } finally {
      await r.close();
    }
  });
});

describe("failover", () => {
  test("before the first byte: spot down or 5xx → served by serverless, counted once", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, ejectAfterFailures: 100 } }));
    try {
      await waitFor(() => r.spotState() === "ready");
      r.spot.setFault({ mode: "down" });
      for (let i = 0; i < 5; i++) {
        const res = await chat(r.router.url, KEY);
        assert.equal(res.status, 200);
        assert.equal(backendOf(res), "svl");
      }
      r.spot.setFault({ mode: "error5xx", status: 503 });
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 200);
      assert.equal(backendOf(res), "svl");
      const stream = await streamChat(r.router.url);
      assert.ok(stream.clean && stream.text.includes("[DONE]"));
      assert.equal(stream.backend, "svl");
      assert.equal(r.spot.stats().requests, 2, "the 5xx spot saw each request once (down drops them before counting)");
      assert.equal(r.svl.stats().requests, 7);
      const m = (await request(`${r.router.url}/metrics`)).body;
      assert.match(m, /tuna_router_requests_total\{deployment="dep_1",backend="svl",status="200"\} 7\n/);
      assert.doesNotMatch(m, /backend="spot",status=/, "a failed-over request is counted once, under the backend that served it");
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="5xx"\} 2/);
    } finally {
      await r.close();
    }
  });

  test("no retry after the first byte: a stream cut mid-way reaches the client truncated", async () => {
    const r = await rig();
    try {
      await waitFor(() => r.spotState() === "ready");
      r.spot.setFault({ mode: "close-mid-stream", afterChunks: 2 });
      const s = await streamChat(r.router.url);
      assert.equal(s.status, 200);
      assert.equal(s.backend, "spot");
      assert.ok(!s.text.includes("[DONE]"), "truncated");
      assert.equal(s.clean, false, "the client connection is cut, not ended cleanly");
      assert.equal(r.svl.stats().requests, 0, "never retried on serverless");
    } finally {
      await r.close();
    }
  });

  test("a buffered answer lost mid-body with no candidate left (nothing sent to the client yet): 502 upstream_error, counted once", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, policy: "serverless-only", ejectAfterFailures: 100 } }));
    try {
      // Non-streaming: the simulator sends the head and half the body, then drops the connection.
      r.svl.setFault({ mode: "close-mid-stream" });
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 502);
      assert.equal(res.json().error.code, "upstream_error");
      assert.equal(res.json().error.type, "server_error");
      assert.equal(r.svl.stats().requests, 1);
      await waitFor(() => r.router.inflight() === 0, 2000);
      const m = (await request(`${r.router.url}/metrics`)).body;
      assert.match(m, /tuna_router_requests_total\{deployment="dep_1",backend="svl",status="502"\} 1\n/);
      assert.equal(m.match(/^tuna_router_requests_total\{/gm)?.length, 1, "one request, one outcome");
      // The router keeps serving on that connection pool.
      r.svl.setFault({ mode: "none" });
      assert.equal((await chat(r.router.url, KEY)).status, 200);
    } finally {
      await r.close();
    }
  });

  test("timeout before first byte fails over; a non-streaming answer gets responseTimeoutMs, as engines send it whole", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, firstByteTimeoutMs: 200, responseTimeoutMs: 1500 } }));
    try {
      await waitFor(() => r.spotState() === "ready");
      r.spot.setFault({ mode: "slow", delayMs: 600 });
      const long = await chat(r.router.url, KEY);
      assert.equal(long.status, 200);
      assert.equal(backendOf(long), "spot", "600 ms to the whole answer is within responseTimeoutMs: no second generation");
      const streamed = await streamChat(r.router.url);
      assert.equal(streamed.backend, "svl", "a stream's head must come within firstByteTimeoutMs");
      r.spot.setFault({ mode: "slow", delayMs: 2500 });
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 200);
      assert.equal(backendOf(res), "svl");
    } finally {
      await r.close();
    }
  });

  test("serverless alone failing → 502, one upstream call", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, policy: "serverless-only" } }), {}, { fault: { mode: "down" } });
    try {
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 502);
      assert.equal(res.json().error.code, "upstream_error");
      assert.ok(!res.body.includes("127.0.0.1"), "no upstream details leak");
      // The last candidate's own 5xx answer is passed through as it is (status and body), not retried.
      r.svl.setFault({ mode: "error5xx", status: 503 });
      const before = r.svl.stats().requests;
      const passed = await chat(r.router.url, KEY);
      assert.equal(passed.status, 503);
      assert.equal(passed.json().error.message, "simulated upstream failure");
      assert.equal(r.svl.stats().requests, before + 1);
    } finally {
      await r.close();
    }
  });

  test("panic mode: a lone ejected serverless backend is still tried rather than refusing everything", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, policy: "serverless-only", healthCheckIntervalMs: 60_000 } }), {}, { fault: { mode: "down" } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await chat(r.router.url, KEY)).status, 502);
      const svl = r.router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "svl");
      assert.equal(svl?.state(), "ejected");
      r.svl.setFault({ mode: "none" });
      assert.equal((await chat(r.router.url, KEY)).status, 200, "tried despite ejection, long before a health check");
    } finally {
      await r.close();
    }
  });

  test("passive ejection, active health checks, failback only after hysteresis", async () => {
    const r = await rig();
    try {
      await waitFor(() => r.spotState() === "ready");
      r.spot.setFault({ mode: "down" });
      for (let i = 0; i < 3; i++) assert.equal((await chat(r.router.url, KEY)).status, 200);
      assert.equal(r.spotState(), "ejected");
      // The router's own ejection time: taking Date.now() here would start the clock after the ejection (the
      // third request's failover and the assertions come after it), and fail a correct router by a few ms.
      const ejectedAt = r.spotRt().ejectedSince();
      assert.ok(ejectedAt !== undefined);
      r.spot.setFault({ mode: "none" });
      // Still ejected right after healing: one good probe is not enough.
      await sleep(120);
      assert.equal(r.spotState(), "ejected");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "svl");
      await waitFor(() => r.spotState() === "ready", 3000);
      assert.ok(Date.now() - ejectedAt >= 300, "min ejection time respected");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "spot");
    } finally {
      await r.close();
    }
  });
});

describe("resource hygiene", () => {
  test("upstream keep-alive: a backend's connectionIdleMs decides reuse after a quiet spell, and a new snapshot changes it", async () => {
    const svl = await startSimulator({ model: "qwen-small" });
    const dep = (idleMs: number) => {
      const d = deployment({ svlUrl: svl.url, routing: { policy: "serverless-only" } });
      d.backends[0].connectionIdleMs = idleMs;
      return d;
    };
    const router = await startRouter({ config: snapshot([dep(200)]), logLevel: "silent", stateDir: `/tmp/tuna-rt-idle-${process.pid}` });
    try {
      assert.equal((await chat(router.url, KEY)).status, 200);
      await sleep(400);
      assert.equal((await chat(router.url, KEY)).status, 200);
      assert.equal(svl.stats().connections, 2, "idle 400 ms > 200 ms: a fresh connection");

      router.applySnapshot(snapshot([dep(5000)], { version: 2 }));
      await sleep(400);
      assert.equal((await chat(router.url, KEY)).status, 200);
      assert.equal(svl.stats().connections, 2, "idle 400 ms < 5 s: the connection is reused");
    } finally {
      await router.close();
      await svl.close();
    }
  });

  test("client disconnect aborts upstream; in-flight counters return to zero after errors and churn", async () => {
    const r = await rig(() => ({}), { tokensPerS: 20 }, { tokensPerS: 20 });
    try {
      await waitFor(() => r.spotState() === "ready");
      // Disconnect mid-stream.
      await new Promise<void>((resolve) => {
        const req = http.request(`${r.router.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}` } }, (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        });
        req.end(JSON.stringify({ model: "qwen-small", messages: [], max_tokens: 200, stream: true }));
      });
      await waitFor(() => r.spot.stats().inflight === 0, 2000);
      assert.equal(r.spotRt().consecutiveFailures, 0, "a client leaving is not a backend failure");
      // Churn: mixed faults, aborts and successes concurrently, plus a config reload mid-way.
      const jobs: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        if (i === 10) r.spot.setFault({ mode: "error5xx" });
        if (i === 20) r.router.applySnapshot(snapshot([deployment({ svlUrl: r.svl.url, spotUrl: r.spot.url })], { version: 3 }));
        if (i === 30) r.spot.setFault({ mode: "close-mid-stream", afterChunks: 1 });
        jobs.push(i % 3 === 0 ? streamChat(r.router.url, { max_tokens: 3 }) : chat(r.router.url, KEY, { max_tokens: 2 }).catch(() => undefined));
      }
      await Promise.all(jobs);
      await waitFor(() => r.router.inflight() === 0, 3000);
      const dep = r.router.store.current?.deployments.get("dep_1");
      assert.ok(dep);
      await waitFor(() => dep.backends.every((b) => b.inflight === 0) && dep.inflight.n === 0, 3000);
      const m = (await request(`${r.router.url}/metrics`)).body;
      assert.match(m, /tuna_router_inflight_total 0/);
    } finally {
      await r.close();
    }
  });

  test("a backend removed and re-added (same id and URL) while a stream runs on it keeps counting that stream against its capacity", async () => {
    const sim = await startSimulator({ model: "qwen-small", tokensPerS: 20 }); // ~1 s per stream
    const other = await startSimulator({ model: "qwen-small" });
    const base = deployment({ svlUrl: sim.url, routing: { ...deployment().routing, policy: "serverless-only" } });
    base.backends[0].maxInflight = 1;
    const router = await startRouter({ config: snapshot([base]), logLevel: "silent", stateDir: `/tmp/tuna-rt-routing-readd-${process.pid}` });
    try {
      const first = streamChat(router.url, { max_tokens: 20 });
      await waitFor(() => sim.stats().inflight === 1, 2000);
      // v2: the backend is gone (another one serves); v3: it is back, same id and URL.
      const v2 = deployment({ svlUrl: other.url, routing: { ...deployment().routing, policy: "serverless-only" } });
      v2.backends[0].id = "svl2";
      router.applySnapshot(snapshot([v2], { version: 2 }));
      router.applySnapshot(snapshot([base], { version: 3 }));
      const second = await chat(router.url, KEY);
      assert.equal(second.status, 503, "maxInflight 1 still counts the stream that started before the reloads");
      assert.equal(sim.stats().requests, 1);
      const r1 = await first;
      assert.ok(r1.clean && r1.text.includes("[DONE]"), "the stream finished");
      await waitFor(() => router.inflight() === 0, 2000);
      // Once it ended, the slot is free again.
      const third = await chat(router.url, KEY);
      assert.equal(third.status, 200);
      assert.equal(backendOf(third), "svl");
    } finally {
      await router.close();
      await sim.close();
      await other.close();
    }
  });

  test("global in-flight bound → 503 + Retry-After instead of collapse", async () => {
    const r = await rig((s) => ({ routing: { ...deployment({ svlUrl: s }).routing, policy: "serverless-only" } }), {}, { ttftMs: 300 }, { maxInflight: 3 });
    try {
      const results = await Promise.all(Array.from({ length: 6 }, () => chat(r.router.url, KEY)));
      const ok = results.filter((x) => x.status === 200).length;
      const shed = results.filter((x) => x.status === 503);
      assert.equal(ok, 3);
      assert.equal(shed.length, 3);
      assert.equal(shed[0].headers["retry-after"], "1");
      assert.equal(shed[0].json().error.code, "overloaded");
    } finally {
      await r.close();
    }
  });
});
