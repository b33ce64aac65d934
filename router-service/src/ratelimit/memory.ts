// In-process limiter: exact for a single router instance (the embedded default).
import { type AcquireResult, has, type LimitName, type LimitSpec, type RateLimiter, secondOf, toAcquireResult, WINDOW_S, WINDOW_SLOTS } from "./types.js";

/** One subject's sliding window: a ring of per-second counts holding seconds head-60..head, plus their sums. */
interface Window {
  head: number;
  requests: Uint32Array;
  tokens: Float64Array;
  sumRequests: number;
  sumTokens: number;
  leases: number;
}

const DONE: Promise<void> = Promise.resolve();

// Positive modulo: a fake clock may start near 0, where head-60 is negative.
const slot = (sec: number) => ((sec % WINDOW_SLOTS) + WINDOW_SLOTS) % WINDOW_SLOTS;

const windowed = (limits: LimitSpec) => has(limits.rpm) || has(limits.tpm);

/** Moves the window to second k. Each second is dropped once, so a check costs O(1) amortized. */
function advance(w: Window, k: number): void {
  // A clock that steps back keeps counting into the newest second instead of reopening old ones.
  if (k <= w.head) return;
  if (k - w.head >= WINDOW_SLOTS) {
    w.requests.fill(0);
    w.tokens.fill(0);
    w.sumRequests = 0;
    w.sumTokens = 0;
  } else {
    // Slot of second s (head < s ≤ k) still holds second s-61, which has left the window.
    for (let s = w.head + 1; s <= k; s++) {
      const i = slot(s);
      w.sumRequests -= w.requests[i];
      w.sumTokens -= w.tokens[i];
      w.requests[i] = 0;
      w.tokens[i] = 0;
    }
  }
  w.head = k;
}

/** Adds delta to one second's count, never below 0; returns the change actually applied (for the sum). */
function addAt(counts: Uint32Array | Float64Array, i: number, delta: number): number {
  const old = counts[i];
  counts[i] = Math.max(0, old + delta);
  return counts[i] - old;
}

/** Ms until the oldest seconds have left the window holding at least `excess` (second s leaves at s+61). */
function waitMs(counts: Uint32Array | Float64Array, head: number, nowMs: number, excess: number): number {
  if (excess <= 0) return 0;
  let freed = 0;
  for (let s = head - WINDOW_S; s <= head; s++) {
    freed += counts[slot(s)];
    if (freed >= excess) return (s + WINDOW_SLOTS) * 1000 - nowMs;
  }
  // Not even an empty window fits it (a tooLarge request): report when the window is empty.
  return (head + WINDOW_SLOTS) * 1000 - nowMs;
}

function refusal(w: Window, limits: LimitSpec, tokens: number): { limit?: LimitName; tooLarge: boolean } {
  if (has(limits.tpm) && tokens > limits.tpm) return { limit: "tpm", tooLarge: true };
  if (has(limits.rpm) && w.sumRequests + 1 > limits.rpm) return { limit: "rpm", tooLarge: false };
  if (has(limits.tpm) && w.sumTokens + tokens > limits.tpm) return { limit: "tpm", tooLarge: false };
  if (has(limits.maxConcurrent) && w.leases >= limits.maxConcurrent) return { limit: "maxConcurrent", tooLarge: false };
  return { tooLarge: false };
}

function take(w: Window, limits: LimitSpec, tokens: number): void {
  if (windowed(limits)) {
    const i = slot(w.head);
    w.sumRequests += addAt(w.requests, i, 1);
    w.sumTokens += addAt(w.tokens, i, tokens);
  }
  if (has(limits.maxConcurrent)) w.leases++;
}

export class MemoryRateLimiter implements RateLimiter {
  private windows = new Map<string, Window>();
  private sweep: NodeJS.Timeout;

  constructor(private now: () => number = Date.now) {
    // A window whose every second has expired carries no information; dropping it bounds memory to active keys.
    this.sweep = setInterval(() => {
      const k = secondOf(this.now());
      for (const [s, w] of this.windows) if (w.leases === 0 && k - w.head >= WINDOW_SLOTS) this.windows.delete(s);
    }, 60_000);
    this.sweep.unref();
  }

  private window(subject: string, k: number): Window {
    let w = this.windows.get(subject);
    if (!w) {
      w = { head: k, requests: new Uint32Array(WINDOW_SLOTS), tokens: new Float64Array(WINDOW_SLOTS), sumRequests: 0, sumTokens: 0, leases: 0 };
      this.windows.set(subject, w);
    }
    advance(w, k);
    return w;
  }

  acquire(subject: string, limits: LimitSpec, tokens: number, _leaseId?: string): Promise<AcquireResult> {
    return Promise.resolve(this.acquireSync(subject, limits, tokens));
  }

  /** The same decision without a promise: the router's hot path calls this when the store is in-process. */
  acquireSync(subject: string, limits: LimitSpec, tokens: number, _leaseId?: string): AcquireResult {
    const nowMs = this.now();
    const w = this.window(subject, secondOf(nowMs));
    const { limit, tooLarge } = refusal(w, limits, tokens);
    if (!limit) take(w, limits, tokens);
    return toAcquireResult(limits, {
      limit,
      tooLarge,
      sec: w.head,
      sumRequests: w.sumRequests,
      sumTokens: w.sumTokens,
      requestsWaitMs: has(limits.rpm) ? waitMs(w.requests, w.head, nowMs, w.sumRequests + 1 - limits.rpm) : 0,
      tokensWaitMs: has(limits.tpm) ? waitMs(w.tokens, w.head, nowMs, w.sumTokens + tokens - limits.tpm) : 0,
    });
  }

  settle(subject: string, limits: LimitSpec, deltaTokens: number, windowSec?: number): Promise<void> {
    if (!has(limits.tpm) || deltaTokens === 0) return DONE;
    const w = this.window(subject, secondOf(this.now()));
    const s = windowSec ?? w.head;
    // Once its second has left the window the reservation no longer counts against anything: nothing to adjust.
    if (s >= w.head - WINDOW_S && s <= w.head) w.sumTokens += addAt(w.tokens, slot(s), deltaTokens);
    return DONE;
  }

  release(subject: string, limits: LimitSpec): Promise<void> {
    if (!has(limits.maxConcurrent)) return DONE;
    const w = this.windows.get(subject);
    if (w && w.leases > 0) w.leases--;
    return DONE;
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
  }
}
