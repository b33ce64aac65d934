// The idle deadline after the commit (`streamIdleTimeoutMs`): a backend that goes silent mid-body without
// closing its connection (a frozen spot VM) is cut; a slow but steady stream, a slow client (backpressure) and a
// small buffered answer are not. Real sockets throughout; usage is checked in the reports a fake control plane
// receives.
import assert from "node:assert/strict";
import http from "node:http";
import { describe, test } from "node:test";
import type { RoutingConfig } from "../src/contract.js";
import { Exchange } from "../src/upstream.js";
import { totalRequests } from "./helpers/controlPlane.js";
import { chat, KEY, waitFor } from "./helpers/fixtures.js";
import { type Rig, type RigOptions, startRig } from "./helpers/rig.js";

const rig = (routing: Partial<RoutingConfig>, limits?: RigOptions["limits"], spot?: RigOptions["spot"]): Promise<Rig> =>
  startRig({ name: "streamidle", routing, limits, spot });

interface Streamed {
  status: number;
  text: string;
  clean: boolean;
  backend?: string;
  ms: number;
}

/**
 * Reads a streamed chat answer; resolves with the text and whether it ended cleanly. `stallReadingMs`: the client
 * stops reading as soon as the head arrives and resumes that much later (its socket buffers fill meanwhile).
 */
function streamChat(base: string, body: Record<string, unknown> = {}, stallReadingMs = 0): Promise<Streamed> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request(`${base}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      const backend = res.headers["x-tuna-backend"] as string | undefined;
      const done = (clean: boolean) => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), clean, backend, ms: Date.now() - t0 });
      res.on("end", () => done(true));
      res.on("error", () => done(false));
      // An explicitly paused response does not flow again when a data listener is added: resume() too.
      const read = () => res.on("data", (c: Buffer) => chunks.push(c)).resume();
      if (stallReadingMs > 0) {
        res.pause();
        setTimeout(read, stallReadingMs);
      } else read();
    });
    req.on("error", () => resolve({ status: 0, text: "", clean: false, ms: Date.now() - t0 }));
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true, ...body }));
  });
}

const events = (text: string) => text.split("\n\n").filter(Boolean);
const idleSeries = (m: string) => m.match(/^tuna_router_stream_idle_timeouts_total\{.*$/gm) ?? [];

describe("streamIdleTimeoutMs: the idle deadline after the commit", () => {
  test("a stream that goes silent mid-way is cut after the idle timeout: backend blamed, slots and lease back, one error", { timeout: 20_000 }, async () => {
    // maxConcurrent 1: a lease that did not come back would refuse the next request with 429. ejectAfterFailures 1:
    // the cut alone ejects spot (a success is recorded only at a stream's clean end, so the cut is its only outcome).
    const r = await rig({ streamIdleTimeoutMs: 300, ejectAfterFailures: 1, minEjectMs: 60_000 }, { rpm: 100_000, tpm: 10_000, maxConcurrent: 1 });
    try {
      // Spot sends 3 events, then nothing, with its connection left open (a frozen VM).
      r.spot.setFault({ mode: "stall-mid-stream", afterChunks: 3 });
      const s = await streamChat(r.router.url);
      assert.equal(s.status, 200, "headers were out before the stall");
      assert.equal(s.backend, "spot");
      assert.equal(s.clean, false, "the client sees a cut connection, not a clean end");
      assert.equal(events(s.text).length, 3, "the events sent before the stall were relayed");
      assert.ok(!s.text.includes("[DONE]"));
      assert.ok(s.ms >= 280 && s.ms < 3000, `cut after ~streamIdleTimeoutMs (${s.ms} ms)`);
      await r.idle();
      // The upstream exchange was destroyed: the simulator sees its request end.
      await waitFor(() => r.spot.stats().inflight === 0, 2000);
      assert.equal(r.failures("spot"), 1, "counted towards ejection");
      assert.equal(r.router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot")?.state(), "ejected");
      const m = await r.metrics();
      assert.deepEqual(idleSeries(m), ['tuna_router_stream_idle_timeouts_total{deployment="dep_1",backend="spot"} 1']);
      assert.match(m, /tuna_router_requests_total\{deployment="dep_1",backend="spot",status="502"\} 1\n/);
      assert.doesNotMatch(m, /tuna_router_failovers_total\{/, "no retry once bytes reached the client");

      // The key's lease came back (maxConcurrent 1); spot is out, so svl answers.
      const next = await chat(r.router.url, KEY);
      assert.equal(next.status, 200);
      assert.equal(next.headers["x-tuna-backend"], "svl", "spot was ejected");
      // Usage unknown for a cut stream: its reservation (ceil(2/4) + 6 = 7) stands; this one reserves 7.
      assert.equal(next.headers["x-ratelimit-remaining-tokens"], String(10_000 - 7 - 7));
      await waitFor(() => totalRequests(r.cp) >= 2);
      assert.equal(totalRequests(r.cp), 2, "each request counted once");
      assert.deepEqual({ requests: r.usage().get("spot")?.requests, errors: r.usage().get("spot")?.errors }, { requests: 1, errors: 1 });
      assert.equal(r.usage().get("svl")?.errors, 0);
    } finally {
      await r.close();
    }
  });

  test("a large non-SSE answer whose body goes silent part-way is cut too", { timeout: 20_000 }, async () => {
    const r = await rig({ streamIdleTimeoutMs: 300 });
    try {
      // Over 1 MiB with its content-length: relayed as it comes (commits at the first byte), not buffered whole.
      r.spot.setFault({ mode: "stall-mid-stream" });
      const t0 = Date.now();
      const err = await chat(r.router.url, KEY, { max_tokens: 300_000 }).then(
        (res) => new Error(`got a whole answer: ${res.status}`),
        (e: Error) => e,
      );
      const ms = Date.now() - t0;
      assert.match(err.message, /aborted|socket hang up|ECONNRESET/);
      assert.ok(ms < 5000, `cut, not held (${ms} ms)`);
      await r.idle();
      await waitFor(() => r.spot.stats().inflight === 0, 2000);
      assert.deepEqual(idleSeries(await r.metrics()), ['tuna_router_stream_idle_timeouts_total{deployment="dep_1",backend="spot"} 1']);
      assert.equal(r.failures("spot"), 1);
    } finally {
      await r.close();
    }
  });

  test("a stream slower than the timeout in total, each gap below it, completes", { timeout: 20_000 }, async () => {
    // 6 tokens at 6.5/s: ~150 ms between events, ~1 s in all, against a 300 ms idle timeout.
    const r = await rig({ streamIdleTimeoutMs: 300 }, undefined, { tokensPerS: 6.5 });
    try {
      const s = await streamChat(r.router.url);
      assert.equal(s.backend, "spot");
      assert.ok(s.clean, "ended cleanly");
      assert.equal(events(s.text).at(-1), "data: [DONE]");
      assert.ok(s.ms >= 600, `the stream took longer than the idle timeout in total (${s.ms} ms)`);
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(idleSeries(m), []);
      assert.match(m, /tuna_router_requests_total\{deployment="dep_1",backend="spot",status="200"\} 1\n/);
      assert.equal(r.failures("spot"), 0);
    } finally {
      await r.close();
    }
  });

  test("a slow client (upstream paused for backpressure longer than the timeout) is not cut", { timeout: 30_000 }, async () => {
    const r = await rig({ streamIdleTimeoutMs: 300 });
    // Counts the router's backpressure pauses, to show this test really exercises them.
    const pause = Exchange.prototype.pause;
    let pauses = 0;
    Exchange.prototype.pause = function (this: Exchange) {
      pauses++;
      return pause.call(this);
    };
    try {
      // ~20 MB of events from a fast backend; the client reads nothing for 1.5 s, so every buffer on the way fills.
      const s = await streamChat(r.router.url, { max_tokens: 120_000 }, 1500);
      assert.ok(pauses > 0, "the router paused the upstream for the slow client");
      assert.equal(s.backend, "spot");
      assert.ok(s.clean, "ended cleanly");
      assert.ok(s.ms >= 1500);
      assert.equal(events(s.text).at(-1), "data: [DONE]");
      await r.idle();
      const m = await r.metrics();
      assert.deepEqual(idleSeries(m), []);
      assert.match(m, /tuna_router_requests_total\{deployment="dep_1",backend="spot",status="200"\} 1\n/);
      assert.equal(r.failures("spot"), 0);
    } finally {
      Exchange.prototype.pause = pause;
      await r.close();
    }
  });

  test("a small buffered JSON answer arms no idle timer, even when it takes longer than the idle timeout", { timeout: 20_000 }, async () => {
    // A distinctive delay so the timer can be told apart from the router's other timers.
    const IDLE = 333;
    const r = await rig({ streamIdleTimeoutMs: IDLE });
    const setTimeoutOrig = globalThis.setTimeout;
    let armed = 0;
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      if (ms === IDLE) armed++;
      return setTimeoutOrig(fn, ms, ...rest);
    }) as typeof setTimeout;
    try {
      // The head comes after 600 ms: before the commit only the attempt deadline applies.
      r.spot.setFault({ mode: "slow", delayMs: 600 });
      const res = await chat(r.router.url, KEY);
      assert.equal(res.status, 200);
      assert.equal(res.headers["x-tuna-backend"], "spot");
      assert.equal(res.json().choices[0].message.content, "tuna swims fast in");
      assert.equal(armed, 0, "no idle timer for a buffered answer");
      // The spy sees a streamed answer's timer.
      r.spot.setFault({ mode: "none" });
      const s = await streamChat(r.router.url);
      assert.ok(s.clean);
      assert.equal(armed, 1, "one timer for a stream, not one per chunk");
      await r.idle();
      assert.deepEqual(idleSeries(await r.metrics()), []);
    } finally {
      globalThis.setTimeout = setTimeoutOrig;
      await r.close();
    }
  });
});
