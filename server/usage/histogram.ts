/**
 * Latency histograms as the router reports them: ascending upper bounds (ms) and one count per bound plus
 * a last slot for +Inf. Rollups store them on one canonical set of bounds so the database can merge two
 * histograms by adding counts position by position.
 */
export interface Histogram {
  bounds: number[];
  counts: number[];
}

/** The router's bounds today (router-service `LATENCY_BOUNDS_MS`). Reports on other bounds are re-bucketed. */
export const CANONICAL_BOUNDS_MS: readonly number[] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000];

export function emptyHistogram(): Histogram {
  return { bounds: [...CANONICAL_BOUNDS_MS], counts: new Array(CANONICAL_BOUNDS_MS.length + 1).fill(0) };
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Moves each incoming bucket to the first canonical bucket whose bound is ≥ its own upper bound, so a
 * re-bucketed quantile never reads lower than the router measured (conservative for latency).
 */
export function toCanonical(h: Histogram | undefined | null): Histogram {
  const out = emptyHistogram();
  if (!h || !Array.isArray(h.counts)) return out;
  if (sameBounds(h.bounds, CANONICAL_BOUNDS_MS) && h.counts.length === CANONICAL_BOUNDS_MS.length + 1) {
    return { bounds: out.bounds, counts: h.counts.map((c) => (Number.isFinite(c) && c > 0 ? Math.floor(c) : 0)) };
  }
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (!Number.isFinite(c) || c <= 0) continue;
    const upper = i < h.bounds.length ? h.bounds[i] : Number.POSITIVE_INFINITY;
    let j = 0;
    while (j < CANONICAL_BOUNDS_MS.length && upper > CANONICAL_BOUNDS_MS[j]) j++;
    out.counts[j] += Math.floor(c);
  }
  return out;
}

/** Adds `b` into `a` (both canonical). */
export function addInto(a: Histogram, b: Histogram): Histogram {
  for (let i = 0; i < a.counts.length; i++) a.counts[i] += b.counts[i] ?? 0;
  return a;
}

export function histogramCount(h: Histogram): number {
  return h.counts.reduce((s, c) => s + c, 0);
}

/**
 * The q-quantile (0..1) by linear interpolation inside the bucket that holds it, as Prometheus'
 * histogram_quantile does. The +Inf bucket answers with the highest finite bound. null when empty.
 */
export function quantile(h: Histogram, q: number): number | null {
  const total = histogramCount(h);
  if (total === 0) return null;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (c > 0 && cum + c >= rank) {
      if (i >= h.bounds.length) return h.bounds[h.bounds.length - 1] ?? null;
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const upper = h.bounds[i];
      return lower + (upper - lower) * ((rank - cum) / c);
    }
    cum += c;
  }
  return h.bounds[h.bounds.length - 1] ?? null;
}
