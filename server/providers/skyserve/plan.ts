import { GPUS, resolveGpu, type SpotCloud } from "../../catalog";
import { engineCommandShell, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";
import { assertNoUpstreamKeyClash, engineKeyArgShell, UPSTREAM_KEY_ENV } from "../base/upstream-key";

export const PROVIDER = "skyserve";
export const SERVICE_FILE = "service.yaml";
/** Container images the replica runs the engine in (SkyPilot `image_id: docker:<image>`). */
export const ENGINE_IMAGES = { vllm: "vllm/vllm-openai:v0.15.1", sglang: "lmsysorg/sglang:v0.5.5" } as const;
export const DISK_SIZE_GB = 100;
/**
 * Readiness path of SkyServe's probe. Not `/v1/models`: the engine requires the upstream key there, and the
 * probe cannot send it. vLLM and SGLang open their port only once the model is loaded, so `/health` passes
 * no earlier than `/v1/models` would.
 */
export const READINESS_PATH = "/health";

/** One `any_of` alternative: a cloud, optionally pinned to a region. */
export interface SpotCandidate {
  cloud: SpotCloud;
  region?: string;
}

/** The SkyServe service name of a deployment (deterministic: the idempotency key). */
export function serviceName(spec: Pick<DeploymentSpec, "name">): string {
  return `${spec.name}-spot`;
}

/**
 * Which cloud a region name belongs to, from the naming schemes the three clouds use:
 * AWS `us-east-1` / `us-gov-west-1`, GCP `us-central1` (zones `us-central1-a`), Azure `eastus`, `westus2`.
 */
export function cloudOfRegion(region: string): SpotCloud | undefined {
  if (/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$/.test(region)) return "aws";
  if (/^[a-z]+-[a-z]+\d+(-[a-z])?$/.test(region)) return "gcp";
  if (/^[a-z]+\d*$/.test(region)) return "azure";
  return undefined;
}

/**
 * `spec.spot.clouds × spec.spot.regions`, keeping only the pairs where the region belongs to the cloud
 * (SkyPilot rejects `aws` + `us-central1`). A cloud none of the regions belongs to is left out, with a note,
 * so a region list also works as a data-residency restriction.
 */
export function spotCandidates(spec: DeploymentSpec): { candidates: SpotCandidate[]; notes: string[] } {
  const clouds = [...new Set(spec.spot?.clouds?.length ? spec.spot.clouds : (["aws"] as SpotCloud[]))];
  const regions = [...new Set(spec.spot?.regions ?? [])];
  const notes: string[] = [];
  if (!regions.length) return { candidates: clouds.map((cloud) => ({ cloud })), notes };
  const candidates: SpotCandidate[] = [];
  for (const cloud of clouds) {
    const mine = regions.filter((r) => cloudOfRegion(r) === cloud);
    if (!mine.length) notes.push(`none of the regions ${regions.join(", ")} is a ${cloud} region: ${cloud} is not used`);
    for (const region of mine) candidates.push({ cloud, region });
  }
  const orphan = regions.filter((r) => !clouds.includes(cloudOfRegion(r) as SpotCloud));
  if (orphan.length) notes.push(`region(s) ${orphan.join(", ")} match none of the clouds ${clouds.join(", ")} and are ignored`);
  if (!candidates.length) {
    throw new ProviderError({
      provider: PROVIDER,
      code: "validation",
      message: `no usable spot location: regions ${regions.join(", ")} do not belong to clouds ${clouds.join(", ")}`,
    });
  }
  return { candidates, notes };
}

export function candidateLabel(c: SpotCandidate): string {
  return c.region ? `${c.cloud}/${c.region}` : c.cloud;
}

/** Catalog GPUs SkyPilot can launch. */
export function skyserveGpus(): string[] {
  return GPUS.filter((g) => g.skypilotName).map((g) => g.name);
}

const q = (s: string) => JSON.stringify(s);

/** Renders the service YAML and the request deploy will send. Pure. */
export function planSkyServe(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  const gpu = resolveGpu(spec.gpu);
  if (!gpu.skypilotName) {
    throw new ProviderError({
      provider: PROVIDER,
      code: "validation",
      message: `${gpu.name} is not offered by SkyPilot for spot; choose one of ${skyserveGpus().join(", ")}`,
    });
  }
  assertNoUpstreamKeyClash(spec, PROVIDER);
  const name = serviceName(spec);
  const { candidates, notes } = spotCandidates(spec);
  const accelerators = `${gpu.skypilotName}:${spec.gpuCount}`;
  const s = spec.spotScaling;
  if (!Number.isFinite(s.targetQpsPerReplica) || s.targetQpsPerReplica <= 0) {
    throw new ProviderError({ provider: PROVIDER, code: "validation", message: "spotScaling.targetQpsPerReplica must be a positive number" });
  }

  // No HF_HUB_ENABLE_HF_TRANSFER: the vLLM image does not ship hf_transfer, and huggingface_hub fails when
  // the flag is set without it.
  const env: Record<string, string> = {};
  const envLines = Object.entries(env).map(([k, v]) => `  ${k}: ${q(v)}`);
  const envsBlock = envLines.length ? `envs:\n${envLines.join("\n")}\n\n` : "";
  // Secret names are env-var names (validated by the spec schema); values are added at deploy time only. The
  // upstream key is always one of them: deploy mints it, vLLM reads it from the environment.
  const secretsBlock = `secrets:\n${[...spec.secretNames, UPSTREAM_KEY_ENV].map((n) => `  ${n}: null`).join("\n")}\n\n`;

  const yaml = renderTemplate("skyserve/service.yaml.tpl", {
    service_name: name,
    readiness_path: READINESS_PATH,
    readiness_initial_delay_s: s.readinessInitialDelayS,
    min_replicas: s.minReplicas,
    max_replicas: s.maxReplicas,
    target_qps_per_replica: s.targetQpsPerReplica,
    upscale_delay_s: s.upscaleDelayS,
    downscale_delay_s: s.downscaleDelayS,
    accelerators,
    port: spec.port,
    disk_size_gb: DISK_SIZE_GB,
    image_id: `docker:${ENGINE_IMAGES[spec.engine.kind]}`,
    any_of: candidates.map((c) => `    - {cloud: ${c.cloud}${c.region ? `, region: ${q(c.region)}` : ""}}`).join("\n"),
    envs_block: envsBlock,
    secrets_block: secretsBlock,
    run: `${engineCommandShell(spec)}${engineKeyArgShell(spec)}`,
  });

  const planNotes = [
    ...engineNotes(spec),
    ...notes,
    `the endpoint only answers requests with this deployment's upstream key (minted at deploy, passed as the SkyPilot secret ${UPSTREAM_KEY_ENV}, sent by the router); the readiness probe uses ${READINESS_PATH}`,
  ];
  if (s.minReplicas === 0) planNotes.push("spot scales to zero (min_replicas 0): the first request after idle triggers a replica launch");

  return {
    provider: PROVIDER,
    kind: "spot",
    resourceName: name,
    gpu: { catalogName: gpu.name, providerGpuId: gpu.skypilotName, count: spec.gpuCount },
    region: candidates.map(candidateLabel).join(","),
    request: {
      route: "POST /serve/up",
      service_name: name,
      task_file: SERVICE_FILE,
      accelerator: gpu.skypilotName,
      accelerator_count: spec.gpuCount,
      candidates: candidates.map((c) => ({ ...c })),
    },
    files: { [SERVICE_FILE]: yaml },
    env,
    secretEnv: [...spec.secretNames],
    notes: planNotes,
  };
}

/**
 * The task YAML actually sent to the API server: the plan's file with each `NAME: null` line of the
 * `secrets:` block replaced by the value (the workload secrets and the upstream key). SkyPilot keeps `secrets`
 * out of its dashboard and logs.
 */
export function taskWithSecrets(yaml: string, secretNames: string[], values: Record<string, string>): string {
  let out = yaml;
  for (const n of secretNames) {
    const line = new RegExp(`^  ${n}: null$`, "m");
    if (!line.test(out)) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `secret ${n} is not declared in the service YAML` });
    const v = values[n];
    if (v === undefined) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `secret ${n} has no value in the vault` });
    out = out.replace(line, () => `  ${n}: ${q(v)}`);
  }
  return out;
}
