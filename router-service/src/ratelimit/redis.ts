// Shared limiter for N routers: one Lua script per check, so the read-refill-decide-write cycle is atomic.
// Keys for a subject share a hash tag, so the script is valid on Redis Cluster too. Time comes from the
// Redis server (TIME), so router clock skew cannot inflate a limit.
import { Cluster, Redis } from "ioredis";
import type { Logger } from "../log.js";
import type { Counter } from "../metrics.js";
import { type AcquireResult, has, LEASE_TTL_MS, type LimitSpec, type RateLimiter } from "./types.js";

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, mc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, lease, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local r, tk = rpm, tpm
if h[3] then
  local dt = now - tonumber(h[3])
  if dt < 0 then dt = 0 end
  if rpm > 0 then r = math.min(rpm, tonumber(h[1]) + dt * rpm / 60000) end
  if tpm > 0 then tk = math.min(tpm, tonumber(h[2]) + dt * tpm / 60000) end
end
local cc = 0
if mc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  cc = redis.call('ZCARD', KEYS[2])
end
local hit = ''
if rpm > 0 and r < 1 then hit = 'rpm'
elseif tpm > 0 and tk < tokens then hit = 'tpm'
elseif mc > 0 and cc >= mc then hit = 'maxConcurrent' end
if hit == '' then
  if rpm > 0 then r = r - 1 end
  if tpm > 0 then tk = tk - tokens end
  if mc > 0 then
    redis.call('ZADD', KEYS[2], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
if rpm > 0 or tpm > 0 then
  redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(tk), 'at', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
end
return {hit, tostring(r), tostring(tk)}
`;

const SETTLE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 't', 'at')
local tk = tpm
if h[2] then
  local dt = now - tonumber(h[2])
  if dt < 0 then dt = 0 end
  tk = math.min(tpm, tonumber(h[1]) + dt * tpm / 60000)
  -- Refill the request bucket's timestamp consistently: only 't' changes, so keep 'at' for both
  -- by first bringing 'r' up to date.
  local r = redis.call('HGET', KEYS[1], 'r')
  local rpm = tonumber(ARGV[3])
  if r and rpm > 0 then
    redis.call('HSET', KEYS[1], 'r', tostring(math.min(rpm, tonumber(r) + dt * rpm / 60000)))
  end
end
tk = math.min(tpm, tk - delta)
redis.call('HSET', KEYS[1], 't', tostring(tk), 'at', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return tostring(tk)
`;

export interface RedisLimiterOptions {
  url: string;
  failMode: "open" | "closed";
  logger: Logger;
  errors: Counter;
  /** Max time a limit check may wait on Redis before it counts as unreachable. */
  commandTimeoutMs?: number;
}

type Client = Redis | Cluster;
type Cmd = Client & {
  tunaAcquire(k1: string, k2: string, ...args: (string | number)[]): Promise<[string, string, string]>;
  tunaSettle(k1: string, ...args: (string | number)[]): Promise<string>;
};

export class RedisRateLimiter implements RateLimiter {
  private redis: Cmd;
  private lastLog = 0;

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
      const [hit, rs, ts] = await this.redis.tunaAcquire(k1, k2, rpm, tpm, mc, tokens, leaseId, LEASE_TTL_MS);
      const r = Number(rs);
      const tk = Number(ts);
      let retryAfterMs = 0;
      if (hit === "rpm") retryAfterMs = ((1 - r) * 60_000) / rpm;
      else if (hit === "tpm") retryAfterMs = ((tokens - tk) * 60_000) / tpm;
      else if (hit === "maxConcurrent") retryAfterMs = 1000;
      return {
        ok: hit === "",
        limit: hit === "" ? undefined : (hit as AcquireResult["limit"]),
        retryAfterS: Math.max(1, Math.ceil(retryAfterMs / 1000)),
        requestsRemaining: has(rpm) ? Math.max(0, Math.floor(r)) : undefined,
        tokensRemaining: has(tpm) ? Math.max(0, Math.floor(tk)) : undefined,
        requestsResetMs: has(rpm) ? ((rpm - r) * 60_000) / rpm : undefined,
        tokensResetMs: has(tpm) ? ((tpm - tk) * 60_000) / tpm : undefined,
      };
    } catch (err) {
      this.logError("rate limit check failed", err);
      this.opts.errors.inc({ outcome: this.opts.failMode === "open" ? "fail_open" : "fail_closed" });
      if (this.opts.failMode === "open") return { ok: true, retryAfterS: 0, degraded: true };
      throw new LimiterUnavailableError();
    }
  }

  async settle(subject: string, limits: LimitSpec, deltaTokens: number): Promise<void> {
    if (!has(limits.tpm) || deltaTokens === 0) return;
    try {
      await this.redis.tunaSettle(this.keys(subject)[0], limits.tpm, deltaTokens, limits.rpm ?? 0);
    } catch (err) {
      this.logError("rate limit settle failed", err);
      this.opts.errors.inc({ outcome: "settle_failed" });
    }
  }

  async release(subject: string, limits: LimitSpec, leaseId: string): Promise<void> {
    if (!has(limits.maxConcurrent)) return;
    try {
      await this.redis.zrem(this.keys(subject)[1], leaseId);
    } catch (err) {
      // The lease expires on its own (LEASE_TTL_MS), so a lost release only delays capacity.
      this.logError("concurrency release failed", err);
      this.opts.errors.inc({ outcome: "release_failed" });
    }
  }

  async close(): Promise<void> {
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
