import { resolveGpu } from "../../catalog";
import { modalCatalog, modalOffer } from "../../catalog/providers/modal";
import { buildEngineArgs, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";
import { assertNoUpstreamKeyClash, engineKeyFlag, UPSTREAM_KEY_ENV } from "../base/upstream-key";

export const PROVIDER = "modal";
export const APP_FILE = "app.py";
/** Function name inside the app (part of the web URL). */
export const FUNCTION_NAME = "serve";
export const ENGINE_PIP = { vllm: "vllm==0.15.1", sglang: "sglang[all]==0.5.5" } as const;
/** Upper bound of one request (a long streamed completion), Modal's function `timeout`. */
export const REQUEST_TIMEOUT_S = 600;

export interface ModalNames {
  app: string;
  secret: string;
  hfCacheVolume: string;
  engineCacheVolume: string;
}

/** Every Modal object a deployment owns, derived from the spec name (so destroy works from the plan alone). */
export function modalNames(resourceName: string): ModalNames {
  return {
    app: resourceName,
    secret: `${resourceName}-secrets`,
    hfCacheVolume: `${resourceName}-hf-cache`,
    engineCacheVolume: `${resourceName}-engine-cache`,
  };
}

export function planModal(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  const gpu = resolveGpu(spec.gpu);
  const offer = modalOffer(gpu.name);
  if (!offer) {
    throw new ProviderError({
      provider: PROVIDER,
      code: "validation",
      message: `${gpu.name} is not offered by Modal; choose one of ${modalCatalog.offers.map((o) => o.gpu).join(", ")}`,
    });
  }
  assertNoUpstreamKeyClash(spec, PROVIDER);
  const resourceName = `${spec.name}-serverless`;
  const names = modalNames(resourceName);
  const s = spec.serverlessScaling;
  const gpuArg = spec.gpuCount > 1 ? `${offer.providerGpuId}:${spec.gpuCount}` : offer.providerGpuId;
  const argv = buildEngineArgs(spec);
  // Always attached: besides the workload secrets it carries the upstream key that deploy mints.
  const secretNames = [names.secret];

  const app = renderTemplate("modal/app.py.tpl", {
    app_name: names.app,
    port: spec.port,
    engine_argv: argv,
    upstream_key_env: UPSTREAM_KEY_ENV,
    engine_key_flag: engineKeyFlag(spec) ?? "",
    secret_names: secretNames,
    engine_pip: ENGINE_PIP[spec.engine.kind],
    hf_cache_volume: names.hfCacheVolume,
    engine_cache_volume: names.engineCacheVolume,
    gpu: gpuArg,
    timeout_s: REQUEST_TIMEOUT_S,
    scaledown_window_s: Math.max(2, s.idleTimeoutS),
    min_containers: s.minWorkers,
    max_containers: s.maxWorkers,
    // Rendered by code from a value the spec schema restricts to [A-Za-z0-9_-]; JSON-quoted regardless.
    region_line: spec.region ? `    region=${JSON.stringify(spec.region)},\n` : "",
    concurrency: s.concurrency,
    // Seconds Modal waits for the engine's port to open (model download + load) before failing a cold start.
    startup_timeout_s: s.coldStartTimeoutS,
  });

  const notes = [
    ...engineNotes(spec),
    `the endpoint only answers requests with this deployment's upstream key (minted at deploy, kept in the Modal Secret ${names.secret}, sent by the router); /health stays open`,
  ];
  if (s.idleTimeoutS < 2) notes.push("Modal's scaledown_window is at least 2 s: idle timeout raised to 2 s");
  if (spec.region) notes.push(`pinned to Modal region ${spec.region} (needs a Team or Enterprise plan; region pinning costs more)`);

  return {
    provider: PROVIDER,
    kind: "serverless",
    resourceName,
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: spec.gpuCount },
    region: spec.region ?? "auto",
    request: {
      deploy: ["modal", "deploy", APP_FILE],
      app: names.app,
      function: FUNCTION_NAME,
      secret: names.secret,
      // Names only: the values (workload secrets and the upstream key) are set at deploy time.
      secretKeys: [...spec.secretNames, UPSTREAM_KEY_ENV],
      volumes: [names.hfCacheVolume, names.engineCacheVolume],
    },
    files: { [APP_FILE]: app },
    env: {},
    secretEnv: [...spec.secretNames],
    notes,
  };
}
