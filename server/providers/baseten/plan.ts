import { resolveGpu } from "../../catalog";
import { basetenCatalog, basetenOffer } from "../../catalog/providers/baseten";
import { engineCommandShell, engineNotes, shellQuote, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";

export const PROVIDER = "baseten";
export const CONFIG_FILE = "config.yaml";
/** Baseten accepts a scale-down delay of 0–3600 s. */
export const MAX_SCALE_DOWN_DELAY_S = 3600;
export const ENGINE_IMAGES = { vllm: "vllm/vllm-openai:v0.15.1", sglang: "lmsysorg/sglang:v0.5.5" } as const;

/**
 * Baseten workspace secret that holds a workload secret. `hf_access_token` is the name Baseten's own
 * tooling reads the Hugging Face token from; other names are lowercased.
 */
export function basetenSecretName(envName: string): string {
  return envName === "HF_TOKEN" ? "hf_access_token" : envName.toLowerCase();
}

/**
 * The container's start command: Truss mounts secrets as files under /secrets/<name>, so they are exported
 * into the engine's environment first, then the engine replaces the shell.
 */
export function startCommand(spec: DeploymentSpec): string {
  // Secret names are env-var names (validated by the spec schema): safe to place in the script as is.
  const exports = spec.secretNames.map((n) => `export ${n}="$(cat /secrets/${basetenSecretName(n)} 2>/dev/null)"; `).join("");
  return `sh -c ${shellQuote(`${exports}exec ${engineCommandShell(spec)}`)}`;
}

export function planBaseten(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  const gpu = resolveGpu(spec.gpu);
  const offer = basetenOffer(gpu.name);
  if (!offer) {
    throw new ProviderError({
      provider: PROVIDER,
      code: "validation",
      message: `${gpu.name} is not offered by Baseten; choose one of ${basetenCatalog.offers.map((o) => o.gpu).join(", ")}`,
    });
  }
  const resourceName = `${spec.name}-serverless`;
  const accelerator = spec.gpuCount > 1 ? `${offer.providerGpuId}:${spec.gpuCount}` : offer.providerGpuId;
  const secretNames = spec.secretNames.map(basetenSecretName);
  const s = spec.serverlessScaling;

  const config = renderTemplate("baseten/config.yaml.tpl", {
    model_name: resourceName,
    base_image: ENGINE_IMAGES[spec.engine.kind],
    start_command: startCommand(spec),
    port: spec.port,
    accelerator,
    concurrency: s.concurrency,
    secrets_block: secretNames.length ? `secrets:\n${secretNames.map((n) => `  ${n}: null`).join("\n")}` : "secrets: {}",
  });

  const notes = [...engineNotes(spec)];
  if (s.idleTimeoutS > MAX_SCALE_DOWN_DELAY_S) notes.push(`Baseten's scale_down_delay is at most ${MAX_SCALE_DOWN_DELAY_S} s: idle timeout lowered`);
  if (spec.region) notes.push(`Baseten chooses the region itself: ${spec.region} is ignored`);

  return {
    provider: PROVIDER,
    kind: "serverless",
    resourceName,
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: spec.gpuCount },
    region: "auto",
    request: {
      push: ["truss", "push", ".", "--remote", "baseten", "--publish"],
      secrets: Object.fromEntries(spec.secretNames.map((n) => [n, basetenSecretName(n)])),
      autoscaling_settings: {
        min_replica: s.minWorkers,
        max_replica: s.maxWorkers,
        concurrency_target: s.concurrency,
        scale_down_delay: Math.min(MAX_SCALE_DOWN_DELAY_S, s.idleTimeoutS),
      },
    },
    files: { [CONFIG_FILE]: config },
    env: {},
    secretEnv: [...spec.secretNames],
    notes,
  };
}
