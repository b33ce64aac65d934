// Where snapshots come from: a static file (watched for changes) or the control plane
// (polled with If-None-Match). The last good snapshot is kept in memory and on disk, so a router that
// restarts while the control plane is down still serves.
import { mkdirSync, readFileSync, renameSync, unwatchFile, watchFile, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { RouterSnapshot } from "./contract.js";
import { parseSnapshot } from "./config.js";
import type { Logger } from "./log.js";
import type { RouterMetrics } from "./metrics.js";

export interface ConfigSource {
  /** Resolves with the first snapshot (or rejects when there is none at all). */
  start(apply: (s: RouterSnapshot) => void): Promise<void>;
  stop(): void;
}

export class StaticFileSource implements ConfigSource {
  private apply: ((s: RouterSnapshot) => void) | undefined;
  private lastText = "";
  constructor(private path: string, private logger: Logger, private metrics: RouterMetrics, private watchMs = 1000) {}

  async start(apply: (s: RouterSnapshot) => void): Promise<void> {
    this.apply = apply;
    if (!this.reload(true)) throw new Error(`invalid or unreadable config file ${this.path}`);
    watchFile(this.path, { interval: this.watchMs, persistent: false }, () => this.reload(false));
  }

  /** Re-reads the file; an invalid file keeps the current snapshot. */
  reload(first: boolean): boolean {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      this.logger.error({ path: this.path, err: (err as Error).message }, "config file unreadable");
      return false;
    }
    if (!first && text === this.lastText) return true;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.metrics.configRejected.inc();
      this.logger.error({ path: this.path }, "config rejected: not JSON");
      return false;
    }
    const r = parseSnapshot(raw);
    if (!r.ok) {
      this.metrics.configRejected.inc();
      this.logger.error({ path: this.path, issues: r.error }, "config rejected: schema");
      return false;
    }
    this.lastText = text;
    this.apply?.(r.snapshot);
    return true;
  }

  stop(): void {
    unwatchFile(this.path);
  }
}

export interface ControlPlaneSourceOptions {
  url: string;
  token: string;
  cachePath: string;
  pollMs: number;
  logger: Logger;
  metrics: RouterMetrics;
}

export class ControlPlaneSource implements ConfigSource {
  private etag: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private currentVersion = -1;
  constructor(private o: ControlPlaneSourceOptions) {}

  async start(apply: (s: RouterSnapshot) => void): Promise<void> {
    const applyNew = (s: RouterSnapshot) => {
      this.currentVersion = s.version;
      apply(s);
    };
    const first = await this.poll(applyNew);
    if (!first) {
      // Control plane unreachable at boot: serve the last good snapshot from disk. With none, keep polling
      // and answer 503 (readyz not ready) meanwhile: the router is often started alongside the control
      // plane and must not die because it came up first.
      const cached = this.readCache();
      if (cached) {
        this.o.logger.warn({ version: cached.version }, "serving cached config until the control plane answers");
        applyNew(cached);
      } else this.o.logger.warn("no config yet: control plane unreachable and no cached snapshot; retrying");
    }
    const loop = () => {
      if (this.stopped) return;
      this.timer = setTimeout(async () => {
        await this.poll(applyNew);
        loop();
      }, this.o.pollMs);
      this.timer.unref();
    };
    loop();
  }

  /** Returns true when a snapshot is current after the call (new one applied or 304). */
  private async poll(apply: (s: RouterSnapshot) => void): Promise<boolean> {
    try {
      const res = await fetch(`${this.o.url}/api/router/config`, {
        headers: { authorization: `Bearer ${this.o.token}`, ...(this.etag ? { "if-none-match": this.etag } : {}) },
        signal: AbortSignal.timeout(5000),
      });
      if (res.status === 304) {
        await res.arrayBuffer();
        return true;
      }
      if (!res.ok) {
        await res.arrayBuffer().catch(() => undefined);
        this.o.metrics.configFetchErrors.inc();
        this.o.logger.warn({ status: res.status }, "config poll failed");
        return false;
      }
      const text = await res.text();
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        this.o.metrics.configRejected.inc();
        this.o.logger.error("config rejected: not JSON");
        return false;
      }
      const r = parseSnapshot(raw);
      if (!r.ok) {
        this.o.metrics.configRejected.inc();
        this.o.logger.error({ issues: r.error }, "config rejected: schema");
        return false;
      }
      this.etag = res.headers.get("etag") ?? undefined;
      // A stale replica of the control plane must not roll the router back.
      if (r.snapshot.version < this.currentVersion) {
        this.o.logger.warn({ version: r.snapshot.version, current: this.currentVersion }, "ignoring older config version");
        return true;
      }
      apply(r.snapshot);
      this.writeCache(text);
      return true;
    } catch (err) {
      this.o.metrics.configFetchErrors.inc();
      this.o.logger.warn({ err: (err as Error).message }, "config poll failed");
      return false;
    }
  }

  private readCache(): RouterSnapshot | undefined {
    try {
      const r = parseSnapshot(JSON.parse(readFileSync(this.o.cachePath, "utf8")));
      return r.ok ? r.snapshot : undefined;
    } catch {
      return undefined;
    }
  }

  private writeCache(text: string): void {
    try {
      mkdirSync(dirname(this.o.cachePath), { recursive: true });
      const tmp = `${this.o.cachePath}.tmp`;
      // The snapshot holds upstream credentials: owner-only permissions.
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, this.o.cachePath);
    } catch (err) {
      this.o.logger.error({ err: (err as Error).message }, "could not write config cache");
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
