// A small Prometheus text-format registry: counters, gauges and histograms with labels.
// Hand-rolled to keep the router's dependencies minimal and the hot path allocation-light.

type Labels = Record<string, string>;

/** The series key of `labels` for a metric with `names`; callers may pre-render it once and use *Key methods. */
export function labelKey(names: readonly string[], labels: Labels): string {
  let k = "";
  for (const n of names) k += `${n}="${escapeLabel(labels[n] ?? "")}",`;
  return k.slice(0, -1);
}
const NEEDS_ESCAPE = /[\\"\n]/;
function escapeLabel(v: string): string {
  // Hot path: label values are ids that almost never need escaping.
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

abstract class Metric {
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {}
  abstract render(): string;
  protected header(type: string): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${type}\n`;
  }
}

export class Counter extends Metric {
  private values = new Map<string, number>();
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(this.labelNames, labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** Hot path: `key` from labelKey(this.labelNames, …), rendered once by the caller. */
  incKey(key: string, by = 1): void {
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(this.labelNames, labels)) ?? 0;
  }
  render(): string {
    let s = this.header("counter");
    for (const [k, v] of this.values) s += `${this.name}${k ? `{${k}}` : ""} ${v}\n`;
    return s;
  }
}

export class Gauge extends Metric {
  private values = new Map<string, number>();
  private collectors: Array<(g: Gauge) => void> = [];
  set(labels: Labels, v: number): void {
    this.values.set(labelKey(this.labelNames, labels), v);
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(this.labelNames, labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  dec(labels: Labels = {}, by = 1): void {
    this.inc(labels, -by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(this.labelNames, labels)) ?? 0;
  }
  /** Values computed at scrape time (e.g. backend state) replace the stored set. */
  onCollect(fn: (g: Gauge) => void): void {
    this.collectors.push(fn);
  }
  reset(): void {
    this.values.clear();
  }
  render(): string {
    if (this.collectors.length) {
      this.values.clear();
      for (const c of this.collectors) c(this);
    }
    let s = this.header("gauge");
    for (const [k, v] of this.values) s += `${this.name}${k ? `{${k}}` : ""} ${v}\n`;
    return s;
  }
}

export class Histogram extends Metric {
  private series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, labelNames: readonly string[], readonly bounds: readonly number[]) {
    super(name, help, labelNames);
  }
  observe(labels: Labels, v: number): void {
    this.observeKey(labelKey(this.labelNames, labels), v);
  }
  /** Hot path: `k` from labelKey(this.labelNames, …), rendered once by the caller. */
  observeKey(k: string, v: number): void {
    let s = this.series.get(k);
    if (!s) {
      s = { counts: new Array(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    s.counts[bucketIndex(this.bounds, v)]++;
    s.sum += v;
    s.count++;
  }
  render(): string {
    let out = this.header("histogram");
    for (const [k, s] of this.series) {
      let cum = 0;
      const prefix = k ? `${k},` : "";
      for (let i = 0; i < this.bounds.length; i++) {
        cum += s.counts[i];
        out += `${this.name}_bucket{${prefix}le="${this.bounds[i]}"} ${cum}\n`;
      }
      cum += s.counts[this.bounds.length];
      out += `${this.name}_bucket{${prefix}le="+Inf"} ${cum}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}\n${this.name}_count${k ? `{${k}}` : ""} ${s.count}\n`;
    }
    return out;
  }
}

export function bucketIndex(bounds: readonly number[], v: number): number {
  let i = 0;
  while (i < bounds.length && v > bounds[i]) i++;
  return i;
}

/** Latency bounds in seconds (Prometheus convention) and ms (usage reports). */
export const LATENCY_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
export const LATENCY_BOUNDS_MS = LATENCY_BOUNDS_S.map((s) => s * 1000);

export class RouterMetrics {
  readonly requests = new Counter("tuna_router_requests_total", "Requests by deployment, backend and status.", ["deployment", "backend", "status"]);
  readonly latency = new Histogram("tuna_router_request_duration_seconds", "Request latency until the response ends.", ["deployment", "backend"], LATENCY_BOUNDS_S);
  readonly ttft = new Histogram("tuna_router_ttft_seconds", "Time to the first upstream body byte.", ["deployment", "backend"], LATENCY_BOUNDS_S);
  readonly inflight = new Gauge("tuna_router_inflight_requests", "In-flight requests per backend.", ["deployment", "backend"]);
  readonly globalInflight = new Gauge("tuna_router_inflight_total", "In-flight requests in this router.", []);
  readonly backendState = new Gauge("tuna_router_backend_state", "1 for the backend's current state.", ["deployment", "backend", "state"]);
  readonly limitRejections = new Counter("tuna_router_limit_rejections_total", "Requests refused by a limit.", ["limit"]);
  readonly failovers = new Counter("tuna_router_failovers_total", "Requests retried on another backend before the first byte.", ["deployment", "from", "to", "reason"]);
  readonly configVersion = new Gauge("tuna_router_config_version", "Version of the applied config snapshot.", []);
  readonly configRejected = new Counter("tuna_router_config_rejected_total", "Invalid config snapshots rejected.", []);
  readonly configFetchErrors = new Counter("tuna_router_config_fetch_errors_total", "Failed config polls.", []);
  readonly limiterErrors = new Counter("tuna_router_ratelimit_backend_errors_total", "Rate-limit store errors by outcome (fail-open/closed).", ["outcome"]);
  readonly usageReports = new Counter("tuna_router_usage_reports_total", "Usage report deliveries by result.", ["result"]);
  readonly usageSpooled = new Gauge("tuna_router_usage_spool_files", "Usage reports waiting on disk.", []);
  readonly usageDropped = new Counter("tuna_router_usage_dropped_total", "Usage reports dropped because the spool was full.", []);
  readonly upstreamRefused = new Counter(
    "tuna_router_upstream_refused_total", "Connections to publicOnly backends refused: the host is or resolves to an internal address.", ["deployment", "backend"],
  );
  readonly streamIdleTimeouts = new Counter(
    "tuna_router_stream_idle_timeouts_total", "Relayed bodies cut after the commit: no upstream byte for streamIdleTimeoutMs.", ["deployment", "backend"],
  );
  readonly all: Metric[] = [
    this.requests, this.latency, this.ttft, this.inflight, this.globalInflight, this.backendState, this.limitRejections,
    this.failovers, this.configVersion, this.configRejected, this.configFetchErrors, this.limiterErrors,
    this.usageReports, this.usageSpooled, this.usageDropped, this.upstreamRefused, this.streamIdleTimeouts,
  ];
  render(): string {
    return this.all.map((m) => m.render()).join("");
  }
}
