import { RUNPOD_POOL_BY_GPU, runpodCatalog, runpodOffer } from "../../catalog/providers/runpod";
import { findGpu } from "../../catalog/gpus";
import { buildEngineArgs, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";

export const RUNPOD_WORKER_IMAGE = "runpod/worker-v1-vllm:v2.11.3";
/** Seconds a job may wait in the queue before the QUEUE_DELAY scaler adds a worker (python-tuna default). */
export const RUNPOD_QUEUE_DELAY_S = 4;
export const RUNPOD_DISK_GB = 50;

/** vLLM flags worker-vllm reads under a name other than the flag's upper-snake form. */
const ENV_FOR_FLAG: Record<string, string> = {
  model: "MODEL_NAME",
  "served-model-name": "OPENAI_SERVED_MODEL_NAME_OVERRIDE",
};
/** Flags the worker owns itself (it runs its own server inside RunPod's queue handler). */
const FLAGS_WORKER_OWNS = new Set(["host", "port", "uvicorn-log-level"]);

/**
 * worker-vllm is configured through env vars, not container args, so the engine command from
 * `buildEngineArgs` is translated flag by flag: `--max-model-len 4096` → `MAX_MODEL_LEN=4096`,
 * a bare `--enforce-eager` → `ENFORCE_EAGER=true`, the positional model → `MODEL_NAME`.
 */
export function workerEnvFromEngineArgs(args: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  let i = 0;
  if (args[0] === "vllm" && args[1] === "serve") {
    i = 2;
    if (args[2] && !args[2].startsWith("--")) {
      env.MODEL_NAME = args[2];
      i = 3;
    }
  }
  for (; i < args.length; i++) {
    const tok = args[i];
    if (!tok.startsWith("--")) continue;
    let flag = tok.slice(2);
    let value: string;
    const eq = flag.indexOf("=");
    if (eq >= 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      value = args[++i];
    } else {
      value = "true";
    }
    if (FLAGS_WORKER_OWNS.has(flag)) continue;
    env[ENV_FOR_FLAG[flag] ?? flag.toUpperCase().replace(/-/g, "_")] = value;
  }
  return env;
}

export function runpodEndpointName(spec: Pick<DeploymentSpec, "name">): string {
  return `${spec.name}-serverless`;
}

export function planRunpod(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  const gpu = findGpu(spec.gpu);
  const offer = gpu && runpodOffer(gpu.name);
  const pool = gpu && RUNPOD_POOL_BY_GPU[gpu.name];
  if (!gpu || !offer || !pool) {
    throw new ProviderError({
      provider: "runpod",
      code: "validation",
      message: `GPU ${spec.gpu} is not offered by RunPod serverless (offered: ${runpodCatalog.offers.map((o) => o.gpu).join(", ")})`,
    });
  }
  if (spec.engine.kind !== "vllm") {
    throw new ProviderError({ provider: "runpod", code: "validation", message: `RunPod's worker image runs vLLM only; engine ${spec.engine.kind} is not supported` });
  }
  const env: Record<string, string> = {
    TENSOR_PARALLEL_SIZE: String(spec.gpuCount),
    HF_HUB_ENABLE_HF_TRANSFER: "1",
    ...workerEnvFromEngineArgs(buildEngineArgs(spec)),
    MAX_CONCURRENCY: String(spec.serverlessScaling.concurrency),
  };
  const secretEnv = [...new Set(spec.secretNames)];
  for (const s of secretEnv) delete env[s];

  // Pin the GPU inside its pool: exclude the other catalog GPUs RunPod serves from the same pool.
  const excluded = runpodCatalog.offers
    .filter((o) => o.gpu !== gpu.name && RUNPOD_POOL_BY_GPU[o.gpu] === pool)
    .map((o) => o.providerGpuId);
  const idleTimeoutS = Math.min(3600, Math.max(1, Math.round(spec.serverlessScaling.idleTimeoutS)));
  const name = runpodEndpointName(spec);
  const rendered = renderTemplate("runpod/endpoint.json.tpl", {
    name,
    image: RUNPOD_WORKER_IMAGE,
    gpuPools: [pool],
    gpuExcludedTypes: excluded,
    gpuCount: spec.gpuCount,
    workersMin: spec.serverlessScaling.minWorkers,
    workersMax: spec.serverlessScaling.maxWorkers,
    idleTimeoutS,
    queueDelayS: RUNPOD_QUEUE_DELAY_S,
    dataCenterIds: spec.region ? [spec.region] : [],
    diskGb: RUNPOD_DISK_GB,
    timeoutMs: Math.round(spec.serverlessScaling.coldStartTimeoutS * 1000),
    envJson: JSON.stringify(env),
  });
  const endpoint = JSON.parse(rendered) as Record<string, unknown>;
  // No region means "any data center"; an empty list is not the same thing to the API, so leave it out.
  if (!spec.region) delete endpoint.dataCenterIds;
  if (excluded.length === 0) delete (endpoint.gpu as Record<string, unknown>).excludedTypes;

  const notes = [
    `worker-vllm on pool ${pool}${excluded.length ? ` (excluding ${excluded.join(", ")})` : ""}, ${spec.gpuCount}× ${gpu.name}`,
    "Endpoint URL is the worker's OpenAI-compatible base https://api.runpod.ai/v2/<endpointId>/openai; the router sends the RunPod API key as Bearer.",
  ];
  notes.push(...engineNotes(spec));
  if (secretEnv.length) {
    notes.push(`Secrets ${secretEnv.join(", ")} are added to the endpoint env at deploy time from the vault (RunPod REST v2 documents no secret store); they are not stored in this plan.`);
  }
  if (spec.serverlessScaling.minWorkers > 0) notes.push(`minWorkers=${spec.serverlessScaling.minWorkers}: RunPod bills warm workers continuously.`);

  return {
    provider: "runpod",
    kind: "serverless",
    resourceName: name,
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: spec.gpuCount },
    region: spec.region ?? "",
    request: { endpoint },
    files: { "runpod/endpoint.json": `${JSON.stringify(endpoint, null, 2)}\n` },
    env,
    secretEnv,
    notes,
  };
}
