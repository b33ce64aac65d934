/**
 * Cost and savings of a deployment over a time range, from measured usage. Pure: no I/O, integer
 * micro-dollars out. `server/usage/pricing.ts` gathers the inputs from the database and the catalog;
 * the formulas are documented in `server/usage/README.md`.
 */

export type BackendKind = "serverless" | "spot";

/** Usage of one activity bucket (a minute or hour rollup, summed over keys) for one backend kind. */
export interface ActivitySample {
  /** Bucket start, ms since epoch. */
  t: number;
  kind: BackendKind;
  requests: number;
  /** Sum of request durations on that backend kind inside the bucket (router `busyMs`). */
  busyMs: number;
  inputTokens: number;
  outputTokens: number;
  /** Length of this sample's bucket when it is not `CostInput.bucketMs`: hour rollups priced next to minute ones. */
  bucketMs?: number;
}

/** How a serverless provider bills, plus the deployment's scaling knobs that matter for billing. */
export interface ServerlessBilling {
  provider: string;
  gpu: string;
  gpuCount: number;
  /** USD micro-dollars per GPU-hour; null = unknown (the cost is then reported as unknown, not $0). */
  pricePerGpuHourMicros: number | null;
  /** Seconds a worker stays up after its last request (Modal scaledown_window, RunPod idleTimeout…). */
  idleWindowS: number;
  idleWindowBilled: boolean;
  /** Minimum billed seconds per worker start (0 = none). */
  minimumBillableS: number;
  /** Workers kept warm all the time, billed whether busy or not. */
  minWorkers: number;
  /** Most workers the provider runs at once (warm ones included); absent = no cap. */
  maxWorkers?: number;
  /** Requests one worker serves at once. */
  concurrency: number;
}

export interface SpotPricing {
  /** Cloud and price in force at the start of the range. */
  cloud: string;
  gpu: string;
  gpuCount: number;
  spotPricePerGpuHourMicros: number | null;
  /** Later prices inside the range (live samples), ascending by `at`; each holds until the next. */
  priceChanges?: Array<{ at: number; cloud: string; micros: number }>;
}

/** Intervals clipped to [from, to). */
function clipIntervals(intervals: readonly ReadyInterval[], from: number, to: number): ReadyInterval[] {
  const out: ReadyInterval[] = [];
  for (const iv of intervals) {
    const start = Math.max(iv.start, from);
    const end = Math.min(iv.end, to);
    if (end > start) out.push({ start, end, replicas: iv.replicas });
  }
  return out;
}

export interface ReadyInterval {
  start: number;
  end: number;
  /** Ready replicas during the interval. */
  replicas: number;
}

export interface CostInput {
  fromMs: number;
  toMs: number;
  /** Size of the activity buckets (60_000 for minute rollups, 3_600_000 for hour rollups). */
  bucketMs: number;
  activity: ActivitySample[];
  /** Spot ready intervals (already unioned across routers, see `readyIntervalsFromEvents`). */
  spotReady: ReadyInterval[];
  /** The deployment's serverless component, null if it has none. */
  serverless: ServerlessBilling | null;
  /** Time the serverless component existed inside the range (warm workers are billed for it). */
  serverlessLiveMs: number;
  /**
   * Time the deployment existed inside the range (activated or created → destroyed): the warm workers of the
   * all-serverless baseline of a deployment without a serverless component.
   */
  deploymentLiveMs: number;
  spot: SpotPricing | null;
  /** Router price attributed to this deployment (0 when colocated) and the time it ran in the range. */
  routerMicrosPerHour: number;
  routerLiveMs: number;
  /** Billing used for "all on serverless": the deployment's own provider, or the cheapest for its GPU. */
  counterfactualServerless: ServerlessBilling | null;
  /** On-demand USD micro-dollars per GPU-hour of the spot GPU and of the serverless GPU (null = unknown). */
  onDemandSpotGpuMicros: number | null;
  onDemandServerlessGpuMicros: number | null;
}

export interface CostBreakdown {
  serverless: number | null;
  spot: number | null;
  router: number;
  total: number | null;
}

export interface Savings {
  vsServerless: number | null;
  vsServerlessPct: number | null;
  vsOnDemand: number | null;
  vsOnDemandPct: number | null;
}

/** Attributable cost of one activity bucket (costs caused while serving requests in that bucket). */
export interface BucketCost {
  t: number;
  serverless: number;
  spot: number;
}

export interface CostResult {
  actual: CostBreakdown;
  counterfactual: { allServerless: number | null; allOnDemand: number | null };
  /** null when there is no usage data at all in the range: a saving computed from nothing is not shown. */
  savings: Savings | null;
  costPer1MOutputTokens: number | null;
  usage: {
    requests: number;
    inputTokens: number;
    outputTokens: number;
    serverlessBusyMs: number;
    spotBusyMs: number;
    serverlessBilledWorkerMs: number;
    serverlessWarmWorkerMs: number;
    spotReadyReplicaMs: number;
  };
  /** Human-readable account of the inputs and formulas used, for the UI and for audits of the numbers. */
  explanation: string[];
  /** Per activity bucket, the cost attributable to the requests in it (basis of per-key spend). */
  buckets: BucketCost[];
}

// ---------------------------------------------------------------------------------------------------------

/** The value at `key`, created with `init` when absent. */
export function entry<K, V>(map: Map<K, V>, key: K, init: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = init();
    map.set(key, v);
  }
  return v;
}

/** micro-dollars = ms × GPUs × (micro-dollars per GPU-hour) / 3.6e6, exact integer arithmetic, rounded. */
export function priceMs(ms: number, gpuCount: number, microsPerGpuHour: number): number {
  if (ms <= 0 || microsPerGpuHour <= 0) return 0;
  const num = BigInt(Math.round(ms)) * BigInt(gpuCount) * BigInt(Math.round(microsPerGpuHour));
  return Number((num + 1_800_000n) / 3_600_000n);
}

function fmt(micros: number | null): string {
  if (micros === null) return "unknown";
  const sign = micros < 0 ? "-" : "";
  const a = Math.abs(micros);
  return `${sign}$${Math.floor(a / 1e6)}.${String(Math.round((a % 1e6) / 100)).padStart(4, "0")}`;
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Buckets longer than this are hour rollups (ranges past minute retention): they hide the gaps between requests. */
const FINE_BUCKET_MS = 60_000;
/** How far back a bucket's busy time may spill (see `serverlessBilledMs`). */
const MAX_SPILL_MS = 86_400_000;

/**
 * Worker-time billed by a serverless provider beyond its warm workers, per activity bucket.
 *
 * The router records a request's whole duration in the bucket where it completes, so a bucket's busy time first
 * spills back over the buckets before it, as far as its requests ran: each of the bucket's n requests fills at
 * most a bucket's length, the rest ran in the bucket before, and so on (without a request count nothing spills).
 * Within a bucket of length L holding B busy-ms (its own and spilled) the average in-flight count is B / L;
 * workers needed w = min(maxWorkers, max(1, ceil(inflight / concurrency))) — the provider queues the rest. One
 * worker is up for min(L, B) (its requests laid end to end: an upper bound of their union), several are up for
 * the whole bucket. A bucket longer than a minute (hour rollups) hides the idle gaps between its n requests:
 * taking them to arrive at random over its idle time F = L − B (gaps exponential with rate λ = n / F), the
 * worker also stays up (n − 1) × E[min(gap, idle window)] = (n − 1)(1 − e^(−λ·idle window)) / λ — an estimate.
 * Workers above `minWorkers` are extra: each extra worker then stays up for the idle window after its activity,
 * cut short when the next activity starts earlier (it is the same worker still running). A run of activity that
 * starts a worker is billed at least `minimumBillableS` per extra worker. `perBucket` charges the billed time to
 * the buckets whose requests caused it (by their busy time), also when it was spent in the buckets before them.
 */
export function serverlessBilledMs(
  activity: ReadonlyArray<{ t: number; busyMs: number; requests?: number; bucketMs?: number }>,
  billing: Pick<ServerlessBilling, "idleWindowS" | "idleWindowBilled" | "minimumBillableS" | "minWorkers" | "maxWorkers" | "concurrency">,
  bucketMs: number,
  toMs: number,
): { perBucket: Map<number, number>; total: number; activations: number } {
  interface Bucket {
    t: number;
    len: number;
    busy: number;
    /** Requests completed in the bucket; null when not reported. */
    requests: number | null;
    /** Busy time running in the bucket, by the bucket that recorded it (itself, or a later one it spilled from). */
    load: Map<number, number>;
  }
  const byT = new Map<number, Bucket>();
  const newBucket = (t: number, len: number): Bucket => ({ t, len: Math.max(1, len), busy: 0, requests: 0, load: new Map() });
  for (const a of activity) {
    const b = entry(byT, a.t, () => newBucket(a.t, a.bucketMs ?? bucketMs));
    b.busy += Math.max(0, a.busyMs);
    b.requests = a.requests === undefined || b.requests === null ? null : b.requests + a.requests;
  }
  const recorded = [...byT.values()].filter((b) => b.busy > 0).sort((x, y) => y.t - x.t);
  const lengths = [...new Set(recorded.map((b) => b.len))];
  /** The bucket ending at `end`: an existing one of any length (minute after hour rollups), else a new one. */
  const bucketBefore = (end: number, len: number): Bucket => {
    for (const l of lengths) {
      const b = byT.get(end - l);
      if (b && b.len === l) return b;
    }
    return entry(byT, end - len, () => newBucket(end - len, len));
  };
  for (const o of recorded) {
    const n = o.requests === null ? Number.POSITIVE_INFINITY : Math.max(1, o.requests);
    let rest = o.busy;
    for (let b = o; rest > 0; b = bucketBefore(b.t, o.len)) {
      // A request running over a day is a reporting error: what is left stays here rather than walk back further.
      const put = o.t - b.t >= MAX_SPILL_MS ? rest : Math.min(rest, n * b.len);
      b.load.set(o.t, (b.load.get(o.t) ?? 0) + put);
      rest -= put;
    }
  }

  const reachMs = billing.idleWindowS * 1000; // the worker stays up this long whether billed or not
  const idleMs = billing.idleWindowBilled ? reachMs : 0;
  const maxWorkers = Math.max(1, billing.maxWorkers ?? Number.POSITIVE_INFINITY);
  const segs = [...byT.values()]
    .map((b) => ({ b, busy: [...b.load.values()].reduce((x, y) => x + y, 0) }))
    .filter((x) => x.busy > 0)
    .sort((x, y) => x.b.t - y.b.t)
    .map(({ b, busy }) => {
      const w = Math.min(maxWorkers, Math.max(1, Math.ceil(busy / b.len / Math.max(1, billing.concurrency))));
      let upMs = w === 1 ? Math.min(b.len, busy) : b.len;
      let billedMs = upMs;
      if (w === 1 && b.len > FINE_BUCKET_MS && b.requests !== null && b.requests > 1 && reachMs > 0 && upMs < b.len) {
        const rate = b.requests / (b.len - upMs);
        const gaps = Math.min(b.len - upMs, ((b.requests - 1) * (1 - Math.exp(-rate * reachMs))) / rate);
        upMs += gaps;
        if (billing.idleWindowBilled) billedMs += gaps;
      }
      return { t: b.t, extra: Math.max(0, w - billing.minWorkers), upMs, billedMs, busy, load: b.load };
    })
    .filter((s) => s.extra > 0);
  const perBucket = new Map<number, number>();
  let total = 0;
  const charge = (s: (typeof segs)[number], ms: number) => {
    total += ms;
    for (const [t, busy] of s.load) perBucket.set(t, (perBucket.get(t) ?? 0) + (s.load.size === 1 ? ms : (ms * busy) / s.busy));
  };
  let activations = 0;
  let runStart: (typeof segs)[number] | null = null;
  let runBilled = 0;
  let runWorkers = 0;
  const closeRun = () => {
    if (!runStart) return;
    const min = billing.minimumBillableS * 1000 * runWorkers;
    if (runBilled < min) charge(runStart, min - runBilled);
  };
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const end = s.t + s.upMs;
    const next = segs[i + 1];
    const gap = next ? Math.max(0, next.t - end) : Math.max(0, toMs - end);
    const tail = Math.min(idleMs, gap);
    const billed = s.extra * (s.billedMs + tail);
    charge(s, billed);
    const prev = segs[i - 1];
    const continues = prev && s.t - (prev.t + prev.upMs) <= reachMs;
    if (!continues) {
      closeRun();
      activations++;
      runStart = s;
      runBilled = 0;
      runWorkers = s.extra;
    }
    runBilled += billed;
  }
  closeRun();
  return { perBucket, total, activations };
}

/**
 * Ready intervals of spot backends from the routers' state events. Per router and backend, a state lasts
 * until that router's next event for the backend, or until the end of that router's view (`viewEnds`: a router
 * that stopped reporting sees nothing after its last sign of life), or `toMs`. A backend counts as ready while
 * ANY router sees it ready (routers share the backend; their views are unioned, not added); distinct spot
 * backends are distinct replicas and add up. `billedStates` are the states in which the replicas exist and bill.
 * Events before `fromMs` are needed to know the state at `fromMs`.
 */
export function readyIntervalsFromEvents(
  events: ReadonlyArray<{ routerId: string; backendId: string; state: string; at: number; replicas: number }>,
  fromMs: number,
  toMs: number,
  opts: { viewEnds?: ReadonlyMap<string, number>; billedStates?: readonly string[] } = {},
): ReadyInterval[] {
  const billedStates = opts.billedStates ?? ["ready", "draining"];
  const byRouterBackend = new Map<string, typeof events[number][]>();
  for (const e of events) {
    const k = `${e.backendId}\u0000${e.routerId}`;
    entry(byRouterBackend, k, () => []).push(e);
  }
  // Per backend: the intervals each router saw as billed.
  const perBackend = new Map<string, ReadyInterval[]>();
  for (const [k, list] of byRouterBackend) {
    const backendId = k.split("\u0000")[0];
    list.sort((a, b) => a.at - b.at);
    const out = entry(perBackend, backendId, () => []);
    const viewEnd = Math.min(toMs, opts.viewEnds?.get(list[0].routerId) ?? toMs);
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      if (!billedStates.includes(e.state)) continue;
      const start = Math.max(fromMs, e.at);
      const end = Math.min(viewEnd, list[i + 1]?.at ?? viewEnd);
      if (end > start) out.push({ start, end, replicas: Math.max(1, e.replicas) });
    }
  }
  const result: ReadyInterval[] = [];
  for (const ivs of perBackend.values()) {
    // Sweep: at every point the backend's replicas are the max any router saw.
    const points = [...new Set(ivs.flatMap((i) => [i.start, i.end]))].sort((a, b) => a - b);
    for (let p = 0; p < points.length - 1; p++) {
      const a = points[p];
      const b = points[p + 1];
      let r = 0;
      for (const iv of ivs) if (iv.start <= a && iv.end >= b) r = Math.max(r, iv.replicas);
      if (r === 0) continue;
      const last = result[result.length - 1];
      if (last && last.end === a && last.replicas === r) last.end = b;
      else result.push({ start: a, end: b, replicas: r });
    }
  }
  return result;
}

/**
 * The parts of `intervals` inside any of `lives` (the times a component's resource existed): ready time the
 * routers report outside them is not billed. Overlapping lives are merged first, so nothing is counted twice.
 */
export function clipToLives(intervals: readonly ReadyInterval[], lives: ReadonlyArray<{ start: number; end: number }>): ReadyInterval[] {
  const merged: Array<{ start: number; end: number }> = [];
  for (const l of [...lives].sort((a, b) => a.start - b.start)) {
    const last = merged[merged.length - 1];
    if (last && l.start <= last.end) last.end = Math.max(last.end, l.end);
    else if (l.end > l.start) merged.push({ ...l });
  }
  return merged.flatMap((l) => clipIntervals(intervals, l.start, l.end)).sort((a, b) => a.start - b.start);
}

/** Replica-ms of `intervals` falling in each bucket of size `bucketMs` (keyed by bucket start). */
export function splitIntervalsByBucket(intervals: readonly ReadyInterval[], bucketMs: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const iv of intervals) {
    let t = Math.floor(iv.start / bucketMs) * bucketMs;
    for (; t < iv.end; t += bucketMs) {
      const ms = Math.min(iv.end, t + bucketMs) - Math.max(iv.start, t);
      if (ms > 0) out.set(t, (out.get(t) ?? 0) + ms * iv.replicas);
    }
  }
  return out;
}

const pct = (saving: number, base: number) => Math.round((saving / base) * 1000) / 10;

export function computeCost(input: CostInput): CostResult {
  const explanation: string[] = [];
  const { bucketMs, toMs } = input;
  let requests = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  let svlBusy = 0;
  let spotBusy = 0;
  for (const a of input.activity) {
    requests += a.requests;
    inputTokens += a.inputTokens;
    outputTokens += a.outputTokens;
    if (a.kind === "serverless") svlBusy += a.busyMs;
    else spotBusy += a.busyMs;
  }
  const spotReadyReplicaMs = input.spotReady.reduce((s, i) => s + (i.end - i.start) * i.replicas, 0);
  const buckets = new Map<number, BucketCost>();
  const bucket = (t: number) => entry(buckets, t, () => ({ t, serverless: 0, spot: 0 }));

  // ── Serverless: billed worker time from real busy time + idle window per activation + warm workers.
  let serverless: number | null = 0;
  let svlBilledMs = 0;
  let svlWarmMs = 0;
  const s = input.serverless;
  if (s) {
    const billed = serverlessBilledMs(input.activity.filter((a) => a.kind === "serverless"), s, bucketMs, toMs);
    svlBilledMs = billed.total;
    svlWarmMs = s.minWorkers * Math.max(0, input.serverlessLiveMs);
    if (s.pricePerGpuHourMicros === null) {
      serverless = svlBilledMs + svlWarmMs > 0 ? null : 0;
      explanation.push(`serverless ${s.provider} ${s.gpu}: price unknown, cost not computed`);
    } else {
      const price = s.pricePerGpuHourMicros;
      serverless = priceMs(svlBilledMs + svlWarmMs, s.gpuCount, price);
      for (const [t, ms] of billed.perBucket) bucket(t).serverless += priceMs(ms, s.gpuCount, price);
      explanation.push(
        `serverless ${s.provider} ${s.gpu}×${s.gpuCount} at ${fmt(price)}/GPU-h: ${fmtS(svlBusy)} busy → ${fmtS(svlBilledMs)} billed ` +
          `worker time (${billed.activations} activation(s), idle window ${s.idleWindowS} s ${s.idleWindowBilled ? "billed" : "not billed"}, ` +
          `concurrency ${s.concurrency}${s.maxWorkers !== undefined ? `, at most ${s.maxWorkers} worker(s)` : ""}${s.minimumBillableS ? `, minimum ${s.minimumBillableS} s per start` : ""}) + ` +
          `${s.minWorkers} warm worker(s) × ${fmtS(input.serverlessLiveMs)} = ${fmt(serverless)}`,
      );
    }
  } else if (svlBusy > 0) {
    explanation.push(`${fmtS(svlBusy)} of serverless busy time reported but the deployment has no serverless component: not priced`);
  }

  // ── Spot: every ready replica-second is billed, busy or idle, at the price in force at that moment.
  let spot: number | null = 0;
  const sp = input.spot;
  if (sp) {
    const periods = [{ at: Number.NEGATIVE_INFINITY, cloud: sp.cloud, micros: sp.spotPricePerGpuHourMicros }, ...(sp.priceChanges ?? [])];
    const priced: string[] = [];
    for (const [i, p] of periods.entries()) {
      const ready = clipIntervals(input.spotReady, p.at, periods[i + 1]?.at ?? Number.POSITIVE_INFINITY);
      const ms = ready.reduce((n, iv) => n + (iv.end - iv.start) * iv.replicas, 0);
      if (ms === 0 && periods.length > 1) continue;
      if (p.micros === null) {
        if (ms > 0) spot = null;
        explanation.push(`spot ${p.cloud} ${sp.gpu}: spot price unknown, cost not computed`);
        continue;
      }
      const price = p.micros;
      if (spot !== null) spot += priceMs(ms, sp.gpuCount, price);
      for (const [t, bms] of splitIntervalsByBucket(ready, bucketMs)) bucket(t).spot += priceMs(bms, sp.gpuCount, price);
      priced.push(periods.length > 1 ? `${fmtS(ms)} on ${p.cloud} at ${fmt(price)}/GPU-h` : `${p.cloud} ${sp.gpu}×${sp.gpuCount} at ${fmt(price)}/GPU-h`);
    }
    const tail = `${fmtS(spotReadyReplicaMs)} ready replica time (idle included; ${fmtS(spotBusy)} of it busy) = ${fmt(spot)}`;
    if (periods.length === 1 && priced.length) explanation.push(`spot ${priced[0]}: ${tail}`);
    else if (priced.length) explanation.push(`spot ${sp.gpu}×${sp.gpuCount} at the prices in force (${priced.join(", then ")}): ${tail}`);
  } else if (spotReadyReplicaMs > 0) {
    explanation.push("spot ready time reported but the deployment has no spot component: not priced");
  }

  const router = priceMs(input.routerLiveMs, 1, input.routerMicrosPerHour);
  explanation.push(
    input.routerMicrosPerHour > 0 ? `router at ${fmt(input.routerMicrosPerHour)}/h for ${fmtS(input.routerLiveMs)} = ${fmt(router)}` : "router: colocated, $0",
  );
  const total = serverless === null || spot === null ? null : serverless + spot + router;

  // ── Counterfactual 1: the same traffic, all on the serverless provider (no router needed).
  let allServerless: number | null = null;
  const cs = input.counterfactualServerless;
  if (cs && cs.pricePerGpuHourMicros !== null) {
    const all = input.activity.map((a) => ({ t: a.t, busyMs: a.busyMs, requests: a.requests, bucketMs: a.bucketMs }));
    const billed = serverlessBilledMs(all, cs, bucketMs, toMs);
    // Warm workers would have run as long as the deployment's serverless component did, or, without one, as long
    // as the deployment: never the whole range (a spot-only deployment that lived 1 h, viewed over 10 days).
    const warm = cs.minWorkers * Math.max(0, s ? input.serverlessLiveMs : input.deploymentLiveMs);
    allServerless = priceMs(billed.total + warm, cs.gpuCount, cs.pricePerGpuHourMicros);
    explanation.push(
      `all on serverless: ${fmtS(svlBusy + spotBusy)} busy on ${cs.provider} ${cs.gpu}×${cs.gpuCount} at ${fmt(cs.pricePerGpuHourMicros)}/GPU-h → ` +
        `${fmtS(billed.total + warm)} billed = ${fmt(allServerless)} (busy time measured on each backend is assumed to carry over)`,
    );
  } else {
    explanation.push("all on serverless: no serverless price known for this GPU, not computed");
  }

  // ── Counterfactual 2: the same GPU time (spot ready + serverless billed) at on-demand prices.
  let allOnDemand: number | null = null;
  const odSpot = input.onDemandSpotGpuMicros;
  const odSvl = input.onDemandServerlessGpuMicros ?? input.onDemandSpotGpuMicros;
  const svlGpuMs = svlBilledMs + svlWarmMs;
  if ((spotReadyReplicaMs === 0 || odSpot !== null) && (svlGpuMs === 0 || odSvl !== null) && (odSpot !== null || odSvl !== null)) {
    allOnDemand =
      priceMs(spotReadyReplicaMs, sp?.gpuCount ?? 1, odSpot ?? 0) + priceMs(svlGpuMs, s?.gpuCount ?? 1, odSvl ?? 0);
    explanation.push(
      `all on on-demand: ${fmtS(spotReadyReplicaMs)} spot + ${fmtS(svlGpuMs)} serverless GPU time at on-demand ` +
        `${fmt(odSpot)}/${fmt(odSvl)} per GPU-h = ${fmt(allOnDemand)}`,
    );
  } else {
    explanation.push("all on on-demand: no on-demand price known for the GPU(s), not computed");
  }

  const hasData = requests > 0 || svlBusy + spotBusy > 0 || spotReadyReplicaMs > 0;
  let savings: Savings | null = null;
  if (!hasData) {
    explanation.push("no usage reported in this range: savings are not computed");
  } else if (total !== null) {
    const vsS = allServerless === null ? null : allServerless - total;
    const vsO = allOnDemand === null ? null : allOnDemand - total;
    savings = {
      vsServerless: vsS,
      vsServerlessPct: vsS === null || !allServerless ? null : pct(vsS, allServerless),
      vsOnDemand: vsO,
      vsOnDemandPct: vsO === null || !allOnDemand ? null : pct(vsO, allOnDemand),
    };
  }

  return {
    actual: { serverless, spot, router, total },
    counterfactual: { allServerless, allOnDemand },
    savings,
    costPer1MOutputTokens: total === null || outputTokens === 0 ? null : Math.round((total * 1_000_000) / outputTokens),
    usage: {
      requests,
      inputTokens,
      outputTokens,
      serverlessBusyMs: svlBusy,
      spotBusyMs: spotBusy,
      serverlessBilledWorkerMs: svlBilledMs,
      serverlessWarmWorkerMs: svlWarmMs,
      spotReadyReplicaMs,
    },
    explanation,
    buckets: [...buckets.values()].sort((a, b) => a.t - b.t),
  };
}

/**
 * Spend of each key: in every activity bucket, the bucket's attributable serverless (spot) cost is shared
 * among keys by their serverless (spot) busy time in it. Idle costs (warm workers, spot ready with no
 * traffic, router) belong to the deployment and team, not to a key.
 */
export function attributeToKeys(
  buckets: readonly BucketCost[],
  keyActivity: ReadonlyArray<{ t: number; kind: BackendKind; keyId: string; busyMs: number; requests: number }>,
): Map<string, number> {
  const totals = new Map<string, number>(); // `${t}|${kind}` → busy (requests when no busy time)
  const weight = (a: { busyMs: number; requests: number }) => (a.busyMs > 0 ? a.busyMs : a.requests * 1e-3);
  for (const a of keyActivity) {
    const k = `${a.t}|${a.kind}`;
    totals.set(k, (totals.get(k) ?? 0) + weight(a));
  }
  const byT = new Map(buckets.map((b) => [b.t, b]));
  const out = new Map<string, number>();
  for (const a of keyActivity) {
    const b = byT.get(a.t);
    const tot = totals.get(`${a.t}|${a.kind}`) ?? 0;
    if (!b || tot <= 0) continue;
    const share = (a.kind === "serverless" ? b.serverless : b.spot) * (weight(a) / tot);
    out.set(a.keyId, (out.get(a.keyId) ?? 0) + share);
  }
  for (const [k, v] of out) out.set(k, Math.round(v));
  return out;
}
