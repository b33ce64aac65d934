// Runtime state of one backend of one deployment: in-flight count, passive/active health and, for spot,
// the COLD → WARMING → READY lifecycle. It survives config reloads while id and URL stay the same, so
// in-flight counters and health are never reset (or leaked) by a new snapshot.
import { type Allowlist, parseAllowlist } from "./address.js";
import type { BackendConfig, BackendState, DeploymentConfig, RoutingConfig } from "./contract.js";
import { type EgressGuard, type EgressRefusedError, egressGuard, type Resolve } from "./egress.js";
import { requestHead, UpstreamPool, validHeader } from "./upstream.js";

export type Lifecycle = "cold" | "warming" | "ready";

export interface StateChange {
  deploymentId: string;
  backendId: string;
  state: BackendState;
  /**
   * Why, for logs and the usage report (the dashboard shows it): made only of fixed words, counts, configured
   * timeouts and failure kinds, never of a URL, header or upstream body. Built only when the state changes.
   */
  reason: string;
  at: Date;
}

export interface BackendDefaults {
  warmupPokeIntervalS: number;
  idleTimeoutS: number;
  warmupTimeoutS: number;
  ejectAfterFailures: number;
  healthCheckIntervalMs: number;
  failbackSuccesses: number;
  minEjectMs: number;
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  responseTimeoutMs: number;
  streamIdleTimeoutMs: number;
  maxInflightPerReplica: number;
}

export const DEFAULTS: BackendDefaults = {
  warmupPokeIntervalS: 5,
  idleTimeoutS: 60,
  warmupTimeoutS: 1200,
  ejectAfterFailures: 3,
  healthCheckIntervalMs: 2000,
  failbackSuccesses: 3,
  minEjectMs: 5000,
  connectTimeoutMs: 2000,
  firstByteTimeoutMs: 120_000,
  responseTimeoutMs: 600_000,
  streamIdleTimeoutMs: 120_000,
  maxInflightPerReplica: 32,
};

/** How `publicOnly` backends' connections are checked (src/egress.ts), and who hears about refusals. */
export interface EgressContext {
  /** Internal addresses / host names the operator allows anyway (the router's `TUNA_ALLOW_PRIVATE_URLS`). */
  allow: Allowlist;
  /** Resolver (tests); default `dns.lookup` with `all: true`. */
  resolve?: Resolve;
  /** Every refused connection; `first`: the first since the backend last connected (log it then, count always). */
  onRefused?(b: BackendRuntime, err: EgressRefusedError, first: boolean): void;
  /** A connection allowed after refusals (the host no longer resolves to an internal address). */
  onAllowedAgain?(b: BackendRuntime, host: string): void;
}

/** No exceptions and nobody told: what a `publicOnly` backend gets when its owner passed no context. */
export const STRICT_EGRESS: EgressContext = { allow: parseAllowlist(undefined) };

const POKE_TIMEOUT_MS = 500;
const PROBE_TIMEOUT_MS = 5000;

export class BackendRuntime {
  inflight = 0;
  lifecycle: Lifecycle;
  ejected = false;
  consecutiveFailures = 0;
  private probeSuccesses = 0;
  private ejectedAt = 0;
  private lastRequestAt = Date.now();
  private reportedReplicas: number | undefined;
  private reportedDraining: boolean | undefined;
  private warmingSince = 0;
  private warmTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastState: BackendState;
  private disposed = false;
  /** Keep-alive connections for proxied requests, probes and warm-up pokes. */
  readonly pool: UpstreamPool;
  readonly origin: URL;
  /** Configured upstream headers, lower-cased once (hot path). */
  upstreamHeaders: Array<[string, string]> = [];
  upstreamHeaderNames: Set<string> = new Set();
  /** `Host` of upstream requests and the origin's path prefix without a trailing slash, computed once. */
  readonly hostHeader: string;
  readonly basePath: string;
  /** Pre-rendered metric label keys of this backend (hot path; owned by the server). */
  metricKeys: unknown;
  /**
   * The runtime this one replaced when the backend left the config and came back (same deployment, id and URL)
   * while requests still ran on the old one: those count against this one's capacity until they end.
   */
  private predecessor: BackendRuntime | undefined;
  /** `publicOnly`: the connect-time check, made on first use; and whether the last connection was refused. */
  private guard: EgressGuard | undefined;
  private egressRefused = false;

  constructor(
    readonly deploymentId: string,
    public cfg: BackendConfig,
    public routing: RoutingConfig,
    private onChange: (c: StateChange) => void,
    private defaults: BackendDefaults = DEFAULTS,
    private egress: EgressContext = STRICT_EGRESS,
  ) {
    this.origin = new URL(cfg.url);
    // Keep-alive pool per backend; no socket cap, since the router's own in-flight bounds apply first.
    const self = this;
    this.pool = new UpstreamPool(this.origin, {
      get connectTimeoutMs() {
        return self.connectTimeoutMs;
      },
      get idleTimeoutMs() {
        return self.cfg.connectionIdleMs;
      },
      // Read by the pool when it opens a connection (not per request); the flag may change with a new snapshot.
      get guard() {
        return self.cfg.publicOnly ? self.egressGuard() : undefined;
      },
    });
    this.lifecycle = cfg.kind === "spot" ? "cold" : "ready";
    this.setHeaders(cfg);
    this.hostHeader = this.origin.host;
    this.basePath = this.origin.pathname.endsWith("/") ? this.origin.pathname.slice(0, -1) : this.origin.pathname;
    this.lastState = this.state();
  }

  private egressGuard(): EgressGuard {
    this.guard ??= egressGuard(
      this.egress.allow,
      {
        refused: (err) => {
          const first = !this.egressRefused;
          this.egressRefused = true;
          this.egress.onRefused?.(this, err, first);
        },
        allowed: (host) => {
          if (!this.egressRefused) return;
          this.egressRefused = false;
          this.egress.onAllowedAgain?.(this, host);
        },
      },
      this.egress.resolve,
    );
    return this.guard;
  }

  private setHeaders(cfg: BackendConfig): void {
    this.upstreamHeaders = lowerHeaders(cfg);
    this.upstreamHeaderNames = new Set(this.upstreamHeaders.map(([k]) => k));
  }

  get id(): string {
    return this.cfg.id;
  }
  get kind(): "serverless" | "spot" {
    return this.cfg.kind;
  }
  private opt<K extends keyof BackendDefaults>(k: K): BackendDefaults[K] {
    const v = (this.routing as Record<string, unknown>)[k];
    return (typeof v === "number" ? v : this.defaults[k]) as BackendDefaults[K];
  }
  get connectTimeoutMs(): number {
    return this.opt("connectTimeoutMs");
  }
  /**
   * Time allowed from sending the request until the answer may go to the client — its first body byte, or for a
   * small JSON answer its whole body — before the attempt counts as failed (and fails over when it can). A
   * stream's first event comes after prefill (engines send its head at once, so a head alone proves nothing):
   * `firstByteTimeoutMs`. A non-streaming answer comes only once it is generated, so it gets the longer limit.
   */
  headTimeoutMs(stream: boolean): number {
    return stream ? this.opt("firstByteTimeoutMs") : Math.max(this.opt("firstByteTimeoutMs"), this.opt("responseTimeoutMs"));
  }

  /**
   * After the attempt committed, the longest the relayed body (a stream, or a large or chunked answer) may go
   * without a byte before the router cuts it as a frozen backend; time paused for a slow client does not count.
   */
  get streamIdleTimeoutMs(): number {
    return this.opt("streamIdleTimeoutMs");
  }

  get draining(): boolean {
    return this.reportedDraining ?? this.cfg.draining ?? false;
  }
  get replicas(): number {
    return this.reportedReplicas ?? this.cfg.replicas ?? 1;
  }
  capacity(): number {
    if (this.kind === "serverless") return this.cfg.maxInflight ?? Number.POSITIVE_INFINITY;
    // A spot backend that passed readiness has at least one replica even if the report says 0 yet.
    const replicas = Math.max(this.replicas, this.lifecycle === "ready" ? 1 : 0);
    return replicas * (this.cfg.maxInflightPerReplica ?? this.defaults.maxInflightPerReplica);
  }
  /** Eligible for new requests, ignoring capacity. */
  available(): boolean {
    return !this.disposed && !this.draining && !this.ejected && this.lifecycle === "ready";
  }
  availableIgnoringHealth(): boolean {
    return !this.disposed && !this.draining && this.lifecycle === "ready";
  }
  hasCapacity(): boolean {
    return (this.predecessor === undefined ? this.inflight : this.load()) < this.capacity();
  }
  /** Requests in flight on this backend, those still running on the runtimes it replaced included. */
  load(): number {
    const p = this.predecessor;
    if (p === undefined) return this.inflight;
    const carried = p.load();
    if (carried === 0) this.predecessor = undefined;
    return this.inflight + carried;
  }
  /** Takes over from the runtime of the same backend that left the config with requests still in flight. */
  succeed(old: BackendRuntime): void {
    if (old !== this && old.load() > 0) this.predecessor = old;
  }
  /** When the current ejection began (epoch ms); undefined while not ejected. */
  ejectedSince(): number | undefined {
    return this.ejected ? this.ejectedAt : undefined;
  }
  state(): BackendState {
    if (this.draining) return "draining";
    if (this.ejected) return "ejected";
    return this.lifecycle;
  }

  /** Starts background work: spot warms up at startup so a scale-to-zero fleet provisions right away. */
  start(): void {
    if (this.kind === "spot") {
      if (this.cfg.replicas === 0) this.emitIfChanged("replicas=0");
      else this.enterWarming("startup");
      const idleMs = this.opt("idleTimeoutS") * 1000;
      this.idleTimer = setInterval(() => this.checkIdle(), Math.max(50, Math.min(idleMs / 4, 5000)));
      this.idleTimer.unref();
    }
  }

  /** Applies a new snapshot's config for the same backend (same id and URL). */
  update(cfg: BackendConfig, routing: RoutingConfig): void {
    const prev = this.cfg;
    const wasDraining = this.draining;
    this.cfg = cfg;
    this.setHeaders(cfg);
    this.routing = routing;
    // Now publicOnly: the open connections were opened unchecked and must not be reused.
    if (cfg.publicOnly && !prev.publicOnly) this.pool.retireConnections();
    // A changed draining flag or replica count in the snapshot is news: it supersedes older runtime reports (a
    // drain notice does not outlive the replicas it was about).
    if (cfg.draining !== prev.draining || cfg.replicas !== prev.replicas) this.reportedDraining = undefined;
    // A drain notice is reported first, under its own reason (while draining, a lifecycle change below does not
    // change the state); its end last, unless a lifecycle change below already moved the state on.
    if (this.draining && !wasDraining) this.emitIfChanged("drain notice in config");
    if (this.kind === "spot" && cfg.replicas !== undefined && cfg.replicas !== prev.replicas) {
      this.reportedReplicas = undefined;
      if (cfg.replicas === 0) this.setLifecycle("cold", "replicas=0 in config");
      else if (this.lifecycle === "cold") this.enterWarming("replicas in config");
    }
    this.emitIfChanged(wasDraining && !this.draining ? "drain lifted in config" : "config");
  }

  /**
   * Stops the backend's background work. The last state this router reported ends here: a closing `cold` event
   * (`reason`) tells the control plane this router's view of the backend is over, so a `ready` it reported last
   * is not taken as lasting after the backend left the config or the router stopped.
   */
  dispose(reason = "removed from config"): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.lastState !== "cold") {
      this.lastState = "cold";
      this.onChange({ deploymentId: this.deploymentId, backendId: this.id, state: "cold", reason, at: new Date() });
    }
    clearTimeout(this.warmTimer);
    clearTimeout(this.healthTimer);
    clearInterval(this.idleTimer);
    // Idle connections close now; those of requests still in flight close when their response ends.
    this.pool.close();
  }

  noteRequest(): void {
    this.lastRequestAt = Date.now();
  }

  /** Replica watcher / preemption notice from outside (admin endpoint or snapshot). */
  report(replicas: number | undefined, draining: boolean | undefined): void {
    const wasDraining = this.draining;
    if (draining !== undefined) this.reportedDraining = draining;
    if (this.draining && !wasDraining) this.emitIfChanged("drain notice reported");
    if (replicas !== undefined) {
      this.reportedReplicas = replicas;
      if (this.kind === "spot") {
        if (replicas === 0) this.setLifecycle("cold", "replicas=0");
        else if (this.lifecycle === "cold") this.enterWarming("replicas reported");
      }
    }
    this.emitIfChanged(wasDraining && !this.draining ? "drain lifted by report" : "report");
  }

  enterWarming(reason: string): void {
    if (this.kind !== "spot" || this.lifecycle !== "cold" || this.disposed) return;
    this.warmingSince = Date.now();
    this.setLifecycle("warming", reason);
    this.warmTick();
  }

  private warmTick(): void {
    if (this.disposed || this.lifecycle !== "warming") return;
    if (Date.now() - this.warmingSince > this.opt("warmupTimeoutS") * 1000) {
      this.setLifecycle("cold", `warmup timeout (${this.opt("warmupTimeoutS")} s)`);
      return;
    }
    // The poke is traffic for a scale-to-zero autoscaler; its result does not matter.
    void probe(this, "/health", POKE_TIMEOUT_MS);
    void probe(this, "/v1/models", PROBE_TIMEOUT_MS).then((ok) => {
      if (this.disposed || this.lifecycle !== "warming") return;
      if (ok) {
        this.consecutiveFailures = 0;
        this.lastRequestAt = Date.now();
        this.setLifecycle("ready", "readiness probe passed");
        return;
      }
      this.warmTimer = setTimeout(() => this.warmTick(), this.opt("warmupPokeIntervalS") * 1000);
      this.warmTimer.unref();
    });
  }

  private checkIdle(): void {
    if (this.lifecycle !== "ready" || this.load() > 0) return;
    if (Date.now() - this.lastRequestAt > this.opt("idleTimeoutS") * 1000) this.setLifecycle("cold", `idle: no requests for ${this.opt("idleTimeoutS")} s`);
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
  }

  /** `kind`: the failure's kind ("connect", "timeout", "status_503"…), a fixed word: it ends up on the dashboard. */
  recordFailure(kind: string): void {
    this.consecutiveFailures++;
    if (!this.ejected && this.consecutiveFailures >= this.opt("ejectAfterFailures")) {
      this.ejected = true;
      this.ejectedAt = Date.now();
      this.probeSuccesses = 0;
      // The kind is the last failure's: the ones before it may have differed.
      this.emitIfChanged(`ejected: ${this.consecutiveFailures} consecutive failures (${kind})`);
      this.scheduleHealthCheck();
    }
  }

  private scheduleHealthCheck(): void {
    clearTimeout(this.healthTimer);
    this.healthTimer = setTimeout(() => void this.healthCheck(), this.opt("healthCheckIntervalMs"));
    this.healthTimer.unref();
  }

  private async healthCheck(): Promise<void> {
    if (this.disposed || !this.ejected) return;
    // Readiness of an OpenAI server is "it lists models"; /health alone passes before vLLM can serve.
    const ok = await probe(this, "/v1/models", PROBE_TIMEOUT_MS);
    if (this.disposed || !this.ejected) return;
    this.probeSuccesses = ok ? this.probeSuccesses + 1 : 0;
    // Hysteresis: several successes in a row and a minimum time out before taking traffic again.
    if (this.probeSuccesses >= this.opt("failbackSuccesses") && Date.now() - this.ejectedAt >= this.opt("minEjectMs")) {
      this.ejected = false;
      this.consecutiveFailures = 0;
      this.emitIfChanged("health checks passed");
      return;
    }
    this.scheduleHealthCheck();
  }

  private setLifecycle(l: Lifecycle, reason: string): void {
    if (this.lifecycle === l) return;
    this.lifecycle = l;
    if (l !== "warming") clearTimeout(this.warmTimer);
    this.emitIfChanged(reason);
  }

  private emitIfChanged(reason: string): void {
    const s = this.state();
    if (s === this.lastState) return;
    this.lastState = s;
    this.onChange({ deploymentId: this.deploymentId, backendId: this.id, state: s, reason, at: new Date() });
  }
}

/** GET on the backend through its pool, with the configured upstream headers; true on a 2xx within the timeout. */
function probe(b: BackendRuntime, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const headers = ["host", b.hostHeader];
    for (const [k, v] of b.upstreamHeaders) headers.push(k, v);
    const timer = setTimeout(() => {
      x.destroy();
      resolve(false);
    }, timeoutMs);
    const x = b.pool.request(requestHead("GET", b.basePath + path, headers), NO_BODY, {
      head(ex) {
        clearTimeout(timer);
        resolve(ex.statusCode >= 200 && ex.statusCode < 300);
        ex.discard();
      },
      fail() {
        clearTimeout(timer);
        resolve(false);
      },
    });
  });
}
const NO_BODY = Buffer.alloc(0);

/** Configured upstream headers, lower-cased; a pair that could not be written safely (CR/LF) is left out. */
function lowerHeaders(cfg: BackendConfig): Array<[string, string]> {
  return Object.entries(cfg.headers ?? {})
    .map(([k, v]): [string, string] => [k.toLowerCase(), v])
    .filter(([k, v]) => validHeader(k, v));
}

export function backendKey(d: DeploymentConfig, b: BackendConfig): string {
  return `${d.id}\u0000${b.id}\u0000${b.url}`;
}
