// Per-subject (API key or deployment) limits: requests/minute and tokens/minute as token buckets that refill
// continuously, plus a concurrency lease set. Both stores implement the same arithmetic.
export interface LimitSpec {
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
}

export type LimitName = "rpm" | "tpm" | "maxConcurrent";

export interface AcquireResult {
  ok: boolean;
  /** Which limit refused the request. */
  limit?: LimitName;
  retryAfterS: number;
  /** Levels after this decision, for the x-ratelimit-* headers. */
  requestsRemaining?: number;
  tokensRemaining?: number;
  /** Milliseconds until the bucket is full again. */
  requestsResetMs?: number;
  tokensResetMs?: number;
  /** Store unreachable and the router is configured to fail open. */
  degraded?: boolean;
}

export interface RateLimiter {
  /** Atomically checks every limit and, only if all pass, takes 1 request, `tokens` tokens and a concurrency lease. */
  acquire(subject: string, limits: LimitSpec, tokens: number, leaseId: string): Promise<AcquireResult>;
  /** Optional synchronous form (in-process stores), so the hot path skips a promise and a microtask. */
  acquireSync?(subject: string, limits: LimitSpec, tokens: number, leaseId: string): AcquireResult;
  /** Adjusts the token bucket once real usage is known: positive charges more, negative refunds. */
  settle(subject: string, limits: LimitSpec, deltaTokens: number): Promise<void>;
  /** Returns the concurrency lease taken by acquire. */
  release(subject: string, limits: LimitSpec, leaseId: string): Promise<void>;
  close(): Promise<void>;
}

export const has = (n: number | null | undefined): n is number => typeof n === "number" && n > 0;

/** Longest a concurrency lease lives if its router dies before releasing it. */
export const LEASE_TTL_MS = 15 * 60_000;
