// Shared limits across router processes on one real Redis, and fail-open / fail-closed when it is gone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { hashApiKey } from "../src/auth.js";
import { type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { createLogger } from "../src/log.js";
import { Counter } from "../src/metrics.js";
import { MemoryRateLimiter } from "../src/ratelimit/memory.js";
import { RedisRateLimiter } from "../src/ratelimit/redis.js";
import type { AcquireResult, LimitSpec } from "../src/ratelimit/types.js";
import { chat, deployment, freePort, KEY, request, type Resp, type Spawned, seeded, sleep, snapshot, spawnTs, waitFor } from "./helpers/fixtures.js";
import { type RedisProc, startRedis, startRedisCluster } from "./helpers/redis.js";

const K_RPM = "tuna_sk_rpm_shared";
const K_TPM = "tuna_sk_tpm_shared";
const RPM = 600;
const CAP = 4;
const TPM = 6000;

/**
 * Drives `workers` concurrent request loops round-robin over the routers for at least `durationMs` and at
 * least `minRequests` requests (on a loaded machine 3 s may not be enough to exceed the limit), 30 s at most,
 * and stops early once a response satisfies `stopWhen`.
 */
async function drive(
  urls: string[],
  key: string,
  workers: number,
  durationMs: number,
  body: () => Record<string, unknown>,
  minRequests = 0,
  stopWhen: (r: Resp) => boolean = () => false,
) {
  const results: Array<Resp & { via: string }> = [];
  const start = performance.now();
  let i = 0;
  let stopped = false;
  const more = () => {
    const t = performance.now() - start;
    return !stopped && t < 30_000 && (t < durationMs || i < minRequests);
  };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (more()) {
        const url = urls[i++ % urls.length];
        const r = await chat(url, key, body());
        results.push({ ...r, via: url });
        if (stopWhen(r)) stopped = true;
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

  test("per-key RPM: admitted requests within 1% of the limit under concurrent load", async (t) => {
    const urls = routers.map((r) => `http://127.0.0.1:${r.port}`);
    const { results, elapsedS } = await drive(urls, K_RPM, 24, 3000, () => ({ max_tokens: 1 }), 2 * RPM);
    const admitted = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429).length;
    assert.equal(admitted + limited, results.length, "only 200 or 429");
    t.diagnostic(`rpm: admitted ${admitted}, refused ${limited} over ${elapsedS.toFixed(2)} s (limit ${RPM})`);
    // Sliding window: any 60 s holds at most RPM admissions, and the whole run is shorter than 60 s.
    assert.ok(elapsedS < 60, `the run fits in one window: ${elapsedS} s`);
    assert.ok(limited > 0, "the load exceeded the limit");
    assert.ok(admitted <= RPM * 1.01, `admitted ${admitted} > ${RPM} + 1%`);
    assert.ok(admitted >= RPM * 0.99, `the limit is usable: admitted ${admitted} < ${RPM} - 1%`);
    // Every router admitted some: the state really is shared, not per-process.
    assert.ok(urls.every((u) => results.some((r) => r.via === u && r.status === 200)));
    assert.ok(urls.every((u) => results.some((r) => r.via === u && r.status === 429)));
  });

  test("per-key TPM (reserve then settle): tokens used within 1% of the limit under concurrent load", async (t) => {
    const urls = routers.map((r) => `http://127.0.0.1:${r.port}`);
    let n = 0;
    // Mixed: some requests name max_tokens (reserve = actual), others do not (reserve 256, actual 16).
    const mixed = await drive(urls, K_TPM, 24, 3000, () => (n++ % 2 ? { max_tokens: 20 } : { max_tokens: undefined }), 2 * (TPM / 18));
    assert.ok(mixed.results.some((r) => r.status === 429 && r.json().error.type === "tokens"), "the load exceeded the limit");
    // The reservations still held when the load stopped are refunded as those responses end, and nothing
    // refills within a minute: fill that room with exact reservations (23 = 23 used) until one no longer fits.
    await sleep(200);
    const fill = await drive(urls, K_TPM, 6, 30_000, () => ({ max_tokens: 20 }), 0, (r) => r.status === 429);
    const results = [...mixed.results, ...fill.results];
    const ok = results.filter((r) => r.status === 200);
    const used = ok.reduce((s, r) => s + r.json().usage.total_tokens, 0);
    const elapsedS = mixed.elapsedS + 0.2 + fill.elapsedS;
    t.diagnostic(`tpm: ${ok.length} admitted (${fill.results.length} filling) using ${used} tokens over ${elapsedS.toFixed(2)} s (limit ${TPM})`);
    assert.ok(elapsedS < 60, `the run fits in one window: ${elapsedS} s`);
    assert.ok(used <= TPM * 1.01, `used ${used} > ${TPM} + 1%`);
    // Settlement returns unused reservations to the window, so the limit is usable, not just safe.
    assert.ok(used >= TPM * 0.99, `settled reservations are reusable: used ${used} < ${TPM} - 1%`);
  });
});

/** Where one admission was booked, in each store's timeline (they drift apart by the travelled seconds). */
interface Booking {
  mem?: number;
  redis?: number;
  shiftS: number;
}

/**
 * Runs every step on the Redis store and on the in-process store, whose clock is pinned to Redis TIME, and
 * asserts that both decide alike. `travel` moves both forward by whole seconds without waiting: the in-process
 * clock jumps, and the Redis window's seconds are renamed back by as much.
 */
class Twin {
  private nowMs = 0;
  private shiftS = 0;
  private subjects = new Set<string>();
  readonly mem = new MemoryRateLimiter(() => this.nowMs + this.shiftS * 1000);
  constructor(
    private redis: RedisRateLimiter,
    private admin: Redis,
  ) {}

  // The script reads TIME a moment after this read: keep clear of a second's end so both see the same second.
  private async pin(): Promise<void> {
    for (;;) {
      const [s, us] = await this.admin.time();
      const ms = Number(s) * 1000 + Math.floor(Number(us) / 1000);
      if (ms % 1000 < 900) {
        this.nowMs = ms;
        return;
      }
      await sleep(1005 - (ms % 1000));
    }
  }

  async acquire(subject: string, limits: LimitSpec, tokens: number, lease: string): Promise<{ r: AcquireResult; b: Booking }> {
    this.subjects.add(subject);
    await this.pin();
    const fromRedis = await this.redis.acquire(subject, limits, tokens, lease);
    const fromMem = this.mem.acquireSync(subject, limits, tokens, lease);
    const step = `acquire ${subject} ${tokens} at +${this.shiftS} s`;
    const exact = (r: AcquireResult, shift: number) => ({
      ...r,
      windowSec: r.windowSec === undefined ? undefined : r.windowSec - shift,
      requestsResetMs: r.requestsResetMs === undefined ? undefined : r.requestsResetMs > 0,
      tokensResetMs: r.tokensResetMs === undefined ? undefined : r.tokensResetMs > 0,
    });
    assert.deepEqual(exact(fromRedis, 0), exact(fromMem, this.shiftS), step);
    // Reset times differ only by the few ms between the two clock reads.
    assert.ok(Math.abs((fromRedis.requestsResetMs ?? 0) - (fromMem.requestsResetMs ?? 0)) <= 100, step);
    assert.ok(Math.abs((fromRedis.tokensResetMs ?? 0) - (fromMem.tokensResetMs ?? 0)) <= 100, step);
    return { r: fromMem, b: { mem: fromMem.windowSec, redis: fromRedis.windowSec, shiftS: this.shiftS } };
  }

  async settle(subject: string, limits: LimitSpec, delta: number, b?: Booking): Promise<void> {
    await this.pin();
    await this.redis.settle(subject, limits, delta, b?.redis === undefined ? undefined : b.redis - (this.shiftS - b.shiftS));
    await this.mem.settle(subject, limits, delta, b?.mem);
  }

  async release(subject: string, limits: LimitSpec, lease: string): Promise<void> {
    await this.redis.release(subject, limits, lease);
    await this.mem.release(subject, limits);
  }

  async travel(seconds: number): Promise<void> {
    for (const subject of this.subjects) {
      const key = `tuna:{rl:${subject}}:b`;
      const h = await this.admin.hgetall(key);
      if (!h.at) continue;
      const moved: Record<string, string> = {};
      for (const [f, v] of Object.entries(h)) moved[/^[rt]\d+$/.test(f) ? `${f[0]}${Number(f.slice(1)) - seconds}` : f] = v;
      moved.at = String(Number(h.at) - seconds);
      await this.admin.multi().del(key).hset(key, moved).pexpire(key, 62_000).exec();
    }
    this.shiftS += seconds;
  }
}

describe("Redis store decides as the in-process store", () => {
  let redis: RedisProc;
  let store: RedisRateLimiter;
  let admin: Redis;
  let twin: Twin;
  before(async () => {
    redis = await startRedis();
    store = new RedisRateLimiter({ url: redis.url, failMode: "closed", logger: createLogger("silent"), errors: new Counter("errors", "test", ["outcome"]) });
    assert.ok(await store.ready(5000));
    admin = new Redis(redis.url);
  });
  after(async () => {
    await store.close();
    admin.disconnect();
    await redis.stop();
  });

  test("a scripted sequence: fill, refusals of each kind, settle in and out of the window, expiry", async () => {
    twin = new Twin(store, admin);
    const S = "key:scripted";
    const lim = { rpm: 5, tpm: 100, maxConcurrent: 3 };
    const a1 = await twin.acquire(S, lim, 30, "a1");
    const a2 = await twin.acquire(S, lim, 30, "a2");
    await twin.acquire(S, lim, 30, "a3");
    assert.equal((await twin.acquire(S, lim, 5, "x")).r.limit, "maxConcurrent");
    await twin.release(S, lim, "a1");
    assert.equal((await twin.acquire(S, lim, 50, "x")).r.limit, "tpm");
    assert.equal((await twin.acquire(S, lim, 101, "x")).r.tooLarge, true);
    await twin.settle(S, lim, -25, a2.b);
    assert.ok((await twin.acquire(S, lim, 30, "a4")).r.ok);
    for (const l of ["a2", "a3", "a4"]) await twin.release(S, lim, l);
    await twin.travel(1);
    assert.ok((await twin.acquire(S, lim, 5, "a5")).r.ok);
    assert.equal((await twin.acquire(S, lim, 0, "x")).r.limit, "rpm");
    await twin.travel(59);
    assert.equal((await twin.acquire(S, lim, 0, "x")).r.limit, "rpm", "the first second is still in the window");
    await twin.settle(S, lim, -20, a2.b);
    assert.equal((await twin.acquire(S, lim, 0, "x")).r.tokensRemaining, 20, "a settle on the oldest second applies");
    await twin.travel(1);
    const after = await twin.acquire(S, lim, 40, "a6");
    assert.deepEqual([after.r.ok, after.r.requestsRemaining, after.r.tokensRemaining], [true, 3, 55]);
    await twin.settle(S, lim, -30, a1.b);
    assert.equal((await twin.acquire(S, lim, 60, "x")).r.limit, "tpm", "a settle out of the window changed nothing");
    await twin.travel(61);
    assert.equal((await twin.acquire(S, lim, 100, "a7")).r.tokensRemaining, 0);
    // A window idle for exactly 60 s still holds its newest second; one more second clears it.
    const T = "key:idle";
    assert.ok((await twin.acquire(T, { rpm: 1 }, 0, "x")).r.ok);
    await twin.travel(60);
    assert.equal((await twin.acquire(T, { rpm: 1 }, 0, "x")).r.ok, false);
    await twin.travel(1);
    assert.ok((await twin.acquire(T, { rpm: 1 }, 0, "x")).r.ok);
    await twin.mem.close();
  });

  test("a random sequence (seeded) over two subjects and a few minutes of travel", async () => {
    twin = new Twin(store, admin);
    const rand = seeded(7);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    const subjects: Array<[string, LimitSpec]> = [
      ["key:random", { rpm: 8, tpm: 200, maxConcurrent: 4 }],
      ["dep:random", { rpm: 3, tpm: 50 }],
    ];
    const booked: Array<{ subject: string; limits: LimitSpec; lease: string; b: Booking }> = [];
    const held: typeof booked = [];
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const x = rand();
      if (x < 0.5) {
        const [subject, limits] = pick(subjects);
        const tokens = rand() < 0.05 ? 250 : Math.floor(rand() * 60);
        const { r, b } = await twin.acquire(subject, limits, tokens, `l${i}`);
        seen.add(r.ok ? "ok" : r.tooLarge ? "tooLarge" : (r.limit ?? ""));
        if (r.ok) {
          booked.push({ subject, limits, lease: `l${i}`, b });
          held.push(booked[booked.length - 1]);
        }
      } else if (x < 0.65 && booked.length) {
        const { subject, limits, b } = pick(booked);
        await twin.settle(subject, limits, Math.floor(rand() * 81) - 40, rand() < 0.2 ? undefined : b);
      } else if (x < 0.8 && held.length) {
        // Once per lease, as the router does: the in-process store counts leases rather than naming them.
        const { subject, limits, lease } = held.splice(Math.floor(rand() * held.length), 1)[0];
        await twin.release(subject, limits, lease);
      } else {
        const y = rand();
        await twin.travel(y < 0.7 ? 1 + Math.floor(rand() * 5) : y < 0.9 ? 20 + Math.floor(rand() * 40) : 61 + Math.floor(rand() * 10));
      }
    }
    assert.deepEqual([...seen].sort(), ["maxConcurrent", "ok", "rpm", "tooLarge", "tpm"], "every kind of decision was compared");
    await twin.mem.close();
  });
});

describe("Redis slow", () => {
  /**
   * Blocks the Redis server for `s` seconds (DEBUG SLEEP), as a stalled or overloaded instance would be. Sent on an
   * open connection and resolved once written, so the stall has begun when the test goes on (spawning redis-cli
   * for it took longer than the test's 20 ms on a loaded CI box, and the check then ran before the stall).
   */
  const stall = async (port: number, s: number) => {
    const sock = connect(port, "127.0.0.1");
    sock.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    sock.on("data", () => sock.destroy()); // +OK comes when the sleep ends
    await new Promise<void>((resolve) => sock.write(`DEBUG SLEEP ${s}\r\n`, () => resolve()));
  };
  const ONE = "tuna_sk_one_at_a_time";

  test("a client leaving during the limit check, or a check timing out (fail-closed), gives back what it took and sends nothing upstream", async () => {
    const redis = await startRedis(["--enable-debug-command", "yes"]);
    const sim = await startSimulator({ model: "qwen-small" });
    const snap = snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" }, limits: { maxInflight: 100 } })]);
    snap.apiKeys.push({ id: "k1", hash: hashApiKey(ONE), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 1000000, maxConcurrent: 1 } });
    const router = await startRouter({ config: snap, logLevel: "silent", redisUrl: redis.url, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rslow-${process.pid}` });
    const dep = () => router.store.current?.deployments.get("dep_1");
    try {
      assert.equal((await chat(router.url, ONE)).status, 200);
      // 1. The check waits 200 ms on Redis (below the 250 ms command timeout); the client hangs up after 50 ms.
      await stall(redis.port, 0.2);
      await sleep(20);
      const s = connect(router.port, "127.0.0.1", () => {
        const body = JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ONE}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        setTimeout(() => s.resetAndDestroy(), 50);
      });
      s.on("error", () => undefined);
      await sleep(400);
      assert.equal(sim.stats().requests, 1, "the abandoned request never reached the backend");
      assert.equal(dep()?.inflight.n, 0);
      assert.equal((await chat(router.url, ONE)).status, 200, "the key's only concurrency slot came back");
      // 2. Redis stalls past the command timeout: fail-closed answers 503; the check that runs late gives its lease back.
      await stall(redis.port, 0.5);
      await sleep(20);
      assert.equal((await chat(router.url, ONE)).status, 503);
      await sleep(700);
      assert.equal((await chat(router.url, ONE)).status, 200, "no lease left behind by the timed-out check");
    } finally {
      await router.close();
      await sim.close();
      await redis.stop();
    }
  });
});

describe("Redis reconnect", () => {
  const ONE = "tuna_sk_one_slot";
  const cli = (port: number, ...args: string[]) => spawnSync("/usr/bin/redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).stdout.trim();

  test("a lease release lost while the connection to Redis is down is replayed once it is back", async () => {
    const redis = await startRedis();
    // A backend that holds requests sent with user "hold" until the test answers them.
    const held: Array<() => void> = [];
    const up = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const b = JSON.stringify({ id: "x", object: "chat.completion", created: 0, model: "qwen-small", choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
        const answer = () => res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(b) }).end(b);
        if (req.method === "POST" && JSON.parse(body).user === "hold") held.push(answer);
        else answer();
      });
    });
    await new Promise<void>((r) => up.listen(0, "127.0.0.1", r));
    const upUrl = `http://127.0.0.1:${(up.address() as { port: number }).port}`;
    const snap = snapshot([deployment({ svlUrl: upUrl, routing: { policy: "serverless-only" } })]);
    snap.apiKeys.push({ id: "k_one", hash: hashApiKey(ONE), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: null, maxConcurrent: 1 } });
    const router = await startRouter({ config: snap, logLevel: "silent", redisUrl: redis.url, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rrec-${process.pid}` });
    try {
      const first = chat(router.url, ONE, { user: "hold" });
      await waitFor(() => held.length === 1, 2000);
      // The router's connection is cut; ioredis reconnects after ~100 ms. The request ends in that gap, so its
      // release cannot reach Redis.
      cli(redis.port, "client", "kill", "type", "normal");
      held[0]();
      assert.equal((await first).status, 200);
      assert.equal(router.metrics.limiterErrors.get({ outcome: "release_failed" }), 1);
      // Redis is reachable again within ~100 ms; the lease must not wait for its 15 min TTL.
      await waitFor(() => cli(redis.port, "zcard", "tuna:{rl:key:k_one}:c") === "0", 3000).catch(() => undefined);
      const next = await chat(router.url, ONE);
      assert.equal(next.status, 200, `the key's only slot came back: ${next.body}`);
      assert.equal(router.metrics.limiterErrors.get({ outcome: "release_replayed" }), 1);
    } finally {
      await router.close();
      await new Promise((r) => up.close(r));
      await redis.stop();
    }
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
  test("a client leaving during the deployment check gets the key's TPM reservation back too", async () => {
    const cluster = await startRedisCluster();
    const sim = await startSimulator({ model: "qwen-small" });
    const KEYX = "tuna_sk_dep_abort";
    const snap = snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" }, limits: { maxInflight: 100 } })]);
    snap.apiKeys.push({ id: "k_abort", hash: hashApiKey(KEYX), teamId: "team_1", deployments: "*", limits: { rpm: 1000, tpm: 10_000, maxConcurrent: 10 } });
    const router = await startRouter({ config: snap, logLevel: "silent", redisUrl: cluster.url, rateLimitFailMode: "closed", stateDir: `/tmp/tuna-rt-rc-abort-${process.pid}` });
    const cli = (port: number, ...args: string[]) => spawnSync("/usr/bin/redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).stdout.trim();
    /** The master serving a key's slot, from each node's own slot ranges in CLUSTER NODES. */
    const owner = (key: string) => {
      const slot = Number(cli(cluster.nodes[0].port, "cluster", "keyslot", key));
      return cluster.nodes.find((n) => {
        const me = cli(n.port, "cluster", "nodes").split("\n").find((l) => l.includes("myself"));
        return me?.split(" ").slice(8).some((range) => {
          const [a, b] = range.split("-").map(Number);
          return slot >= a && slot <= (b ?? a);
        });
      });
    };
    try {
      const keyNode = owner("tuna:{rl:key:k_abort}:b");
      const depNode = owner("tuna:{rl:dep:dep_1}:b");
      assert.ok(keyNode && depNode && keyNode !== depNode, "the key's and the deployment's subjects live on different nodes");
      assert.equal((await chat(router.url, KEYX, { max_tokens: 1 })).status, 200);
      // Only the deployment's node stalls (200 ms, under the 250 ms command timeout): the key check passes at
      // once, the client hangs up 50 ms into the deployment check.
      cli(depNode.port, "client", "pause", "200", "ALL");
      const s = connect(router.port, "127.0.0.1", () => {
        const body = JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 6000 });
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEYX}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        setTimeout(() => s.resetAndDestroy(), 50);
      });
      s.on("error", () => undefined);
      await sleep(500);
      assert.equal(sim.stats().requests, 1, "the abandoned request never reached the backend");
      // 1 + 6000 were reserved; 3 + 5000 fit in tpm 10 000 only if they were given back.
      const r = await chat(router.url, KEYX, { max_tokens: 5000 });
      assert.equal(r.status, 200, r.body);
    } finally {
      await router.close();
      await sim.close();
      await cluster.stop();
    }
  });

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
