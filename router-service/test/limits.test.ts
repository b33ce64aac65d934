// Per-key and per-deployment limits with the in-process store (the embedded default).
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { hashApiKey } from "../src/auth.js";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { MemoryRateLimiter } from "../src/ratelimit/memory.js";
import { chat, deployment, snapshot } from "./helpers/fixtures.js";

const K_TPM = "tuna_sk_tpm";
const K_CONC = "tuna_sk_conc";
const K_SMALL = "tuna_sk_small";

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
    slow = await startSimulator({ model: ["slow-model", "capped-model", "rpm-model"], ttftMs: 300 });
    const snap = snapshot([
      deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_slow", slug: "slow", models: ["slow-model"], svlUrl: slow.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_cap", slug: "capped", models: ["capped-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { maxInflight: 1 } }),
      deployment({ id: "dep_rpm", slug: "rpmd", models: ["rpm-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { rpm: 2 } }),
    ]);
    snap.apiKeys.push(
      { id: "k_tpm", hash: hashApiKey(K_TPM), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 1000, maxConcurrent: 10 } },
      { id: "k_conc", hash: hashApiKey(K_CONC), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 1000000, maxConcurrent: 2 } },
      { id: "k_small", hash: hashApiKey(K_SMALL), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 100, maxConcurrent: 10 } },
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
    const remaining = Number(b.headers["x-ratelimit-remaining-tokens"]);
    // After settlement the bucket holds ~1000 - 19 (first) - 259 (second's reservation), plus refill.
    assert.ok(remaining >= 1000 - 19 - 259 && remaining <= 1000 - 19 - 259 + 5, `settled: ${remaining}`);
  });

  test("TPM settles on streams too (router asks upstream for usage)", async () => {
    await new Promise((r) => setTimeout(r, 1200)); // let the bucket refill a bit (1000 tpm ≈ 17/s)
    const before = await chat(router.url, K_TPM, { max_tokens: 1 });
    const base = Number(before.headers["x-ratelimit-remaining-tokens"]);
    const text = await streamUsage(router.url, K_TPM, {});
    assert.ok(text.includes("[DONE]"));
    assert.ok(!text.includes('"usage"'), "client did not ask for usage, so it does not see it");
    await new Promise((r) => setTimeout(r, 20));
    const after = await chat(router.url, K_TPM, { max_tokens: 1 });
    const rem = Number(after.headers["x-ratelimit-remaining-tokens"]);
    // stream: 3+16 = 19 tokens charged (not 259); this request reserves 4.
    assert.ok(rem >= base - 19 - 4 - 1 && rem <= base - 19 - 4 + 5, `${base} → ${rem}`);
  });

  test("TPM rejection names the limit", async () => {
    const r = await chat(router.url, K_SMALL, { max_tokens: 500 });
    assert.equal(r.status, 429);
    assert.equal(r.json().error.type, "tokens");
    assert.match(r.json().error.message, /tpm/);
    assert.ok(Number(r.headers["retry-after"]) >= 1);
  });

  test("maxConcurrent per key, and the lease returns after the response", async () => {
    const rs = await Promise.all(Array.from({ length: 4 }, () => chat(router.url, K_CONC, { model: "slow-model" })));
    assert.equal(rs.filter((r) => r.status === 200).length, 2);
    const refused = rs.filter((r) => r.status === 429);
    assert.equal(refused.length, 2);
    assert.match(refused[0].json().error.message, /maxConcurrent/);
    assert.equal((await chat(router.url, K_CONC, { model: "slow-model" })).status, 200);
  });

  test("per-deployment caps: in-flight and rpm", async () => {
    const rs = await Promise.all(Array.from({ length: 2 }, () => chat(router.url, K_CONC, { model: "capped-model" })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 503]);
    const rpm = [];
    for (let i = 0; i < 3; i++) rpm.push(await chat(router.url, K_CONC, { model: "rpm-model" }));
    assert.deepEqual(rpm.map((r) => r.status), [200, 200, 429]);
    assert.match(rpm[2].json().error.message, /deployment rpm/);
  });

  test("token bucket arithmetic: burst = limit, then the configured rate", async () => {
    let now = 0;
    const rl = new MemoryRateLimiter(() => now);
    const lim = { rpm: 60 };
    for (let i = 0; i < 60; i++) assert.ok((await rl.acquire("s", lim, 0, "l")).ok);
    const denied = await rl.acquire("s", lim, 0, "l");
    assert.equal(denied.ok, false);
    assert.equal(denied.limit, "rpm");
    assert.equal(denied.retryAfterS, 1);
    now += 1000; // 60 rpm = one per second
    assert.ok((await rl.acquire("s", lim, 0, "l")).ok);
    assert.equal((await rl.acquire("s", lim, 0, "l")).ok, false);
    await rl.close();
  });
});
