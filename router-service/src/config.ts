// Turns a validated snapshot into lookup tables, reusing backend runtimes across reloads.
import { readFileSync } from "node:fs";
import { BackendRuntime, backendKey, DEFAULTS, type EgressContext, STRICT_EGRESS, type StateChange } from "./backend.js";
import { type ApiKeyConfig, type DeploymentConfig, type RouterSnapshot, routerSnapshotSchema } from "./contract.js";

export interface DeploymentRuntime {
  cfg: DeploymentConfig;
  backends: BackendRuntime[];
  /** Router-local in-flight count for the per-deployment cap. */
  inflight: { n: number };
}

export interface RuntimeConfig {
  version: number;
  snapshot: RouterSnapshot;
  keysByHash: Map<string, ApiKeyConfig>;
  deployments: Map<string, DeploymentRuntime>;
  byTeamModel: Map<string, DeploymentRuntime>;
  byTeamSlug: Map<string, DeploymentRuntime>;
}

export function parseSnapshot(raw: unknown): { ok: true; snapshot: RouterSnapshot } | { ok: false; error: string } {
  const r = routerSnapshotSchema.safeParse(raw);
  if (r.success) return { ok: true, snapshot: r.data };
  // Issue paths and messages only: values may contain secrets (upstream headers).
  const error = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".")}: ${i.message}`)
    .join("; ");
  return { ok: false, error };
}

export function readSnapshotFile(path: string): RouterSnapshot {
  const raw = JSON.parse(readFileSync(path, "utf8"));
  const r = parseSnapshot(raw);
  if (!r.ok) throw new Error(`invalid router config ${path}: ${r.error}`);
  return r.snapshot;
}

/** Owns backend runtimes; `apply` swaps tables atomically (one assignment), in-flight requests keep theirs. */
export class ConfigStore {
  current: RuntimeConfig | undefined;
  private runtimes = new Map<string, BackendRuntime>();
  private inflightByDeployment = new Map<string, { n: number }>();
  /**
   * Backends that left the config with requests still in flight, by identity (deployment, id, URL), until those
   * end: one that comes back meanwhile counts them against its capacity instead of starting at 0.
   */
  private retired = new Map<string, BackendRuntime>();

  constructor(
    private onStateChange: (c: StateChange) => void,
    /** Connect-time checks of `publicOnly` backends (allowlist, refusal reports). */
    private egress: EgressContext = STRICT_EGRESS,
  ) {}

  apply(snapshot: RouterSnapshot): RuntimeConfig {
    const nextRuntimes = new Map<string, BackendRuntime>();
    const deployments = new Map<string, DeploymentRuntime>();
    const byTeamModel = new Map<string, DeploymentRuntime>();
    const byTeamSlug = new Map<string, DeploymentRuntime>();
    const started: BackendRuntime[] = [];
    for (const d of snapshot.deployments) {
      const backends: BackendRuntime[] = [];
      for (const b of d.backends) {
        const key = backendKey(d, b);
        let rt = this.runtimes.get(key);
        if (rt) rt.update(b, d.routing);
        else {
          rt = new BackendRuntime(d.id, b, d.routing, this.onStateChange, DEFAULTS, this.egress);
          const old = this.retired.get(key);
          if (old) {
            rt.succeed(old);
            this.retired.delete(key);
          }
          started.push(rt);
        }
        nextRuntimes.set(key, rt);
        backends.push(rt);
      }
      let inflight = this.inflightByDeployment.get(d.id);
      if (!inflight) {
        inflight = { n: 0 };
        this.inflightByDeployment.set(d.id, inflight);
      }
      const dr: DeploymentRuntime = { cfg: d, backends, inflight };
      deployments.set(d.id, dr);
      // A name claimed twice in a team (the control plane refuses that at creation) goes to the first deployment
      // in snapshot order, the same on every router; it is not a reason to reject every team's routing.
      const slugKey = `${d.teamId}\u0000${d.slug}`;
      if (!byTeamSlug.has(slugKey)) byTeamSlug.set(slugKey, dr);
      for (const m of d.models) if (!byTeamModel.has(`${d.teamId}\u0000${m}`)) byTeamModel.set(`${d.teamId}\u0000${m}`, dr);
    }
    for (const [key, rt] of this.retired) if (rt.load() === 0) this.retired.delete(key);
    for (const [key, rt] of this.runtimes)
      if (!nextRuntimes.has(key)) {
        rt.dispose();
        if (rt.load() > 0) this.retired.set(key, rt);
      }
    for (const id of this.inflightByDeployment.keys())
      if (!deployments.has(id) && (this.inflightByDeployment.get(id)?.n ?? 0) === 0) this.inflightByDeployment.delete(id);
    this.runtimes = nextRuntimes;
    const keysByHash = new Map<string, ApiKeyConfig>();
    for (const k of snapshot.apiKeys) keysByHash.set(k.hash.toLowerCase(), k);
    this.current = { version: snapshot.version, snapshot, keysByHash, deployments, byTeamModel, byTeamSlug };
    for (const rt of started) rt.start();
    return this.current;
  }

  allBackends(): BackendRuntime[] {
    return [...this.runtimes.values()];
  }

  dispose(reason = "router stopped"): void {
    for (const rt of this.runtimes.values()) rt.dispose(reason);
  }
}
