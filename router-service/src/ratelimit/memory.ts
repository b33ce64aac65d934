// In-process limiter: exact for a single router instance (the embedded default).
import { type AcquireResult, has, type LimitSpec, type RateLimiter } from "./types.js";

interface Bucket {
  req: number;
  tok: number;
  at: number;
  leases: number;
}

const DONE: Promise<void> = Promise.resolve();

export class MemoryRateLimiter implements RateLimiter {
  private buckets = new Map<string, Bucket>();
  private sweep: NodeJS.Timeout;

  constructor(private now: () => number = Date.now) {
    // Full, idle buckets carry no information; dropping them bounds memory to active keys.
    this.sweep = setInterval(() => {
      const t = this.now();
      for (const [k, b] of this.buckets) if (b.leases === 0 && t - b.at > 120_000) this.buckets.delete(k);
    }, 60_000);
    this.sweep.unref();
  }

  private refill(subject: string, limits: LimitSpec): Bucket {
    const t = this.now();
    let b = this.buckets.get(subject);
    if (!b) {
      b = { req: limits.rpm ?? 0, tok: limits.tpm ?? 0, at: t, leases: 0 };
      this.buckets.set(subject, b);
      return b;
    }
    const dt = t - b.at;
    if (has(limits.rpm)) b.req = Math.min(limits.rpm, b.req + (dt * limits.rpm) / 60_000);
    if (has(limits.tpm)) b.tok = Math.min(limits.tpm, b.tok + (dt * limits.tpm) / 60_000);
    b.at = t;
    return b;
  }

  acquire(subject: string, limits: LimitSpec, tokens: number, _leaseId?: string): Promise<AcquireResult> {
    return Promise.resolve(this.acquireSync(subject, limits, tokens));
  }

  /** The same decision without a promise: the router's hot path calls this when the store is in-process. */
  acquireSync(subject: string, limits: LimitSpec, tokens: number, _leaseId?: string): AcquireResult {
    const b = this.refill(subject, limits);
    let limit: AcquireResult["limit"];
    let retryAfterMs = 0;
    if (has(limits.rpm) && b.req < 1) {
      limit = "rpm";
      retryAfterMs = ((1 - b.req) * 60_000) / limits.rpm;
    } else if (has(limits.tpm) && b.tok < tokens) {
      limit = "tpm";
      retryAfterMs = ((tokens - b.tok) * 60_000) / limits.tpm;
    } else if (has(limits.maxConcurrent) && b.leases >= limits.maxConcurrent) {
      limit = "maxConcurrent";
      retryAfterMs = 1000;
    }
    if (!limit) {
      if (has(limits.rpm)) b.req -= 1;
      if (has(limits.tpm)) b.tok -= tokens;
      if (has(limits.maxConcurrent)) b.leases++;
    }
    return {
      ok: !limit,
      limit,
      retryAfterS: Math.max(1, Math.ceil(retryAfterMs / 1000)),
      requestsRemaining: has(limits.rpm) ? Math.max(0, Math.floor(b.req)) : undefined,
      tokensRemaining: has(limits.tpm) ? Math.max(0, Math.floor(b.tok)) : undefined,
      requestsResetMs: has(limits.rpm) ? ((limits.rpm - b.req) * 60_000) / limits.rpm : undefined,
      tokensResetMs: has(limits.tpm) ? ((limits.tpm - b.tok) * 60_000) / limits.tpm : undefined,
    };
  }

  settle(subject: string, limits: LimitSpec, deltaTokens: number): Promise<void> {
    if (!has(limits.tpm) || deltaTokens === 0) return DONE;
    const b = this.refill(subject, limits);
    b.tok = Math.min(limits.tpm, b.tok - deltaTokens);
    return DONE;
  }

  release(subject: string, limits: LimitSpec): Promise<void> {
    if (!has(limits.maxConcurrent)) return DONE;
    const b = this.buckets.get(subject);
    if (b && b.leases > 0) b.leases--;
    return DONE;
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
  }
}
