// Shared limits across router processes on one real Redis, and fail-open / fail-closed when it is gone.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { hashApiKey } from "../src/auth.js";
import { type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, freePort, KEY, request, type Resp, type Spawned, snapshot, spawnTs } from "./helpers/fixtures.js";
import { type RedisProc, startRedis, startRedisCluster } from "./helpers/redis.js";

const K_RPM = "tuna_sk_rpm_shared";
const K_TPM = "tuna_sk_tpm_shared";
const RPM = 600;
const CAP = 4;
const TPM = 6000;

/**
 * Drives `workers` concurrent request loops round-robin over the routers for at least `durationMs` and at
 * least `minRequests` requests (on a loaded machine 3 s may not be enough to exceed the burst), 30 s at most.
 */
async function drive(urls: string[], key: string, workers: number, durationMs: number, body: () => Record<string, unknown>, minRequests = 0) {
  const results: Array<Resp & { via: string }> = [];
  const start = performance.now();
  let i = 0;
  const more = () => {
    const t = performance.now() - start;
    return t < 30_000 && (t < durationMs || i < minRequests);
  };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (more()) {
        const url = urls[i++ % urls.length];
        results.push({ ...(await chat(url, key, body())), via: url });
      }
    }),
  );
  return { results, elapsedS: (performance.now() - start) / 1000 };
}

describe("Redis-backed limits across 3 router processes", () => {
  let redis: RedisProc;
  let sim: SimulatorHandle;
  let slow: SimulatorHandle;
  const routers: Spawned[] = [];

  before(async () => {
    redis = await startRedis();
    sim = await startSimulator({ model: "qwen-small", defaultMaxTokens: 16 });
    slow = await startSimulator({ model: "capped-model", ttftMs: 1500 });
    const snap = snapshot([
      deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_cap", slug: "capped", models: ["capped-model"], svlUrl: slow.url, routing: { policy: "serverless-only" }, limits: { maxInflight: CAP } }),
    ]);
    snap.apiKeys.push(
      { id: "k_rpm", hash: hashApiKey(K_RPM), teamId: "team_1", deployments: "*", limits: { rpm: RPM, tpm: null, maxConcurrent: null } },
      { id: "k_tpm", hash: hashApiKey(K_TPM), teamId: "team_1", deployments: "*", limits: { rpm: null, tpm: TPM, maxConcurrent: 50 } },
    );
    const file = `/tmp/tuna-rt-redis-${process.pid}.json`;
    writeFileSync(file, JSON.stringify(snap));
    for (let n = 0; n < 3; n++)
      routers.push(
        await spawnTs("router-service/src/main.ts", ["--config", file, "--port", "0", "--host", "127.0.0.1", "--state-dir", `/tmp/tuna-rt-redis-${process.pid}-${n}`], { REDIS_URL: redis.url }),
      );
  });
  after(async () => {
    await Promise.all(routers.map((r) => r.stop("SIGKILL")));
    await sim.close();
    await slow.close();
    await redis.stop();
  });

  test("a deployment's in-flight cap holds across all routers, and its leases come back", async () => {
    const urls = routers.map((r) => `http://127.0.0.1:${r.port}`);
    // 4 per router: 12 in flight at once against a cap of 4 for the whole fleet (the old per-router count let 12 in).
    const burst = () => Promise.all(Array.from({ length: 12 }, (_, i) => chat(urls[i % 3], KEY, { model: "capped-model", max_tokens: 2 })));
    const first = await burst();
    const ok = first.filter((r) => r.status === 200).length;
    const refused = first.filter((r) => r.status === 503);
    assert.equal(ok, CAP, `exactly the cap was admitted: ${first.map((r) => r.status).join(",")}`);
    assert.equal(refused.length, 12 - CAP);
    assert.ok(refused.every((r) => r.json().error.code === "overloaded" && r.headers["retry-after"]));
    // Every lease was released when those requests ended: the next burst gets the full cap again. (A router
    // releases after its response is flushed, asynchronously to Redis, so give the last releases a moment.)
    await new Promise((r) => setTimeout(r, 500));
    const second = await burst();
    assert.equal(second.filter((r) => r.status === 200).length, CAP);
  });

  test("per-key RPM holds within 1% under concurrent load", async (t) => {
    const urls = routers.map((r) => `http://127.0.0.1:${r.port}`);
    const { results, elapsedS } = await drive(urls, K_RPM, 24, 3000, () => ({ max_tokens: 1 }), 2 * RPM);
    const admitted = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429).length;
    assert.equal(admitted + limited, results.length, "only 200 or 429");
    // Token bucket: a full burst of RPM, then RPM/60 per second.
    const allowed = RPM + (RPM / 60) * elapsedS;
    t.diagnostic(`rpm: admitted ${admitted}, refused ${limited}, allowed ${allowed.toFixed(1)} over ${elapsedS.toFixed(2)} s`);
    assert.ok(limited > 0, "the load exceeded the limit");
    assert.ok(admitted <= allowed * 1.01, `admitted ${admitted} > ${allowed.toFixed(1)} + 1%`);
    assert.ok(admitted >= RPM, `the burst is usable: ${admitted}`);
    // Every router admitted some: the state really is shared, not per-process.
    assert.ok(urls.every((u) => results.some((r) => r.via === u && r.status === 200)));
    assert.ok(urls.every((u) => results.some((r) => r.via === u && r.status === 429)));
  });

  test("per-key TPM (reserve then settle) holds within 1% under concurrent load", async (t) => {
    const urls = routers.map((r) => `http://127.0.0.1:${r.port}`);
    let n = 0;
    // Mixed: some requests name max_tokens (reserve = actual), others do not (reserve 256, actual 16).
    const { results, elapsedS } = await drive(urls, K_TPM, 24, 3000, () => (n++ % 2 ? { max_tokens: 20 } : { max_tokens: undefined }), 2 * (TPM / 18));
    const ok = results.filter((r) => r.status === 200);
    const used = ok.reduce((s, r) => s + r.json().usage.total_tokens, 0);
    const allowed = TPM + (TPM / 60) * elapsedS;
    t.diagnostic(`tpm: ${ok.length} admitted using ${used} tokens, allowed ${allowed.toFixed(0)} over ${elapsedS.toFixed(2)} s`);
    assert.ok(results.some((r) => r.status === 429 && r.json().error.type === "tokens"));
    assert.ok(used <= allowed * 1.01, `used ${used} > ${allowed.toFixed(0)} + 1%`);
    // Settlement returns unused reservations, so far more than TPM/259 requests fit.
    assert.ok(used >= TPM * 0.9, `settled reservations are reusable: used ${used}`);
  });
});

describe("Redis unreachable", () => {
  test("fail-open serves and counts; fail-closed refuses with 503", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const deadPort = await freePort();
    const snap = snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]);
    const open = await startRouter({ config: snap, logLevel: "silent", redisUrl: `redis://127.0.0.1:${deadPort}`, redisConnectTimeoutMs: 200, rateLimitFailMode: "open", stateDir: `/tmp/tuna-rt-rfo-${process.pid}` });
    const closed = await startRouter({ config: snap, logLevel: "silent", redisUrl: `redis://127.0.0.1:${deadPort}`, redisConnectTimeoutMs: 200, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rfc-${process.pid}` });
    try {
      assert.equal((await chat(open.url, "tuna_sk_test_alpha")).status, 200);
      const m = (await request(`${open.url}/metrics`)).body;
      assert.match(m, /tuna_router_ratelimit_backend_errors_total\{outcome="fail_open"\} [1-9]/);
      const r = await chat(closed.url, "tuna_sk_test_alpha");
      assert.equal(r.status, 503);
      assert.equal(r.json().error.code, "rate_limiter_unavailable");
      assert.equal(sim.stats().requests, 1);
    } finally {
      await open.close();
      await closed.close();
      await sim.close();
    }
  });
});

describe("Redis Cluster", () => {
  test("limits work on a real 3-master cluster (hash-tagged keys, no CROSSSLOT)", async () => {
    const cluster = await startRedisCluster();
    const sim = await startSimulator({ model: "qwen-small" });
    const snap = snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]);
    const lim = { rpm: 5, tpm: 100000, maxConcurrent: 3 };
    snap.apiKeys.push({ id: "k_c", hash: hashApiKey(K_RPM), teamId: "team_1", deployments: "*", limits: lim });
    const a = await startRouter({ config: snap, logLevel: "silent", redisUrl: cluster.url, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rc-a-${process.pid}` });
    const b = await startRouter({ config: snap, logLevel: "silent", redisUrl: cluster.url, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rc-b-${process.pid}` });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await chat(i % 2 ? a.url : b.url, K_RPM)).status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "5 rpm shared by two routers");
      assert.equal(a.metrics.limiterErrors.get({ outcome: "fail_closed" }) + b.metrics.limiterErrors.get({ outcome: "fail_closed" }), 0);
    } finally {
      await a.close();
      await b.close();
      await sim.close();
      await cluster.stop();
    }
  });
});
