import type { z } from "zod";

/**
 * The provider contract (DESIGN.md §3.3). Every provider — built-in or plugin — implements `Provider`.
 * `plan` is pure; everything else talks to the provider's API through `ctx` so tests can aim it at fakes.
 */

export type ComponentKind = "serverless" | "spot";

export type ComponentState = "creating" | "ready" | "scaled_to_zero" | "failed" | "gone";

export interface ServerlessScaling {
  /** Workers kept warm (billed even when idle). */
  minWorkers: number;
  maxWorkers: number;
  /** Requests one worker handles at once before the provider scales out. */
  concurrency: number;
  /** Seconds a worker stays up after its last request. */
  idleTimeoutS: number;
  /** Seconds the provider may take to start a worker before the request fails. */
  coldStartTimeoutS: number;
}

export interface SpotScaling {
  minReplicas: number;
  maxReplicas: number;
  targetQpsPerReplica: number;
  upscaleDelayS: number;
  downscaleDelayS: number;
  /** SkyServe readiness_probe.initial_delay_seconds. */
  readinessInitialDelayS: number;
}

export interface EngineSpec {
  kind: "vllm" | "sglang";
  maxModelLen?: number;
  /** "auto" unless the GPU forces something (T4/Turing → "half"). */
  dtype?: "auto" | "half" | "bfloat16" | "float16";
  tensorParallelSize?: number;
  gpuMemoryUtilization?: number;
  quantization?: string;
  /** Extra engine flags, validated (no shell metacharacters) before rendering. */
  extraArgs?: string[];
}

export interface DeploymentSpec {
  /** Stable id of the deployment (e.g. Prisma cuid). */
  deploymentId: string;
  teamId: string;
  /**
   * Deterministic base for every external resource name (lowercase, [a-z0-9-], ≤ 40 chars),
   * e.g. "tuna-qwen-small-k3j9". Providers derive their names from it so steps are idempotent.
   */
  name: string;
  /** Hugging Face model id, e.g. "Qwen/Qwen3-0.6B". */
  model: string;
  /** The model name the engine serves (router `models[]`). */
  servedModelName: string;
  /** Catalog GPU key, e.g. "T4", "L4", "A100-80GB". */
  gpu: string;
  gpuCount: number;
  /** Provider region / location; providers pick a sensible default when absent. */
  region?: string;
  /** Spot only: clouds and regions SkyServe may use (`any_of`). */
  spot?: { clouds: Array<"aws" | "gcp" | "azure">; regions?: string[] };
  engine: EngineSpec;
  serverlessScaling: ServerlessScaling;
  spotScaling: SpotScaling;
  /** Port the engine listens on inside the container. */
  port: number;
  /** Names of secrets the workload needs at run time (e.g. "HF_TOKEN"); values come from the vault. */
  secretNames: string[];
}

/** A provider's plan: pure data, serialisable, stored with the deployment. */
export interface Plan {
  provider: string;
  kind: ComponentKind;
  /** Deterministic external resource name (idempotency key). */
  resourceName: string;
  gpu: { catalogName: string; providerGpuId: string; count: number };
  region: string;
  /** Provider-specific request bodies / CLI args, as they will be sent. */
  request: Record<string, unknown>;
  /** Rendered template files (path → content) that deploy will write or upload. */
  files: Record<string, string>;
  /** Non-secret environment for the workload. */
  env: Record<string, string>;
  /** Secret env names the workload receives from the provider's secret store. */
  secretEnv: string[];
  /** Human-readable notes (e.g. "T4 is Turing: --dtype half"). */
  notes: string[];
}

/** Decrypted credentials, shape validated by the provider's `credentialsSchema`. */
export type Credentials = Record<string, unknown>;

export interface Finding {
  level: "error" | "warning" | "info";
  /** Stable code, e.g. "missing_credentials", "unauthorized", "gpu_unavailable_in_region", "quota", "cli_missing". */
  code: string;
  /** What is wrong and what to do about it. Never contains secrets. */
  message: string;
}

export interface Component {
  provider: string;
  kind: ComponentKind;
  /** Base URL of the OpenAI-compatible server (no trailing slash, no /v1). */
  endpointUrl: string;
  /** Headers the router sends upstream (may contain secrets: stored encrypted by the caller). */
  upstreamHeaders: Record<string, string>;
  /** Provider ids needed by status/destroy (endpoint id, service name, operation ids...). */
  externalIds: Record<string, string>;
}

/** What `status`, `destroy` and `cleanupStorage` need: derivable from the plan alone (half-finished deploys). */
export interface ResourceRef {
  resourceName: string;
  region: string;
  externalIds: Record<string, string>;
}

export interface ComponentStatus {
  state: ComponentState;
  message?: string;
  replicas?: { ready: number; total: number };
  endpointUrl?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ProviderContext {
  /** Override of the provider API base URL(s) (tests point these at fakes). Keyed by the provider's own names. */
  baseUrls?: Record<string, string>;
  fetch?: typeof fetch;
  /** Runs a CLI (Modal, Baseten truss, Cerebrium). Tests pass a fake. */
  exec?: (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number }) => Promise<ExecResult>;
  /** Polling helpers (tests pass instant ones). */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Upper bound for polling async operations. */
  timeoutMs?: number;
  signal?: AbortSignal;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /**
   * The endpoint's current upstream key, when the lifecycle holds one (a re-run or relaunch of an existing
   * resource). Providers that mint upstream keys push this one again instead of rolling a new key, so running
   * replicas keep accepting the router's requests while the resource is updated.
   */
  upstreamKey?: string;
}

export interface Provider {
  name: string;
  displayName: string;
  kind: ComponentKind;
  /**
   * The endpoint is guarded by an upstream key (base/upstream-key.ts): `deploy` pushes `ctx.upstreamKey`, minting
   * one only when none is given. The lifecycle then mints and stores the key before the first deploy call, so
   * overlapping runs of one deploy step push the same key.
   */
  mintsUpstreamKey?: boolean;
  /** zod schema of the credentials this provider needs (vault secret kinds). */
  credentialsSchema: z.ZodType<Credentials>;
  /** Catalog GPU keys this provider can run. */
  supportedGpus(): string[];
  plan(spec: DeploymentSpec): Plan;
  preflight(plan: Plan, creds: Credentials | undefined, ctx?: ProviderContext): Promise<Finding[]>;
  deploy(plan: Plan, creds: Credentials, ctx?: ProviderContext): Promise<Component>;
  status(ref: ResourceRef, creds: Credentials, ctx?: ProviderContext): Promise<ComponentStatus>;
  /** Idempotent: destroying what is gone succeeds. */
  destroy(ref: ResourceRef, creds: Credentials, ctx?: ProviderContext): Promise<void>;
  /** Idempotent: removes images, volumes, buckets, model artifacts. */
  cleanupStorage(ref: ResourceRef, creds: Credentials, ctx?: ProviderContext): Promise<void>;
  /**
   * Optional, for providers whose `Component.upstreamHeaders` expire (Cloud Run ID tokens live 1 h): mints
   * fresh headers for a deployed component from its `ResourceRef` alone. The control plane calls it for every
   * serving component whose stored headers are at least half of `upstreamHeadersTtlMs` old, stores the result
   * encrypted in place of the old headers and publishes a new router config. Components deployed with no
   * headers (a public service) are never refreshed.
   */
  refreshUpstreamHeaders?(ref: ResourceRef, creds: Credentials, ctx?: ProviderContext): Promise<Record<string, string>>;
  /** How long headers from `deploy` or `refreshUpstreamHeaders` stay valid. Required with `refreshUpstreamHeaders`. */
  upstreamHeadersTtlMs?: number;
  /**
   * How long routers keep an idle keep-alive connection to this provider's endpoints for the next request
   * (the snapshot's `connectionIdleMs`). Unset: the router's 4 s, safe in front of uvicorn/vLLM's 5 s. Endpoints
   * behind a managed HTTPS front end use `MANAGED_FRONT_END_IDLE_MS`.
   */
  routerConnectionIdleMs?: number;
}

/**
 * Idle time for connections to endpoints behind a managed HTTPS front end. These keep idle client connections
 * open much longer than 4 s (Cloudflare 400 s, Google's external load balancers 610 s, AWS ALB 60 s by
 * default), and a new connection to them costs a TCP and TLS handshake over the internet, paid again by the
 * first request after every quiet spell. 30 s stays below all of those. A front end that closes sooner is
 * noticed when it closes, and a request that meets the close is sent again on a fresh connection.
 */
export const MANAGED_FRONT_END_IDLE_MS = 30_000;

/** Age at which stored upstream headers are re-minted: half their lifetime leaves room for failed attempts. */
export function upstreamHeadersRefreshAfterMs(p: Pick<Provider, "upstreamHeadersTtlMs">): number | null {
  return p.upstreamHeadersTtlMs && p.upstreamHeadersTtlMs > 0 ? Math.floor(p.upstreamHeadersTtlMs / 2) : null;
}

export function refFromPlan(plan: Plan, externalIds: Record<string, string> = {}): ResourceRef {
  return { resourceName: plan.resourceName, region: plan.region, externalIds };
}
