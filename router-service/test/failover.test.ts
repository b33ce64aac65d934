// Failover after the upstream's response head but before the first byte reached the client: a buffered answer
// lost mid-body, a stream whose backend dies or stalls between its head and its first event (a spot GPU
// preempted mid-prefill), and a client that leaves while the head is held. Real sockets throughout; usage is
// checked in the reports a fake control plane receives.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { describe, test } from "node:test";
import type { RoutingConfig } from "../src/contract.js";
import { startRouter, startSimulator } from "../src/index.js";
import { startControlPlane, totalRequests } from "./helpers/controlPlane.js";
import { chat, deployment, KEY, request, snapshot, waitFor } from "./helpers/fixtures.js";
import { type Rig, startRig } from "./helpers/rig.js";

/** Ejection off unless `routing` says otherwise; `tpm` is the key's limit. */
const rig = (routing: Partial<RoutingConfig> = {}, tpm = 100_000_000): Promise<Rig> =>
  startRig({ name: "failover", routing, limits: { rpm: 100_000, tpm, maxConcurrent: 1000 } });

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

  test("a stream cut after its commit is a failure only (success comes at a clean end): consecutive cut streams eject at ejectAfterFailures 2", async () => {
    const r = await rig({ ejectAfterFailures: 2, minEjectMs: 60_000, healthCheckIntervalMs: 60_000 });
    try {
      const spot = () => r.router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot");
      r.spot.setFault({ mode: "close-mid-stream", afterChunks: 2 });
      const cut = await streamChat(r.router.url);
      assert.equal(cut.backend, "spot");
      assert.equal(cut.clean, false);
      await r.idle();
      assert.equal(spot()?.consecutiveFailures, 1);
      // A clean stream in between resets the count at its end.
      r.spot.setFault({ mode: "none" });
      const ok = await streamChat(r.router.url);
      assert.ok(ok.clean && ok.backend === "spot");
      await r.idle();
      assert.equal(spot()?.consecutiveFailures, 0);
      r.spot.setFault({ mode: "close-mid-stream", afterChunks: 2 });
      for (let i = 0; i < 2; i++) {
        const s = await streamChat(r.router.url);
        assert.equal(s.backend, "spot");
        assert.equal(s.clean, false);
        await r.idle();
      }
      assert.equal(spot()?.consecutiveFailures, 2);
      assert.equal(spot()?.state(), "ejected");
      assert.equal(backendOf(await chat(r.router.url, KEY)), "svl");
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

/** A backend on a raw socket (exact control over which bytes go out when): `onReq` runs once per request received. */
async function rawBackend(onReq: (s: net.Socket, n: number) => void) {
  let n = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => undefined);
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("latin1");
      for (;;) {
        const e = buf.indexOf("\r\n\r\n");
        if (e < 0) return;
        const m = /content-length: (\d+)/i.exec(buf.slice(0, e));
        const len = m ? Number(m[1]) : 0;
        if (buf.length < e + 4 + len) return;
        buf = buf.slice(e + 4 + len);
        onReq(s, ++n);
      }
    });
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    requests: () => n,
    /** Server-side connections still open. */
    open: () => socks.size,
    close() {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

let rawSeq = 0;
/**
 * A router over `raw` (tried first) and a simulator as its fallback ("svl"); serverless-only order. The
 * config is static, or with `usage` served by a fake control plane that receives the usage reports.
 */
async function rawRig(raw: { url: string }, routing: Partial<RoutingConfig> = {}, o: { usage?: boolean } = {}) {
  const rawId = "raw";
  const sim = await startSimulator({ model: "qwen-small" });
  const mk = (urls: Array<[string, string]>, version = 1) => {
    const d = deployment({ mode: "serverless", backends: urls.map(([id, url]) => ({ id, kind: "serverless" as const, url })) });
    d.routing = { ...d.routing, policy: "serverless-only", healthCheckIntervalMs: 100_000, ejectAfterFailures: 100, ...routing };
    return snapshot([d], { version });
  };
  const stateDir = `/tmp/tuna-rt-failover-raw-${process.pid}-${++rawSeq}`;
  const cp = o.usage ? await startControlPlane() : undefined;
  cp?.setSnapshot(mk([[rawId, raw.url], ["svl", sim.url]]));
  const router = cp
    ? await startRouter({ controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 40, logLevel: "silent", stateDir })
    : await startRouter({ config: mk([[rawId, raw.url], ["svl", sim.url]]), logLevel: "silent", stateDir });
  const dep = () => {
    const x = router.store.current?.deployments.get("dep_1");
    if (!x) throw new Error("no deployment");
    return x;
  };
  const backend = (id: string) => {
    const b = dep().backends.find((x) => x.id === id);
    if (!b) throw new Error(`no backend ${id}`);
    return b;
  };
  return {
    sim, router, dep, backend,
    metrics: async () => (await request(`${router.url}/metrics`)).body,
    /** Leaves only the raw backend: no candidate to fail over to. */
    rawOnly: () => {
      const s = mk([[rawId, raw.url]], 2);
      cp?.setSnapshot(s);
      router.applySnapshot(s);
    },
    /** Usage entries reported so far (`usage` rigs), by backend id, summed over reports. */
    usage() {
      const out = new Map<string, { requests: number; errors: number; busyMs: number }>();
      for (const rep of cp?.reports.values() ?? [])
        for (const e of rep.entries) {
          const u = out.get(e.backendId) ?? { requests: 0, errors: 0, busyMs: 0 };
          u.requests += e.requests;
          u.errors += e.errors;
          u.busyMs += e.busyMs;
          out.set(e.backendId, u);
        }
      return out;
    },
    totalRequests: () => (cp ? totalRequests(cp) : 0),
    async idle() {
      await waitFor(() => router.inflight() === 0 && dep().inflight.n === 0 && dep().backends.every((b) => b.inflight === 0), 3000);
    },
    async close() {
      await router.close();
      await cp?.close();
      await sim.close();
    },
  };
}

const SSE_HEAD = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
/** One chunk of a chunked body. */
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;

describe("SSE commits at its first complete event for the client, not at its first byte", () => {
  test("head + part of the first event, then the backend dies: fails over (reset_before_body), the fallback's stream arrives whole, counted once", async () => {
    const raw = await rawBackend((s) => {
      s.write(SSE_HEAD);
      setTimeout(() => s.write(chunk('data: {"choices":[{"')), 20); // no blank line yet: nothing for the client
      setTimeout(() => s.destroy(), 60);
    });
    const r = await rawRig(raw);
    try {
      const s = await streamChat(r.router.url);
      assert.equal(s.status, 200);
      assert.equal(s.backend, "svl");
      assert.ok(s.clean, "ended cleanly, not a hang-up");
      assert.deepEqual(streamText(s.text), { content: "tuna swims fast in the open", done: true });
      assert.equal(raw.requests(), 1);
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="svl",status="200"} 1'], "counted once");
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="raw",to="svl",reason="reset_before_body"\} 1\n/);
    } finally {
      await r.close();
      raw.close();
    }
  });

  test("head + part of the first event, then a stall: fails over after firstByteTimeoutMs; with no candidate left → 504", async () => {
    const raw = await rawBackend((s) => {
      s.write(SSE_HEAD);
      setTimeout(() => s.write(chunk('data: {"choices":[{"')), 20);
    });
    const r = await rawRig(raw, { firstByteTimeoutMs: 300 });
    try {
      const s = await streamChat(r.router.url);
      assert.equal(s.backend, "svl");
      assert.ok(s.clean);
      assert.deepEqual(streamText(s.text), { content: "tuna swims fast in the open", done: true });
      assert.ok(s.ms >= 280 && s.ms < 3000, `after the deadline (${s.ms} ms)`);
      assert.match(await r.metrics(), /tuna_router_failovers_total\{deployment="dep_1",from="raw",to="svl",reason="timeout_before_body"\} 1\n/);
      await waitFor(() => raw.open() === 0, 2000); // the stalled exchange was abandoned

      r.rawOnly();
      const t0 = Date.now();
      const res = await chat(r.router.url, KEY, { stream: true });
      assert.equal(res.status, 504);
      assert.match(res.json().error.message, /timeout before first byte/);
      assert.ok(Date.now() - t0 < 3000);
      await r.idle();
      assert.match(await r.metrics(), /tuna_router_requests_total\{deployment="dep_1",backend="raw",status="504"\} 1\n/);
    } finally {
      await r.close();
      raw.close();
    }
  });

  test("a usage-only event the client does not get (it did not ask for usage) commits nothing: the deadline still applies", async () => {
    const usageOnly = 'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n';
    const ev = 'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';
    const raw = await rawBackend((s) => {
      s.write(SSE_HEAD + chunk(usageOnly));
      setTimeout(() => s.write(chunk(ev) + chunk("data: [DONE]\n\n") + "0\r\n\r\n"), 400);
    });
    // A deadline shorter than the gap after the usage chunk: were it a commit, the request would not fail over.
    const r = await rawRig(raw, { firstByteTimeoutMs: 200 });
    try {
      const s = await streamChat(r.router.url);
      assert.equal(s.backend, "svl", "the filtered event did not commit the attempt");
      r.rawOnly();
      const s2 = await streamChat(r.router.url);
      assert.equal(s2.status, 504, "still nothing for the client when the deadline passed");
      await r.idle();
    } finally {
      await r.close();
      raw.close();
    }
  });

  test("a 5xx head whose body never comes, on a candidate with a fallback: the fallback answers and no socket to the 5xx backend stays open", async () => {
    const raw = await rawBackend((s) => s.write("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n"));
    const r = await rawRig(raw);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await chat(r.router.url, KEY);
        assert.equal(res.status, 200);
        assert.equal(backendOf(res), "svl");
      }
      assert.equal(raw.requests(), 3);
      assert.match(await r.metrics(), /tuna_router_failovers_total\{deployment="dep_1",from="raw",to="svl",reason="5xx"\} 3\n/);
      await r.idle();
      // Drained for at most DISCARD_DEADLINE_MS (1 s), then closed.
      await waitFor(() => raw.open() === 0, 3000);
      assert.equal(r.dep().backends.find((b) => b.id === "raw")?.pool.openCount(), 0);
    } finally {
      await r.close();
      raw.close();
    }
  });
});

const ANSWER = JSON.stringify({
  id: "x", object: "chat.completion", created: 0, model: "qwen-small",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
});
const ANSWER_HEAD = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${ANSWER.length}\r\n`;

/**
 * A non-streaming chat request on a fresh connection. `viaNode`: a duplicate header makes the router's fast path
 * hand the connection to Node's http server (whose `writeHead` validates the head; the fast path's does not).
 */
// biome-ignore lint/suspicious/noExplicitAny: test bodies are asserted field by field
function postChat(base: string, viaNode: boolean): Promise<{ status: number; backend?: string; json: () => any }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };
    if (viaNode) headers["x-trace"] = ["1", "2"];
    const req = http.request(`${base}/v1/chat/completions`, { method: "POST", agent: false, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, backend: res.headers["x-tuna-backend"] as string | undefined, json: () => JSON.parse(text) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }));
  });
}

describe("an upstream head the router cannot relay is a failure before the first byte", () => {
  test("a head the upstream parser refuses (a control character) fails over as bad_response, not as a reset; no candidate left → 502 invalid response head", async () => {
    const raw = await rawBackend((s) => s.write(`${ANSWER_HEAD}x-debug: a\x01b\r\n\r\n${ANSWER}`));
    const r = await rawRig(raw, {}, { usage: true });
    try {
      for (const viaNode of [true, false]) {
        const res = await postChat(r.router.url, viaNode);
        assert.equal(res.status, 200, `via ${viaNode ? "Node" : "the fast path"}`);
        assert.equal(res.backend, "svl");
        assert.equal(res.json().choices[0].message.content, "tuna swims fast in");
      }
      await r.idle();
      await waitFor(() => raw.open() === 0, 2000);
      assert.equal(r.backend("raw").pool.openCount(), 0, "never reused");
      const m = await r.metrics();
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="raw",to="svl",reason="bad_response"\} 2\n/);
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="svl",status="200"} 2'], "each request counted once");
      await waitFor(() => r.totalRequests() >= 2 && (r.usage().get("raw")?.busyMs ?? 0) > 0);
      assert.deepEqual({ ...r.usage().get("svl"), busyMs: 0 }, { requests: 2, errors: 0, busyMs: 0 });
      assert.deepEqual({ ...r.usage().get("raw"), busyMs: 0 }, { requests: 0, errors: 0, busyMs: 0 }, "the failed attempts add busy time only");
      r.rawOnly();
      const last = await postChat(r.router.url, false);
      assert.equal(last.status, 502);
      assert.equal(last.json().error.code, "upstream_error");
      assert.match(last.json().error.message, /invalid response head/);
      await r.idle();
      await waitFor(() => raw.open() === 0, 2000);
    } finally {
      await r.close();
      raw.close();
    }
  });

  test("a Transfer-Encoding other than exactly chunked (gzip; gzip, chunked; two codings on two lines) is malformed: fails over, never relayed, the connection closed; no candidate left → 502", async () => {
    const framings: Record<string, string> = {
      // RFC 9112 §6.3: the body would run until the close, in a coding the router never asked for.
      gzip: `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip\r\n\r\n${ANSWER}`,
      // Dechunked this is still gzip-coded: passed on without its coding, the client would read garbage as JSON.
      "gzip, chunked": `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n${chunk(ANSWER)}0\r\n\r\n`,
      "two lines": `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(ANSWER)}0\r\n\r\n`,
      "chunked twice": `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked, chunked\r\n\r\n${chunk(ANSWER)}0\r\n\r\n`,
    };
    let mode = "gzip";
    const raw = await rawBackend((s) => {
      if (mode === "gzip") s.end(framings[mode]);
      else s.write(framings[mode]);
    });
    const r = await rawRig(raw);
    try {
      for (const m of Object.keys(framings)) {
        mode = m;
        for (const viaNode of [true, false]) {
          const res = await postChat(r.router.url, viaNode);
          assert.equal(res.status, 200, m);
          assert.equal(res.backend, "svl", m);
          assert.equal(res.json().choices[0].message.content, "tuna swims fast in", m);
        }
        await r.idle();
        await waitFor(() => raw.open() === 0, 2000);
      }
      const n = Object.keys(framings).length * 2;
      assert.equal(raw.requests(), n);
      const m = await r.metrics();
      assert.match(m, new RegExp(`tuna_router_failovers_total\\{deployment="dep_1",from="raw",to="svl",reason="bad_response"\\} ${n}\\n`));
      assert.deepEqual(requestSeries(m), [`tuna_router_requests_total{deployment="dep_1",backend="svl",status="200"} ${n}`]);

      r.rawOnly();
      for (const f of Object.keys(framings)) {
        mode = f;
        const res = await postChat(r.router.url, false);
        assert.equal(res.status, 502, f);
        assert.equal(res.json().error.code, "upstream_error", f);
        assert.match(res.json().error.message, /invalid response head/, f);
      }
      await r.idle();
      await waitFor(() => raw.open() === 0, 2000);
      assert.equal(r.backend("raw").pool.openCount(), 0);
    } finally {
      await r.close();
      raw.close();
    }
  });
});

describe("tuna_router_failovers_total names the backend actually tried next", () => {
  test("a fallback that became unavailable while the first attempt ran is not tried, and no failover is counted", async () => {
    // raw answers 503 after 200 ms; meanwhile the fallback is drained (a preemption notice).
    const raw = await rawBackend((s) => setTimeout(() => s.write('HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}'), 200));
    const r = await rawRig(raw);
    try {
      const pending = postChat(r.router.url, false);
      await waitFor(() => raw.requests() === 1, 2000);
      r.backend("svl").report(undefined, true);
      const res = await pending;
      assert.equal(res.status, 502);
      assert.match(res.json().error.message, /status 503/);
      assert.equal(r.sim.stats().requests, 0, "the drained fallback was not tried");
      await r.idle();
      let m = await r.metrics();
      assert.doesNotMatch(m, /tuna_router_failovers_total\{/, "no failover happened");
      assert.deepEqual(requestSeries(m), ['tuna_router_requests_total{deployment="dep_1",backend="raw",status="502"} 1']);

      // The fallback back in service: the failover happens, and is counted to it.
      r.backend("svl").report(undefined, false);
      const ok = await postChat(r.router.url, false);
      assert.equal(ok.status, 200);
      assert.equal(ok.backend, "svl");
      await r.idle();
      m = await r.metrics();
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="raw",to="svl",reason="5xx"\} 1\n/);
      assert.equal((m.match(/^tuna_router_failovers_total\{.*$/gm) ?? []).length, 1);
    } finally {
      await r.close();
      raw.close();
    }
  });
});
