import { z } from "zod";
import {
  gpuNames,
} from "../../catalog";
import {
  ProviderError,
  registerProvider,
  unregisterProvider,
  validateSpec,
  type Component,
  type ComponentStatus,
  type Credentials,
  type Plan,
  type Provider,
  type ResourceRef,
} from "../../providers";

/**
 * A test Provider that records the resources it holds (endpoint + storage per resource name), counts
 * every call, and fails on demand — the fake the workflow fault-injection tests assert against.
 */
export type Method = "deploy" | "status" | "destroy" | "cleanupStorage";

export interface RecordingProvider extends Provider {
  resources: Map<string, { state: ComponentStatus["state"]; creates: number }>;
  storage: Set<string>;
  calls: Array<{ method: Method; resource: string }>;
  /** `ctx.upstreamKey` of every deploy call (undefined: the provider minted a new key). */
  deployKeys: Array<string | undefined>;
  /** Next `times` calls of `method` throw `error`. */
  failNext(method: Method, error: Error, times?: number): void;
  /** The next deploy call waits, after recording itself, until the returned function is called. */
  holdNextDeploy(): () => void;
  /** Status reports this state for every resource until changed. */
  statusOverride: ComponentStatus["state"] | null;
  held(): number;
  reset(): void;
}

export function createRecordingProvider(name: string, kind: "serverless" | "spot"): RecordingProvider {
  const failures = new Map<Method, { error: Error; times: number }>();
  let minted = 0;
  let deployGate: Promise<void> | null = null;
  const maybeFail = (method: Method) => {
    const f = failures.get(method);
    if (f && f.times > 0) {
      f.times--;
      throw f.error;
    }
  };
  const p: RecordingProvider = {
    name,
    displayName: `Recording ${kind}`,
    mintsUpstreamKey: true,
    kind,
    credentialsSchema: z.object({}) as unknown as z.ZodType<Credentials>,
    supportedGpus: () => gpuNames(),
    plan(input): Plan {
      const spec = validateSpec(input);
      return {
        provider: name,
        kind,
        resourceName: `${spec.name}-${kind === "serverless" ? "svl" : "spot"}`,
        gpu: { catalogName: spec.gpu, providerGpuId: spec.gpu, count: spec.gpuCount },
        region: spec.region ?? "test-1",
        request: {},
        files: {},
        env: {},
        secretEnv: [],
        notes: [],
      };
    },
    async preflight() {
      return [];
    },
    async deploy(plan, _creds, ctx): Promise<Component> {
      p.calls.push({ method: "deploy", resource: plan.resourceName });
      p.deployKeys.push(ctx?.upstreamKey);
      if (deployGate) {
        const gate = deployGate;
        deployGate = null;
        await gate;
      }
      maybeFail("deploy");
      const existing = p.resources.get(plan.resourceName);
      // Create if absent: a retried deploy reuses the resource.
      if (existing) existing.creates += 0;
      else p.resources.set(plan.resourceName, { state: "ready", creates: 1 });
      p.storage.add(plan.resourceName);
      return {
        provider: name,
        kind,
        endpointUrl: `http://127.0.0.1:9/${plan.resourceName}`,
        // Like Modal and SkyServe: the key handed in is pushed again, else a new one is minted.
        upstreamHeaders: { authorization: `Bearer ${ctx?.upstreamKey ?? `tuna_up_rec-${plan.resourceName}-${++minted}`}` },
        externalIds: { id: `ext-${plan.resourceName}` },
      };
    },
    async status(ref: ResourceRef): Promise<ComponentStatus> {
      p.calls.push({ method: "status", resource: ref.resourceName });
      maybeFail("status");
      const r = p.resources.get(ref.resourceName);
      if (!r) return { state: "gone" };
      const state = p.statusOverride ?? r.state;
      return { state, replicas: { ready: state === "ready" ? 1 : 0, total: 1 }, ...(state === "failed" ? { message: "replica lost" } : {}) };
    },
    async destroy(ref: ResourceRef) {
      p.calls.push({ method: "destroy", resource: ref.resourceName });
      maybeFail("destroy");
      p.resources.delete(ref.resourceName);
    },
    async cleanupStorage(ref: ResourceRef) {
      p.calls.push({ method: "cleanupStorage", resource: ref.resourceName });
      maybeFail("cleanupStorage");
      p.storage.delete(ref.resourceName);
    },
    resources: new Map(),
    storage: new Set(),
    calls: [],
    deployKeys: [],
    statusOverride: null,
    holdNextDeploy() {
      let release!: () => void;
      deployGate = new Promise<void>((resolve) => {
        release = resolve;
      });
      return release;
    },
    failNext(method, error, times = 1) {
      failures.set(method, { error, times });
    },
    held() {
      return p.resources.size + p.storage.size;
    },
    reset() {
      p.resources.clear();
      p.storage.clear();
      p.calls.length = 0;
      p.deployKeys.length = 0;
      p.statusOverride = null;
      failures.clear();
      deployGate = null;
    },
  };
  return p;
}

export const recSvl = createRecordingProvider("rec-svl", "serverless");
export const recSpot = createRecordingProvider("rec-spot", "spot");

export function registerRecordingProviders(): void {
  registerProvider(recSvl, { replace: true });
  registerProvider(recSpot, { replace: true });
}

export function unregisterRecordingProviders(): void {
  unregisterProvider(recSvl.name);
  unregisterProvider(recSpot.name);
}

export const permanent = (message: string) => new ProviderError({ provider: "rec", code: "validation", message, status: 400 });
export const transient = (message: string) => new ProviderError({ provider: "rec", code: "unavailable", message, status: 503 });
