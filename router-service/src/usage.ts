// Usage aggregation and delivery. The hot path only bumps in-memory counters; every flush turns them into
// one UsageReport that is written to a bounded on-disk spool before it is sent, so neither a router restart
// nor a control-plane outage loses it. The control plane dedupes by batchId, so resending is safe.
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BackendStateEvent, UsageEntry, UsageReport } from "./contract.js";
import type { Logger } from "./log.js";
import { bucketIndex, LATENCY_BOUNDS_MS, type RouterMetrics } from "./metrics.js";

export interface UsageSample {
  keyId: string;
  deploymentId: string;
  backendId: string;
  backendKind: "serverless" | "spot";
  error: boolean;
  inputTokens: number;
  outputTokens: number;
  latencyMs: number;
  ttftMs: number | undefined;
  busyMs: number;
  /** false for an attempt that failed over: it adds busy time but is not a request of its own. */
  countRequest?: boolean;
}

export class UsageAggregator {
  private entries = new Map<string, UsageEntry>();
  private events: BackendStateEvent[] = [];
  private periodStart = new Date();
  /** When the last report was taken (empty heartbeats included). */
  private lastReportAt = 0;

  record(s: UsageSample): void {
    const k = `${s.keyId}\u0000${s.deploymentId}\u0000${s.backendId}`;
    let e = this.entries.get(k);
    if (!e) {
      e = {
        keyId: s.keyId, deploymentId: s.deploymentId, backendId: s.backendId, backendKind: s.backendKind,
        requests: 0, errors: 0, inputTokens: 0, outputTokens: 0,
        latencyMs: { bounds: LATENCY_BOUNDS_MS, counts: new Array(LATENCY_BOUNDS_MS.length + 1).fill(0) },
        ttftMs: { bounds: LATENCY_BOUNDS_MS, counts: new Array(LATENCY_BOUNDS_MS.length + 1).fill(0) },
        busyMs: 0,
      };
      this.entries.set(k, e);
    }
    e.busyMs += s.busyMs;
    if (s.countRequest === false) return;
    e.requests++;
    if (s.error) e.errors++;
    e.inputTokens += s.inputTokens;
    e.outputTokens += s.outputTokens;
    e.latencyMs.counts[bucketIndex(LATENCY_BOUNDS_MS, s.latencyMs)]++;
    if (s.ttftMs !== undefined) e.ttftMs.counts[bucketIndex(LATENCY_BOUNDS_MS, s.ttftMs)]++;
  }

  event(e: BackendStateEvent): void {
    // Bounded: a flapping backend must not grow memory without limit between flushes.
    if (this.events.length < 10_000) this.events.push(e);
  }

  /**
   * Takes everything recorded since the last drain; undefined when there is nothing to report, unless no report
   * was taken for `heartbeatMs`: then an empty one, so the control plane knows this router is alive and still sees
   * the backends as it last reported (a router that stops reporting is no longer taken to see anything).
   */
  drain(routerId: string, configVersion: number, heartbeatMs = Number.POSITIVE_INFINITY): UsageReport | undefined {
    const periodEnd = new Date();
    if (this.entries.size === 0 && this.events.length === 0 && periodEnd.getTime() - this.lastReportAt < heartbeatMs) {
      this.periodStart = periodEnd;
      return undefined;
    }
    this.lastReportAt = periodEnd.getTime();
    const report: UsageReport = {
      routerId, batchId: randomUUID(), periodStart: this.periodStart.toISOString(), periodEnd: periodEnd.toISOString(),
      configVersion, entries: [...this.entries.values()], events: this.events,
    };
    this.entries = new Map();
    this.events = [];
    this.periodStart = periodEnd;
    return report;
  }
}

export interface UsageReporterOptions {
  url: string | undefined;
  token: string | undefined;
  spoolDir: string;
  maxSpoolFiles: number;
  logger: Logger;
  metrics: RouterMetrics;
  fetchTimeoutMs?: number;
}

export class UsageReporter {
  private sending: Promise<void> | undefined;
  private backoffUntil = 0;
  private failures = 0;
  /** Reports the spool could not take (disk full, read-only, removed): kept in memory, bounded, and sent from there. */
  private unwritten: UsageReport[] = [];
  private lastDiskError = 0;
  /** The spool directory exists (made here or found); until it does, mkdir is retried at each spool. */
  private dirReady = false;

  constructor(private o: UsageReporterOptions) {
    // An unwritable state dir (read-only mount, a file in the way) must not stop the router: reports are kept in
    // memory until the directory can be made.
    this.makeDir();
    this.o.metrics.usageSpooled.set({}, this.spoolFiles().length);
  }

  private makeDir(): boolean {
    if (this.dirReady) return true;
    try {
      mkdirSync(this.o.spoolDir, { recursive: true });
      this.dirReady = true;
    } catch (err) {
      this.diskError(err);
    }
    return this.dirReady;
  }

  private spoolFiles(): string[] {
    // No directory: nothing spooled on disk (its failure was reported when it could not be made).
    if (!this.dirReady) return [];
    // Names start with a zero-padded timestamp, so lexical order is age order.
    try {
      return readdirSync(this.o.spoolDir).filter((f) => f.endsWith(".json")).sort();
    } catch (err) {
      this.diskError(err);
      return [];
    }
  }

  private diskError(err: unknown): void {
    this.o.metrics.usageReports.inc({ result: "spool_failed" });
    // Throttled: a broken disk must not log at every flush.
    const t = Date.now();
    if (t - this.lastDiskError > 5000) {
      this.lastDiskError = t;
      this.o.logger.error({ err: (err as Error).message, dir: this.o.spoolDir, inMemory: this.unwritten.length }, "usage spool not writable: keeping reports in memory");
    }
  }

  /**
   * Writes a report durably (atomic rename) and trims the spool to its bound, oldest first. A disk error never
   * throws: the report stays in memory (same bound) and is written or sent later.
   */
  spool(report: UsageReport): void {
    this.unwritten.push(report);
    while (this.unwritten.length > 0 && this.makeDir()) {
      const r = this.unwritten[0];
      const name = `${String(Date.now()).padStart(15, "0")}-${r.batchId}.json`;
      const tmp = join(this.o.spoolDir, `.${name}.tmp`);
      try {
        writeFileSync(tmp, JSON.stringify(r));
        renameSync(tmp, join(this.o.spoolDir, name));
      } catch (err) {
        // The directory was removed: make it again at the next spool.
        if ((err as NodeJS.ErrnoException).code === "ENOENT") this.dirReady = false;
        this.diskError(err);
        break;
      }
      this.unwritten.shift();
    }
    for (let excess = this.unwritten.length - this.o.maxSpoolFiles; excess > 0; excess--) this.drop(`in memory: ${this.unwritten.shift()?.batchId}`);
    const files = this.spoolFiles();
    const excess = files.length - this.o.maxSpoolFiles;
    for (let i = 0; i < excess; i++) {
      try {
        unlinkSync(join(this.o.spoolDir, files[i]));
      } catch {
        /* already gone */
      }
      this.drop(files[i]);
    }
    this.o.metrics.usageSpooled.set({}, Math.min(files.length, this.o.maxSpoolFiles) + this.unwritten.length);
  }

  private drop(what: string): void {
    this.o.metrics.usageDropped.inc();
    this.o.logger.error({ file: what }, "usage spool full: dropped oldest report");
  }

  /** Sends spooled reports oldest first; stops at the first failure and backs off exponentially. */
  sendSpool(force = false): Promise<void> {
    if (this.sending) return this.sending;
    if (!this.o.url || (!force && Date.now() < this.backoffUntil)) return Promise.resolve();
    this.sending = this.sendAll().finally(() => {
      this.sending = undefined;
    });
    return this.sending;
  }

  private async sendAll(): Promise<void> {
    for (const f of this.spoolFiles()) {
      const path = join(this.o.spoolDir, f);
      let body: string;
      try {
        body = readFileSync(path, "utf8");
      } catch {
        continue;
      }
      if (!(await this.deliver(body))) return;
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
    // Then what the disk could not take, oldest first.
    while (this.unwritten.length > 0) {
      if (!(await this.deliver(JSON.stringify(this.unwritten[0])))) return;
      this.unwritten.shift();
    }
    this.o.metrics.usageSpooled.set({}, this.spoolFiles().length);
  }

  /** One POST; on failure schedules the exponential back-off. */
  private async deliver(body: string): Promise<boolean> {
    const ok = await this.post(body);
    if (!ok) {
      this.failures++;
      this.backoffUntil = Date.now() + Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
      this.o.metrics.usageReports.inc({ result: "retry" });
      return false;
    }
    this.failures = 0;
    this.o.metrics.usageReports.inc({ result: "sent" });
    return true;
  }

  private async post(body: string): Promise<boolean> {
    try {
      const res = await fetch(`${this.o.url}/api/router/usage`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
        body,
        signal: AbortSignal.timeout(this.o.fetchTimeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      // A 4xx other than 408/429 will never succeed; keep it spooled anyway (bounded) but log loudly.
      this.o.logger.warn({ status: res.status }, "usage report refused by control plane");
      return false;
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, "usage report delivery failed");
      return false;
    }
  }
}
