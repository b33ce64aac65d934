// Per-key and per-deployment limits with the in-process store (the embedded default).
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { hashApiKey } from "../src/auth.js";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { MemoryRateLimiter } from "../src/ratelimit/memory.js";
import type { LimitSpec } from "../src/ratelimit/types.js";
import { chat, deployment, KEY, seeded, sleep, snapshot, waitFor } from "./helpers/fixtures.js";

const K_TPM = "tuna_sk_tpm";
const K_CONC = "tuna_sk_conc";
const K_SMALL = "tuna_sk_small";
const K_SMALL2 = "tuna_sk_small_two";
const K_ABORT = "tuna_sk_abort";

function streamUsage(base: string, key: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${key}` } }, (res) => {
      let t = "";
      res.on("data", (c) => (t += c));
      res.on("end", () => resolve(t));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hello there" }], stream: true, ...body }));
  });
}

describe("limits (in-process store)", () => {
  let sim: SimulatorHandle;
  let slow: SimulatorHandle;
  let router: RouterHandle;
  before(async () => {
    sim = await startSimulator({ model: "qwen-small", defaultMaxTokens: 16 });
    slow = await startSimulator({ model: ["slow-model", "capped-model", "rpm-model", "tpm-model"], ttftMs: 300 });
    const snap = snapshot([
      deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_slow", slug: "slow", models: ["slow-model"], svlUrl: slow.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_cap", slug: "capped", models: ["capped-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { maxInflight: 1 } }),
      deployment({ id: "dep_rpm", slug: "rpmd", models: ["rpm-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { rpm: 2 } }),
      deployment({ id: "dep_tpm", slug: "tpmd", models: ["tpm-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { tpm: 50 } }),
    ]);
    snap.apiKeys.push(
      { id: "k_tpm", hash: hashApiKey(K_TPM), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 1000, maxConcurrent: 10 } },
      { id: "k_conc", hash: hashApiKey(K_CONC), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 1000000, maxConcurrent: 2 } },
      { id: "k_small", hash: hashApiKey(K_SMALL), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 100, maxConcurrent: 10 } },
      { id: "k_small2", hash: hashApiKey(K_SMALL2), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 100, maxConcurrent: 10 } },
      { id: "k_abort", hash: hashApiKey(K_ABORT), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 10_000, maxConcurrent: 10 } },
    );
    router = await startRouter({ config: snap, logLevel: "silent", stateDir: `/tmp/tuna-rt-limits-${process.pid}`, defaultReserveTokens: 256 });
  });
  after(async () => {
    await router.close();
    await sim.close();
    await slow.close();
  });

  test("TPM reserves max_tokens up front and settles to real usage (non-streaming)", async () => {
    // No max_tokens: reserve 3 (prompt) + 256; the simulator really produces 16.
    const a = await chat(router.url, K_TPM, { max_tokens: undefined });
    assert.equal(a.status, 200);
    assert.equal(Number(a.headers["x-ratelimit-remaining-tokens"]), 1000 - 259);
    const b = await chat(router.url, K_TPM, { max_tokens: undefined });
    // The window holds the first request's real 19 tokens and the second's reservation; nothing refills
    // within a minute, so the count is exact.
    assert.equal(Number(b.headers["x-ratelimit-remaining-tokens"]), 1000 - 19 - 259);
  });

  test("TPM settles on streams too (router asks upstream for usage)", async () => {
    const before = await chat(router.url, K_TPM, { max_tokens: 1 });
    const base = Number(before.headers["x-ratelimit-remaining-tokens"]);
    const text = await streamUsage(router.url, K_TPM, {});
    assert.ok(text.includes("[DONE]"));
    assert.ok(!text.includes('"usage"'), "client did not ask for usage, so it does not see it");
    await new Promise((r) => setTimeout(r, 20));
    const after = await chat(router.url, K_TPM, { max_tokens: 1 });
    const rem = Number(after.headers["x-ratelimit-remaining-tokens"]);
    // stream: 3+16 = 19 tokens charged (not 259); this request reserves 4.
    assert.equal(rem, base - 19 - 4);
  });

  test("a client that leaves before the backend answers gets its whole TPM reservation back", async () => {
    // slow-model answers after 300 ms; the client gives up while the backend is still working.
    const started = slow.stats().requests;
    const req = http.request(`${router.url}/v1/chat/completions`, { method: "POST", agent: false, headers: { authorization: `Bearer ${K_ABORT}` } });
    req.on("error", () => undefined);
    req.end(JSON.stringify({ model: "slow-model", messages: [{ role: "user", content: "hello there" }], max_tokens: 6000 }));
    await waitFor(() => slow.stats().requests > started, 2000, 5);
    req.destroy();
    await waitFor(() => router.inflight() === 0, 2000);
    await sleep(20);
    // 3 + 6000 were reserved; 3 + 4000 fit in tpm 10 000 only if they were given back.
    const r = await chat(router.url, K_ABORT, { max_tokens: 4000 });
    assert.equal(r.status, 200, r.body);
    assert.equal(Number(r.headers["x-ratelimit-remaining-tokens"]), 10_000 - 4003);
  });

  test("TPM rejection names the limit and says when the tokens fit", async () => {
    assert.equal((await chat(router.url, K_SMALL, { max_tokens: 60 })).status, 200);
    // 63 + 63 > 100: fits only once the first request's second has left the window, 61 s after it.
    const r = await chat(router.url, K_SMALL, { max_tokens: 60 });
    assert.equal(r.status, 429);
    assert.equal(r.json().error.type, "tokens");
    assert.match(r.json().error.message, /key tpm/);
    const retry = Number(r.headers["retry-after"]);
    assert.ok(retry >= 60 && retry <= 61, `retry-after ${retry}`);
  });

  test("a request larger than the whole TPM is refused as too large, with no Retry-After", async () => {
    // Waiting cannot help (reserve 3 + 500 > tpm 100), so a Retry-After would only invite a futile retry.
    const r = await chat(router.url, K_SMALL, { max_tokens: 500 });
    assert.equal(r.status, 429);
    assert.equal(r.json().error.type, "tokens");
    assert.match(r.json().error.message, /tpm/);
    assert.equal(r.headers["retry-after"], undefined);
    assert.equal(r.headers["x-should-retry"], "false", "the official clients do not retry it");
    // The reservation covers the larger of max_tokens and max_completion_tokens, for each of n choices.
    for (const over of [{ max_tokens: 1, max_completion_tokens: 500 }, { max_completion_tokens: 1, max_tokens: 500 }, { max_tokens: 40, n: 3 }]) {
      assert.equal((await chat(router.url, K_SMALL2, over)).status, 429, JSON.stringify(over));
    }
    // Refused as too large, they took nothing: a request that fits gets the whole window.
    assert.equal((await chat(router.url, K_SMALL2, { max_tokens: 40, n: 2 })).status, 200);
  });

  test("maxConcurrent per key, and the lease returns after the response", async () => {
    const rs = await Promise.all(Array.from({ length: 4 }, () => chat(router.url, K_CONC, { model: "slow-model" })));
    assert.equal(rs.filter((r) => r.status === 200).length, 2);
    const refused = rs.filter((r) => r.status === 429);
    assert.equal(refused.length, 2);
    assert.match(refused[0].json().error.message, /maxConcurrent/);
    assert.equal((await chat(router.url, K_CONC, { model: "slow-model" })).status, 200);
  });

  test("per-deployment caps: in-flight, rpm and tpm", async () => {
    const rs = await Promise.all(Array.from({ length: 2 }, () => chat(router.url, K_CONC, { model: "capped-model" })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 503]);
    const rpm = [];
    for (let i = 0; i < 3; i++) rpm.push(await chat(router.url, K_CONC, { model: "rpm-model" }));
    assert.deepEqual(rpm.map((r) => r.status), [200, 200, 429]);
    assert.match(rpm[2].json().error.message, /deployment rpm/);
    // tpm 50 across all keys: each request reserves 3 + 20 and settles to its real 3 + 20 (the simulator
    // answers max_tokens tokens), so two fit and the third does not, whichever key sends it.
    const tpm = [];
    for (const key of [K_CONC, KEY, K_CONC]) tpm.push(await chat(router.url, key, { model: "tpm-model", max_tokens: 20 }));
    assert.deepEqual(tpm.map((r) => r.status), [200, 200, 429]);
    assert.match(tpm[2].json().error.message, /deployment tpm/);
    assert.equal((await chat(router.url, KEY, { model: "tpm-model", max_tokens: 60 })).json().error.message.startsWith("Request too large for deployment tpm"), true);
  });
});

describe("sliding window arithmetic (in-process store, fake clock)", () => {
  // A realistic epoch second, so second indexes look like the store's real ones.
  const T0 = 1_700_000_000_000;
  let now = T0;
  let rl: MemoryRateLimiter;
  const made: MemoryRateLimiter[] = [];
  const fresh = () => {
    rl = new MemoryRateLimiter(() => now);
    made.push(rl);
  };
  const at = (ms: number) => {
    now = T0 + ms;
  };
  const take = (limits: LimitSpec, tokens = 0) => rl.acquireSync("s", limits, tokens, "l");
  after(() => Promise.all(made.map((m) => m.close())));

  test("rpm N admits exactly N per window, then again exactly when the oldest second leaves", () => {
    fresh();
    const lim = { rpm: 10 };
    at(0);
    for (let i = 0; i < 3; i++) assert.ok(take(lim).ok);
    at(10_500);
    for (let i = 0; i < 7; i++) assert.ok(take(lim).ok);
    at(30_200);
    const denied = take(lim);
    assert.equal(denied.ok, false);
    assert.equal(denied.limit, "rpm");
    assert.equal(denied.requestsRemaining, 0);
    // Second 0 leaves the window at the start of second 61.
    assert.equal(denied.requestsResetMs, 61_000 - 30_200);
    assert.equal(denied.retryAfterS, 31);
    at(60_999);
    const last = take(lim);
    assert.equal(last.ok, false);
    assert.equal(last.retryAfterS, 1);
    at(61_000);
    for (let i = 0; i < 3; i++) assert.ok(take(lim).ok, `request ${i} after second 0 left`);
    const next = take(lim);
    assert.equal(next.ok, false);
    assert.equal(next.requestsResetMs, 71_000 - 61_000, "the 7 of second 10 leave at second 71");
  });

  test("a second exactly 60 s old still counts; it leaves at 61 s", () => {
    fresh();
    at(999);
    assert.ok(take({ rpm: 1 }).ok);
    at(60_000);
    assert.equal(take({ rpm: 1 }).ok, false);
    at(60_999);
    assert.equal(take({ rpm: 1 }).retryAfterS, 1);
    at(61_000);
    assert.ok(take({ rpm: 1 }).ok);
  });

  test("no 60 s window ever holds more than rpm, with random arrivals over 3 minutes", () => {
    fresh();
    const rpm = 50;
    const rand = seeded(42);
    const arrivals = Array.from({ length: 3000 }, () => Math.floor(rand() * 180_000)).sort((a, b) => a - b);
    const admitted: number[] = [];
    for (const t of arrivals) {
      at(t);
      const r = take({ rpm });
      if (r.ok) admitted.push(t);
      else {
        // A refusal is justified: the buckets k-60..k already hold rpm admissions.
        const k = Math.floor(t / 1000);
        assert.equal(admitted.filter((a) => Math.floor(a / 1000) >= k - 60).length, rpm, `refusal at ${t}`);
      }
    }
    let j = 0;
    for (let i = 0; i < admitted.length; i++) {
      while (j < admitted.length && admitted[j] < admitted[i] + 60_000) j++;
      assert.ok(j - i <= rpm, `${j - i} admitted in [${admitted[i]}, +60 s)`);
    }
    // Under-admission is bounded by the extra second: about rpm per 61 s.
    assert.ok(admitted.length >= Math.floor((rpm * 180) / 61), `admitted ${admitted.length}`);
  });

  test("tpm: a refund restores room, usage above the reservation removes it", () => {
    fresh();
    const lim = { tpm: 1000 };
    at(500);
    const a = take(lim, 600);
    assert.ok(a.ok);
    assert.equal(a.windowSec, T0 / 1000);
    at(2_500);
    const refused = take(lim, 500);
    assert.equal(refused.limit, "tpm");
    assert.equal(refused.tokensRemaining, 400);
    rl.settle("s", lim, -400, a.windowSec); // used 200 of its 600
    const b = take(lim, 500);
    assert.ok(b.ok);
    assert.equal(b.tokensRemaining, 300);
    rl.settle("s", lim, 200, a.windowSec); // used 400 in fact
    assert.equal(take(lim, 200).ok, false);
    const c = take(lim, 100);
    assert.ok(c.ok);
    assert.equal(c.tokensRemaining, 0);
    // The adjusted count leaves with its own second: second 0 held 400, so 400 tokens fit at second 61.
    at(61_000);
    assert.equal(take(lim, 401).ok, false);
    assert.ok(take(lim, 400).ok);
  });

  test("settle: ignored once its second has left the window, and never below zero", () => {
    fresh();
    const lim = { tpm: 1000 };
    at(0);
    const a = take(lim, 1000);
    at(61_000);
    const b = take(lim, 1000);
    assert.ok(b.ok);
    rl.settle("s", lim, -1000, a.windowSec);
    rl.settle("s", lim, 500, a.windowSec);
    assert.equal(take(lim, 1).ok, false, "a settle for a second out of the window changes nothing");
    rl.settle("s", lim, -5000, b.windowSec);
    assert.ok(take(lim, 1000).ok);
    assert.equal(take(lim, 1).ok, false, "an oversized refund empties its second, no more");
    // Without windowSec the current second is adjusted (callers that predate windowSec).
    rl.settle("s", lim, -1);
    assert.ok(take(lim, 1).ok);
  });

  test("a reservation larger than tpm is refused as tooLarge and takes nothing", () => {
    fresh();
    const lim = { rpm: 1, tpm: 100, maxConcurrent: 1 };
    at(0);
    const big = take(lim, 101);
    assert.equal(big.ok, false);
    assert.equal(big.limit, "tpm");
    assert.equal(big.tooLarge, true);
    assert.equal(big.tokensRemaining, 100);
    assert.equal(big.requestsRemaining, 1);
    const fits = take(lim, 100);
    assert.ok(fits.ok);
    assert.equal(fits.tooLarge, undefined);
    // Checked before rpm: no wait would ever admit it, so the answer must not suggest one.
    assert.equal(take(lim, 101).tooLarge, true);
    assert.equal(take(lim, 1).limit, "rpm");
  });

  test("headers: remaining is the limit minus the window's sum; reset is when the next one fits", () => {
    fresh();
    const lim = { rpm: 3, tpm: 100 };
    at(250);
    const a = take(lim, 40);
    assert.deepEqual([a.requestsRemaining, a.tokensRemaining, a.requestsResetMs, a.tokensResetMs], [2, 60, 0, 0]);
    at(5_500);
    const b = take(lim, 40);
    // Another 40 needs 20 more tokens: second 0 (40) leaves at 61 s.
    assert.deepEqual([b.requestsRemaining, b.tokensRemaining, b.requestsResetMs, b.tokensResetMs], [1, 20, 0, 61_000 - 5_500]);
    at(6_000);
    const c = take(lim, 10);
    assert.deepEqual([c.requestsRemaining, c.tokensRemaining, c.requestsResetMs, c.tokensResetMs], [0, 10, 61_000 - 6_000, 0]);
    const d = take(lim, 10);
    assert.equal(d.ok, false);
    assert.equal(d.limit, "rpm");
    assert.equal(d.retryAfterS, 55);
  });

  test("maxConcurrent leases are unchanged: counted, refused for 1 s, returned by release", async () => {
    fresh();
    const lim = { maxConcurrent: 1 };
    at(0);
    assert.ok(take(lim).ok);
    const r = take(lim);
    assert.deepEqual([r.ok, r.limit, r.retryAfterS], [false, "maxConcurrent", 1]);
    await rl.release("s", lim);
    assert.ok(take(lim).ok);
  });
});
