// Failover after the upstream's response head but before the first byte reached the client: a buffered answer
// lost mid-body, a stream whose backend dies or stalls between its head and its first event (a spot GPU
// preempted mid-prefill), and a client that leaves while the head is held. Real sockets throughout; usage is
// checked in the reports a fake control plane receives.
import assert from "node:assert/strict";
import http from "node:http";
import { describe, test } from "node:test";
import type { RoutingConfig } from "../src/contract.js";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { type FakeControlPlane, startControlPlane, totalRequests } from "./helpers/controlPlane.js";
import { chat, deployment, KEY, request, snapshot, waitFor } from "./helpers/fixtures.js";

interface Rig {
  svl: SimulatorHandle;
  spot: SimulatorHandle;
  cp: FakeControlPlane;
  router: RouterHandle;
  metrics(): Promise<string>;
  /** Usage entries reported so far, by backend id (summed over reports). */
  usage(): Map<string, { requests: number; errors: number; outputTokens: number; busyMs: number }>;
  /** Every in-flight counter of the router is back to zero. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

let rigSeq = 0;
async function rig(routing: Partial<RoutingConfig> = {}, tpm = 100_000_000): Promise<Rig> {
  const svl = await startSimulator({ model: "qwen-small" });
  const spot = await startSimulator({ model: "qwen-small" });
  const cp = await startControlPlane();
  const d = deployment({ svlUrl: svl.url, spotUrl: spot.url });
  d.routing = { ...d.routing, ejectAfterFailures: 100, ...routing };
  cp.setSnapshot(snapshot([d], {}, { rpm: 100_000, tpm, maxConcurrent: 1000 }));
  const router = await startRouter({
    controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 40, logLevel: "silent",
    stateDir: `/tmp/tuna-rt-failover-${process.pid}-${++rigSeq}`,
  });
  const dep = () => {
    const x = router.store.current?.deployments.get("dep_1");
    if (!x) throw new Error("no deployment");
    return x;
  };
  await waitFor(() => dep().backends.find((b) => b.id === "spot")?.state() === "ready");
  return {
    svl, spot, cp, router,
    metrics: async () => (await request(`${router.url}/metrics`)).body,
    usage() {
      const out = new Map<string, { requests: number; errors: number; outputTokens: number; busyMs: number }>();
      for (const r of cp.reports.values())
        for (const e of r.entries) {
          const o = out.get(e.backendId) ?? { requests: 0, errors: 0, outputTokens: 0, busyMs: 0 };
          o.requests += e.requests;
          o.errors += e.errors;
          o.outputTokens += e.outputTokens;
          o.busyMs += e.busyMs;
          out.set(e.backendId, o);
        }
      return out;
    },
    async idle() {
      await waitFor(() => router.inflight() === 0 && dep().inflight.n === 0 && dep().backends.every((b) => b.inflight === 0), 3000);
    },
    async close() {
      await router.close();
      await cp.close();
      await svl.close();
      await spot.close();
    },
  };
}

const backendOf = (r: { headers: http.IncomingHttpHeaders }) => r.headers["x-tuna-backend"];
const requestSeries = (m: string) => m.match(/^tuna_router_requests_total\{.*$/gm) ?? [];

/** Reads an SSE response; resolves with the text and whether the stream ended cleanly. */
function streamChat(base: string, body: Record<string, unknown> = {}): Promise<{ status: number; text: string; clean: boolean; backend?: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request(`${base}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, (res) => {
      let text = "";
      const backend = res.headers["x-tuna-backend"] as string | undefined;
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, clean: true, backend, ms: Date.now() - t0 }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, text, clean: false, backend, ms: Date.now() - t0 }));
    });
    req.on("error", () => resolve({ status: 0, text: "", clean: false, ms: Date.now() - t0 }));
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true, ...body }));
  });
}

/** The text of a complete SSE chat stream, and that it ended with [DONE]. */
function streamText(text: string): { content: string; done: boolean } {
  const events = text.split("\n\n").filter(Boolean);
  const done = events.at(-1) === "data: [DONE]";
  const content = events
    .slice(0, done ? -1 : undefined)
    .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? "")
    .join("");
  return { content, done };
}

describe("failover between the upstream head and the first byte to the client", () => {
  test("a buffered answer lost mid-body fails over: the client gets the fallback's 200, counted once", async () => {
    const r = await rig();
    try {
      // Non-streaming: spot sends the head (with its content-length) and half the body, then drops the connection.
      r.spot.setFault({ mode: "close-mid-stream" });
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 200);
      assert.equal(backendOf(res), "svl");
      assert.equal(res.json().choices[0].message.content, "tuna swims fast in");
      assert.deepEqual(res.json().usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
      assert.equal(r.spot.stats().requests, 1);
      assert.equal(r.svl.stats().requests, 1);
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="svl",status="200"} 1'], "one request, one outcome");
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="reset_before_body"\} 1\n/);
      assert.equal(r.router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot")?.consecutiveFailures, 1, "counted towards passive ejection");
      await waitFor(() => totalRequests(r.cp) >= 1);
      await waitFor(() => (r.usage().get("spot")?.busyMs ?? 0) > 0);
      const u = r.usage();
      assert.deepEqual({ ...u.get("svl"), busyMs: 0 }, { requests: 1, errors: 0, outputTokens: 4, busyMs: 0 });
      assert.equal(u.get("spot")?.requests, 0, "the failed attempt adds busy time only");
      assert.equal(u.get("spot")?.errors, 0);
      assert.equal(totalRequests(r.cp), 1);
    } finally {
      await r.close();
    }
  });

  test("a buffered answer lost mid-body on every candidate: one try each, then 502 upstream_error, counted once", async () => {
    const r = await rig();
    try {
      r.spot.setFault({ mode: "close-mid-stream" });
      r.svl.setFault({ mode: "close-mid-stream" });
      const res = await chat(r.router.url, KEY);
      assert.equal(r.spot.stats().requests, 1);
      assert.equal(r.svl.stats().requests, 1, "the fallback was tried once, nothing more");
      assert.equal(res.status, 502);
      assert.equal(res.json().error.code, "upstream_error");
      assert.equal(res.json().error.type, "server_error");
      assert.match(res.json().error.message, /connection lost before the response body/);
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="svl",status="502"} 1']);
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="reset_before_body"\} 1\n/);
      await waitFor(() => totalRequests(r.cp) >= 1);
      await waitFor(() => (r.usage().get("spot")?.busyMs ?? 0) > 0);
      assert.equal(totalRequests(r.cp), 1);
      assert.equal(r.usage().get("svl")?.errors, 1);
      // Both pools still serve.
      r.spot.setFault({ mode: "none" });
      r.svl.setFault({ mode: "none" });
      assert.equal(backendOf(await chat(r.router.url, KEY)), "spot");
    } finally {
      await r.close();
    }
  });

  test("a stream whose backend closes after the head, before any event, fails over: the fallback's stream arrives whole", async () => {
    const r = await rig();
    try {
      // As uvicorn does, spot sends 200 + headers at once; then the connection drops before the first event.
      r.spot.setFault({ mode: "close-after-head", delayMs: 30 });
      const s = await streamChat(r.router.url);
      assert.equal(s.status, 200);
      assert.equal(s.backend, "svl");
      assert.ok(s.clean, "ended cleanly");
      assert.deepEqual(streamText(s.text), { content: "tuna swims fast in the open", done: true });
      assert.equal(r.spot.stats().requests, 1);
      assert.equal(r.svl.stats().requests, 1);
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="svl",status="200"} 1']);
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="reset_before_body"\} 1\n/);
      assert.match(m, /tuna_router_ttft_seconds_count\{deployment="dep_1",backend="svl"\} 1\n/, "TTFT measured at the fallback's first body byte");
      await waitFor(() => totalRequests(r.cp) >= 1);
      assert.equal(totalRequests(r.cp), 1);
      assert.equal(r.usage().get("svl")?.outputTokens, 6);
    } finally {
      await r.close();
    }
  });

  test("a stream that stalls after its head fails over once firstByteTimeoutMs passed; with every candidate stalled → 504", async () => {
    const r = await rig({ firstByteTimeoutMs: 300 });
    try {
      r.spot.setFault({ mode: "stall-after-head", delayMs: 10_000 });
      const s = await streamChat(r.router.url);
      assert.equal(s.backend, "svl");
      assert.ok(s.clean);
      assert.deepEqual(streamText(s.text), { content: "tuna swims fast in the open", done: true });
      assert.ok(s.ms >= 280 && s.ms < 3000, `answered after the deadline, not after the stall (${s.ms} ms)`);
      // The stalled exchange was abandoned: its connection is closed, the simulator's request ends.
      await waitFor(() => r.spot.stats().inflight === 0, 2000);
      const m = await r.metrics();
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="timeout_before_body"\} 1\n/);

      r.svl.setFault({ mode: "stall-after-head", delayMs: 10_000 });
      const t0 = Date.now();
      const res = await chat(r.router.url, KEY, { stream: true });
      assert.equal(res.status, 504);
      assert.equal(res.json().error.code, "upstream_error");
      assert.match(res.json().error.message, /timeout before first byte/);
      assert.ok(Date.now() - t0 < 3000, "two deadlines, not the stall");
      await r.idle();
      await waitFor(() => r.spot.stats().inflight === 0 && r.svl.stats().inflight === 0, 2000);
      assert.match(await r.metrics(), /tuna_router_requests_total\{deployment="dep_1",backend="svl",status="504"\} 1\n/);
    } finally {
      await r.close();
    }
  });

  test("a non-streaming answer whose body stalls after its head fails over once responseTimeoutMs passed", async () => {
    const r = await rig({ firstByteTimeoutMs: 200, responseTimeoutMs: 400 });
    try {
      r.spot.setFault({ mode: "stall-after-head", delayMs: 10_000 });
      const t0 = Date.now();
      const res = await chat(r.router.url, KEY);
      const ms = Date.now() - t0;
      assert.equal(res.status, 200);
      assert.equal(backendOf(res), "svl");
      assert.ok(ms >= 380 && ms < 3000, `after responseTimeoutMs, not after the stall (${ms} ms)`);
      assert.match(await r.metrics(), /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="timeout_before_body"\} 1\n/);
      await r.idle();
    } finally {
      await r.close();
    }
  });

  test("a client that leaves while the head is held: upstream aborted, nothing in flight, counted once as 499, tokens refunded", async () => {
    const r = await rig({}, 10_000);
    try {
      // Spot sends its head and then "prefills" for 10 s; the router holds the head back meanwhile.
      r.spot.setFault({ mode: "stall-after-head", delayMs: 10_000 });
      let gotResponse = false;
      const req = http.request(`${r.router.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, () => {
        gotResponse = true;
      });
      req.on("error", () => undefined);
      // Reserves ceil(2/4) + 2000 = 2001 tokens of the key's 10,000.
      req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 2000, stream: true }));
      await waitFor(() => r.spot.stats().inflight === 1, 2000);
      await new Promise((res) => setTimeout(res, 150)); // the head has reached the router
      assert.equal(gotResponse, false, "nothing is sent to the client before the first body byte");
      req.destroy();
      await r.idle();
      await waitFor(() => r.spot.stats().inflight === 0, 2000);
      assert.equal(gotResponse, false);
      assert.equal(r.svl.stats().requests, 0, "a client leaving is no reason to fail over");
      const m = await r.metrics();
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="spot",status="499"} 1']);
      assert.doesNotMatch(m, /tuna_router_failovers_total\{/);
      assert.equal(r.router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot")?.consecutiveFailures, 0, "not the backend's fault");
      // No answer was delivered: the reservation went back. This request reserves ceil(11/4) + 4 = 7.
      r.spot.setFault({ mode: "none" });
      const next = await chat(r.router.url, KEY);
      assert.equal(next.status, 200);
      assert.equal(next.headers["x-ratelimit-remaining-tokens"], String(10_000 - 7));
      await waitFor(() => totalRequests(r.cp) >= 2);
      assert.equal(totalRequests(r.cp), 2);
      assert.equal(r.usage().get("spot")?.errors, 1, "the abandoned request is one error");
    } finally {
      await r.close();
    }
  });
});
