// Per-subject (API key or deployment) limits: requests/minute and tokens/minute over an exact sliding window,
// plus a concurrency lease set. Both stores implement the same arithmetic.
//
// The window is kept in 1-second buckets. A check in second k counts buckets k-60..k (61 of them): any 60 s
// interval lies within the buckets k-60..k of its last admission k, and that admission saw every earlier one,
// so no 60 s interval ever holds more than the limit. The price is under-admitting by at most 1 s in 61.
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
  /** The request's own reservation exceeds tpm: no wait will ever admit it (retryAfterS is meaningless). */
  tooLarge?: boolean;
  retryAfterS: number;
  /** Second index (the store's clock) the reservation was booked in; pass it back to settle. */
  windowSec?: number;
  /** Levels after this decision, for the x-ratelimit-* headers. */
  requestsRemaining?: number;
  tokensRemaining?: number;
  /** Milliseconds until one more request / this request's tokens would fit (0: they fit now). */
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
  /**
   * Adjusts the tokens booked in second `windowSec` (default: the current second) once real usage is known:
   * positive charges more, negative refunds. Ignored once that second has left the window.
   */
  settle(subject: string, limits: LimitSpec, deltaTokens: number, windowSec?: number): Promise<void>;
  /** Returns the concurrency lease taken by acquire. */
  release(subject: string, limits: LimitSpec, leaseId: string): Promise<void>;
  close(): Promise<void>;
}

export const has = (n: number | null | undefined): n is number => typeof n === "number" && n > 0;

/** Longest a concurrency lease lives if its router dies before releasing it. */
export const LEASE_TTL_MS = 15 * 60_000;

export const WINDOW_S = 60;
/** Buckets counted by one check: the current second and the 60 before it. */
export const WINDOW_SLOTS = WINDOW_S + 1;
/** Refusing for lack of a concurrency lease: leases come back when requests end, not on a clock. */
const LEASE_RETRY_MS = 1000;

export const secondOf = (ms: number): number => Math.floor(ms / 1000);

/** What a store decided and the window's state after it; the same shape from both stores. */
export interface WindowDecision {
  limit?: LimitName;
  tooLarge: boolean;
  sec: number;
  sumRequests: number;
  sumTokens: number;
  requestsWaitMs: number;
  tokensWaitMs: number;
}

export function toAcquireResult(limits: LimitSpec, d: WindowDecision): AcquireResult {
  const waitMs = d.limit === "rpm" ? d.requestsWaitMs : d.limit === "tpm" ? d.tokensWaitMs : d.limit ? LEASE_RETRY_MS : 0;
  const r: AcquireResult = { ok: !d.limit, limit: d.limit, retryAfterS: Math.max(1, Math.ceil(waitMs / 1000)) };
  if (d.limit) {
    if (d.tooLarge) r.tooLarge = true;
  } else r.windowSec = d.sec;
  if (has(limits.rpm)) {
    r.requestsRemaining = Math.max(0, Math.floor(limits.rpm - d.sumRequests));
    r.requestsResetMs = d.requestsWaitMs;
  }
  if (has(limits.tpm)) {
    r.tokensRemaining = Math.max(0, Math.floor(limits.tpm - d.sumTokens));
    r.tokensResetMs = d.tokensWaitMs;
  }
  return r;
}
