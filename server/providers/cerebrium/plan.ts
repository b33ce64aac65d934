import { resolveGpu } from "../../catalog";
import { CEREBRIUM_CPU_MEMORY, cerebriumCatalog, cerebriumOffer } from "../../catalog/providers/cerebrium";
import { buildEngineArgs, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";

export const PROVIDER = "cerebrium";
export const CONFIG_FILE = "cerebrium.toml";
export const MAIN_FILE = "main.py";
export const DEFAULT_REGION = "us-east-1";
export const BASE_IMAGE = "nvidia/cuda:12.4.1-runtime-ubuntu22.04";
export const ENGINE_PIP = { vllm: { vllm: "==0.15.1" }, sglang: { "sglang[all]": "==0.5.5" } } as const;

/** A TOML basic string (JSON escapes are TOML escapes; DEL must be escaped in TOML). */
function tomlString(s: string): string {
  return JSON.stringify(s).replace(/\x7f/g, "\\u007F");
}

/** Cerebrium app ids are `<projectId>-<appName>`. */
export function cerebriumAppId(projectId: string, appName: string): string {
  return `${projectId}-${appName}`;
}

export function planCerebrium(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  const gpu = resolveGpu(spec.gpu);
  const offer = cerebriumOffer(gpu.name);
  if (!offer) {
    throw new ProviderError({
      provider: PROVIDER,
      code: "validation",
      message: `${gpu.name} is not offered by Cerebrium; choose one of ${cerebriumCatalog.offers.map((o) => o.gpu).join(", ")}`,
    });
  }
  const appName = `${spec.name}-serverless`;
  const region = spec.region ?? DEFAULT_REGION;
  const sizing = CEREBRIUM_CPU_MEMORY[gpu.name] ?? { cpu: 4, memoryGb: 16 };
  const s = spec.serverlessScaling;
  const pip = ENGINE_PIP[spec.engine.kind] as Record<string, string>;

  const config = renderTemplate("cerebrium/cerebrium.toml.tpl", {
    app_name: appName,
    base_image: BASE_IMAGE,
    port: spec.port,
    // Rendered by code: each argv element is a TOML basic string.
    entrypoint: `[${buildEngineArgs(spec).map(tomlString).join(", ")}]`,
    cpu: sizing.cpu * spec.gpuCount,
    memory_gb: sizing.memoryGb * spec.gpuCount,
    compute: offer.providerGpuId,
    gpu_count: spec.gpuCount,
    region,
    min_replicas: s.minWorkers,
    max_replicas: s.maxWorkers,
    cooldown_s: s.idleTimeoutS,
    concurrency: s.concurrency,
    pip_block: [...Object.entries(pip), ["hf-transfer", "latest"]].map(([k, v]) => `${tomlString(k)} = ${tomlString(v)}`).join("\n"),
  });

  const notes = [...engineNotes(spec)];
  if (offer.note) notes.push(`${gpu.name} on Cerebrium ${offer.note}`);
  if (spec.secretNames.length) {
    notes.push(`Cerebrium secrets are project-wide and managed in its dashboard: ${spec.secretNames.join(", ")} must exist there (injected as env vars)`);
  }

  return {
    provider: PROVIDER,
    kind: "serverless",
    resourceName: appName,
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: spec.gpuCount },
    region,
    request: { deploy: ["cerebrium", "deploy", "-y", "--no-color"], app_name: appName },
    files: {
      [CONFIG_FILE]: config,
      // The custom runtime needs no code; the file only keeps the build context non-empty.
      [MAIN_FILE]: "# Tuna: the engine runs as a custom web server (see cerebrium.toml); no Python code is needed.\n",
    },
    env: {},
    secretEnv: [...spec.secretNames],
    notes,
  };
}
