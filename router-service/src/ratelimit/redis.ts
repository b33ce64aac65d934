// Shared limiter for N routers: one Lua script per check, so the read-expire-decide-write cycle is atomic.
// Keys for a subject share a hash tag, so the script is valid on Redis Cluster too. Time comes from the
// Redis server (TIME), so router clock skew cannot inflate a limit. The arithmetic is the in-process store's
// (memory.ts), step for step, so both stores decide alike.
import { Cluster, Redis } from "ioredis";
import type { Logger } from "../log.js";
import type { Counter } from "../metrics.js";
import { type AcquireResult, has, LEASE_TTL_MS, type LimitName, type LimitSpec, type RateLimiter, toAcquireResult, WINDOW_SLOTS } from "./types.js";

// The window hash holds r<sec> / t<sec> (requests / tokens booked in that second) for seconds at-60..at, the
// newest second 'at' and the sums 'sr' / 'st' over them. Its data matters for at most 61 s after the last
// write, hence the 62 s expiry.
const WINDOW_LIB = `
local WINDOW, SLOTS, HASH_TTL_MS = 60, 61, 62000
local function str(x) return string.format('%.17g', x) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function advance(h, k)
  local v = redis.call('HMGET', h, 'at', 'sr', 'st')
  if not v[1] then return k, 0, 0 end
  local head, sr, st = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  -- A clock that steps back keeps counting into the newest second instead of reopening old ones.
  if k <= head then return head, sr, st end
  if k - head >= SLOTS then
    redis.call('DEL', h)
    return k, 0, 0
  end
  -- Seconds head-60 .. k-61 have left the window: each is dropped once, so a check is O(1) amortized.
  local f = {}
  for s = head - WINDOW, k - SLOTS do
    f[#f + 1] = 'r' .. s
    f[#f + 1] = 't' .. s
  end
  local old = redis.call('HMGET', h, unpack(f))
  for i = 1, #old, 2 do
    sr = sr - (tonumber(old[i]) or 0)
    st = st - (tonumber(old[i + 1]) or 0)
  end
  redis.call('HDEL', h, unpack(f))
  return k, sr, st
end
local function addAt(h, f, delta)
  local old = tonumber(redis.call('HGET', h, f)) or 0
  local new = math.max(0, old + delta)
  redis.call('HSET', h, f, str(new))
  return new - old
end
local function save(h, k, sr, st)
  redis.call('HSET', h, 'at', k, 'sr', str(sr), 'st', str(st))
  redis.call('PEXPIRE', h, HASH_TTL_MS)
end
-- Ms until the oldest seconds have left the window holding at least excess (second s leaves at s+61); when even
-- an empty window cannot fit it (a request too large), when the window is empty.
local function waitMs(h, prefix, k, now, excess)
  if excess <= 0 then return 0 end
  local f = {}
  for s = k - WINDOW, k do f[#f + 1] = prefix .. s end
  local v = redis.call('HMGET', h, unpack(f))
  local freed = 0
  for i = 1, #v do
    freed = freed + (tonumber(v[i]) or 0)
    if freed >= excess then return (k - WINDOW + i - 1 + SLOTS) * 1000 - now end
  end
  return (k + SLOTS) * 1000 - now
end
`;

const ACQUIRE = `${WINDOW_LIB}
local now = clock()
local rpm, tpm, mc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, lease, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local windowed = rpm > 0 or tpm > 0
local k, sr, st = math.floor(now / 1000), 0, 0
if windowed then k, sr, st = advance(KEYS[1], k) end
local cc = 0
if mc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  cc = redis.call('ZCARD', KEYS[2])
end
local hit, big = '', tpm > 0 and tokens > tpm
if big then hit = 'tpm'
elseif rpm > 0 and sr + 1 > rpm then hit = 'rpm'
elseif tpm > 0 and st + tokens > tpm then hit = 'tpm'
elseif mc > 0 and cc >= mc then hit = 'maxConcurrent' end
if hit == '' then
  if windowed then
    sr = sr + addAt(KEYS[1], 'r' .. k, 1)
    st = st + addAt(KEYS[1], 't' .. k, tokens)
  end
  if mc > 0 then
    redis.call('ZADD', KEYS[2], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
local rw, tw = 0, 0
if windowed then
  save(KEYS[1], k, sr, st)
  if rpm > 0 then rw = waitMs(KEYS[1], 'r', k, now, sr + 1 - rpm) end
  if tpm > 0 then tw = waitMs(KEYS[1], 't', k, now, st + tokens - tpm) end
end
return {hit, big and '1' or '', str(k), str(sr), str(st), str(rw), str(tw)}
`;

const SETTLE = `${WINDOW_LIB}
local delta, at = tonumber(ARGV[1]), tonumber(ARGV[2])
local k, sr, st = advance(KEYS[1], math.floor(clock() / 1000))
local s = at or k
if s >= k - WINDOW and s <= k then st = st + addAt(KEYS[1], 't' .. s, delta) end
save(KEYS[1], k, sr, st)
`;

export interface RedisLimiterOptions {
  url: string;
  failMode: "open" | "closed";
  logger: Logger;
  errors: Counter;
  /** Max time a limit check may wait on Redis before it counts as unreachable. */
  commandTimeoutMs?: number;
}

/**
 * A lease release or a settle Redis did not take (connection down or reconnecting), kept to be replayed with its
 * original arguments once Redis is reachable again: a lost release would hold a key's concurrency slot for the
 * whole lease TTL. Releases (ZREM) are idempotent and always replayed; a settle only when it provably never
 * reached Redis (replaying one that may have run would apply it twice).
 */
interface Deferred {
  subject: string;
  /** Set for a release. */
  leaseId?: string;
  delta: number;
  windowSec?: number;
  at: number;
}

/** Bound of the replay queue; beyond it the oldest entry is dropped (counted). */
const MAX_DEFERRED = 10_000;
/** Replay attempt interval while entries wait (Redis' own reconnect also triggers one). */
const REPLAY_MS = 1000;
/** ioredis' rejections of a command it never sent (offline, enableOfflineQueue false; client or node closed). */
const NOT_SENT = /enableOfflineQueue|Connection is closed/;

type Client = Redis | Cluster;
type Cmd = Client & {
  tunaAcquire(k1: string, k2: string, ...args: (string | number)[]): Promise<[string, string, string, string, string, string, string]>;
  tunaSettle(k1: string, ...args: (string | number)[]): Promise<null>;
};

export class RedisRateLimiter implements RateLimiter {
  private redis: Cmd;
  private lastLog = 0;
  private deferred: Deferred[] = [];
  private replayTimer: NodeJS.Timeout | undefined;
  private replaying = false;
  private closed = false;

  constructor(private opts: RedisLimiterOptions) {
    const commandTimeout = opts.commandTimeoutMs ?? 250;
    const cluster = parseClusterUrl(opts.url);
    // Never queue limit checks while disconnected: a check must answer now (fail-open/closed).
    const r: Client = cluster
      ? new Cluster(cluster, {
          enableOfflineQueue: false,
          clusterRetryStrategy: (n) => Math.min(n * 100, 2000),
          redisOptions: { maxRetriesPerRequest: 0, commandTimeout },
        })
      : new Redis(opts.url, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          commandTimeout,
          retryStrategy: (n) => Math.min(n * 100, 2000),
        });
    r.defineCommand("tunaAcquire", { numberOfKeys: 2, lua: ACQUIRE });
    r.defineCommand("tunaSettle", { numberOfKeys: 1, lua: SETTLE });
    r.on("error", (err) => this.logError("redis connection error", err));
    r.on("ready", () => void this.replay());
    this.redis = r as Cmd;
  }

  /** Waits (bounded) for the first connection, so a fresh router does not fail open on its first requests. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.redis.off("ready", onReady);
        resolve(false);
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.redis.once("ready", onReady);
    });
  }

  private logError(msg: string, err: unknown): void {
    // Throttled: a Redis outage must not flood the logs at request rate.
    const t = Date.now();
    if (t - this.lastLog > 5000) {
      this.lastLog = t;
      this.opts.logger.error({ err: String((err as Error)?.message ?? err), failMode: this.opts.failMode }, msg);
    }
  }

  private keys(subject: string): [string, string] {
    return [`tuna:{rl:${subject}}:b`, `tuna:{rl:${subject}}:c`];
  }

  async acquire(subject: string, limits: LimitSpec, tokens: number, leaseId: string): Promise<AcquireResult> {
    const rpm = limits.rpm ?? 0;
    const tpm = limits.tpm ?? 0;
    const mc = limits.maxConcurrent ?? 0;
    if (!has(rpm) && !has(tpm) && !has(mc)) return { ok: true, retryAfterS: 0 };
    try {
      const [k1, k2] = this.keys(subject);
      const [hit, big, sec, sr, st, rw, tw] = await this.redis.tunaAcquire(k1, k2, rpm, tpm, mc, tokens, leaseId, LEASE_TTL_MS);
      return toAcquireResult(limits, {
        limit: (hit || undefined) as LimitName | undefined,
        tooLarge: big === "1",
        sec: Number(sec),
        sumRequests: Number(sr),
        sumTokens: Number(st),
        requestsWaitMs: Number(rw),
        tokensWaitMs: Number(tw),
      });
    } catch (err) {
      this.logError("rate limit check failed", err);
      this.opts.errors.inc({ outcome: this.opts.failMode === "open" ? "fail_open" : "fail_closed" });
      if (this.opts.failMode === "open") return { ok: true, retryAfterS: 0, degraded: true };
      throw new LimiterUnavailableError();
    }
  }

  async settle(subject: string, limits: LimitSpec, deltaTokens: number, windowSec?: number): Promise<void> {
    if (!has(limits.tpm) || deltaTokens === 0) return;
    try {
      await this.redis.tunaSettle(this.keys(subject)[0], deltaTokens, windowSec ?? "");
    } catch (err) {
      this.logError("rate limit settle failed", err);
      this.opts.errors.inc({ outcome: "settle_failed" });
      // Without its second the replay would land in another one; with it, it is pointless once that second left.
      if (windowSec !== undefined && NOT_SENT.test((err as Error)?.message ?? "")) this.defer({ subject, delta: deltaTokens, windowSec, at: Date.now() });
    }
  }

  async release(subject: string, limits: LimitSpec, leaseId: string): Promise<void> {
    if (!has(limits.maxConcurrent)) return;
    try {
      await this.redis.zrem(this.keys(subject)[1], leaseId);
    } catch (err) {
      // Replayed once Redis is back (the lease would otherwise hold the slot for LEASE_TTL_MS).
      this.logError("concurrency release failed; replayed once redis is reachable", err);
      this.opts.errors.inc({ outcome: "release_failed" });
      this.defer({ subject, leaseId, delta: 0, at: Date.now() });
    }
  }

  /** Entries waiting for replay (tests, diagnostics). */
  pendingReplays(): number {
    return this.deferred.length;
  }

  private defer(d: Deferred): void {
    if (this.closed) return;
    if (this.deferred.length >= MAX_DEFERRED) {
      this.deferred.shift();
      this.opts.errors.inc({ outcome: "replay_dropped" });
    }
    this.deferred.push(d);
    this.scheduleReplay();
  }

  private scheduleReplay(): void {
    if (this.replayTimer || this.closed) return;
    this.replayTimer = setTimeout(() => {
      this.replayTimer = undefined;
      void this.replay();
    }, REPLAY_MS);
    this.replayTimer.unref();
  }

  /** Replays the deferred releases and settles, each once; what fails again waits for the next attempt. */
  private async replay(): Promise<void> {
    if (this.replaying || this.deferred.length === 0) return;
    if (this.redis.status !== "ready") return this.scheduleReplay();
    this.replaying = true;
    const batch = this.deferred;
    this.deferred = [];
    const now = Date.now();
    let releases = 0;
    let settles = 0;
    try {
      await Promise.all(
        batch.map(async (d) => {
          const [bucket, leases] = this.keys(d.subject);
          try {
            if (d.leaseId !== undefined) {
              if (now - d.at >= LEASE_TTL_MS) return; // expired on its own
              await this.redis.zrem(leases, d.leaseId);
              releases++;
            } else {
              if (now - d.at >= WINDOW_SLOTS * 1000) return; // its second has left the window
              await this.redis.tunaSettle(bucket, d.delta, d.windowSec ?? "");
              settles++;
            }
          } catch (err) {
            if (d.leaseId !== undefined || NOT_SENT.test((err as Error)?.message ?? "")) this.defer(d);
          }
        }),
      );
    } finally {
      this.replaying = false;
    }
    if (releases) this.opts.errors.inc({ outcome: "release_replayed" }, releases);
    if (settles) this.opts.errors.inc({ outcome: "settle_replayed" }, settles);
    if (releases || settles) this.opts.logger.info({ releases, settles, waiting: this.deferred.length }, "redis reachable again: replayed lost lease releases and settles");
    if (this.deferred.length) this.scheduleReplay();
  }

  async close(): Promise<void> {
    // A lease not given back would hold its slot on every router until it expires: one last try.
    if (this.deferred.length && this.redis.status === "ready") await this.replay().catch(() => undefined);
    this.closed = true;
    clearTimeout(this.replayTimer);
    this.redis.disconnect();
  }
}

/** `redis+cluster://host:port,host:port` → startup nodes of a Redis Cluster; anything else is one node. */
export function parseClusterUrl(url: string): Array<{ host: string; port: number }> | undefined {
  const m = /^redis\+cluster:\/\/(.+)$/.exec(url);
  if (!m) return undefined;
  return m[1].split(",").map((hp) => {
    const [host, port] = hp.trim().replace(/\/.*$/, "").split(":");
    return { host, port: Number(port || 6379) };
  });
}

export class LimiterUnavailableError extends Error {
  constructor() {
    super("rate limiter unavailable");
  }
}
