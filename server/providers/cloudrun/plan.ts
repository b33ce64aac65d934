import { CLOUDRUN_DEFAULT_REGION, cloudrunCatalog, cloudrunOffer } from "../../catalog/providers/cloudrun";
import { findGpu } from "../../catalog/gpus";
import { buildEngineArgs, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";

export const CLOUDRUN_VLLM_IMAGE = "vllm/vllm-openai:v0.15.1";
export const CLOUDRUN_PROBE_PERIOD_S = 10;
/** Recommended for L4 (minimum is 4 CPU / 16 GiB). */
const CPU = "8";
const MEMORY = "32Gi";

/** Options a spec does not carry (yet). */
export interface CloudrunOptions {
  /** Grant `roles/run.invoker` to allUsers; otherwise the service is private and the router sends an ID token. */
  public?: boolean;
}
export type CloudrunSpec = DeploymentSpec & { cloudrun?: CloudrunOptions };

/** Secret Manager secret id for one of the service's secret env vars. */
export function cloudrunSecretId(resourceName: string, envName: string): string {
  return `${resourceName}-${envName.toLowerCase().replace(/_/g, "-")}`;
}

function fail(message: string): never {
  throw new ProviderError({ provider: "cloudrun", code: "validation", message });
}

export function planCloudrun(input: CloudrunSpec): Plan {
  const isPublic = input.cloudrun?.public === true;
  const spec = validateSpec(input);
  if (!/^[a-z]/.test(spec.name)) fail(`Cloud Run service names must start with a letter; got "${spec.name}"`);
  const gpu = findGpu(spec.gpu);
  const offer = gpu && cloudrunOffer(gpu.name);
  if (!gpu || !offer) fail(`GPU ${spec.gpu} is not offered by Cloud Run (offered: ${cloudrunCatalog.offers.map((o) => o.gpu).join(", ")})`);
  if (spec.gpuCount !== 1 || (spec.engine.tensorParallelSize ?? 1) !== 1) fail("Cloud Run gives one GPU per instance: gpuCount and tensorParallelSize must be 1");
  if (spec.engine.kind !== "vllm") fail(`Cloud Run deployments run the vLLM image; engine ${spec.engine.kind} is not supported`);

  const region = spec.region ?? CLOUDRUN_DEFAULT_REGION;
  const s = spec.serverlessScaling;
  const [command, ...args] = buildEngineArgs(spec);
  const secretEnv = [...new Set(spec.secretNames)];
  const env = secretEnv.map((name) => ({ name, valueSource: { secretKeyRef: { secret: cloudrunSecretId(spec.name, name), version: "latest" } } }));
  const requestTimeoutS = Math.min(3600, Math.max(1, s.coldStartTimeoutS));
  const rendered = renderTemplate("cloudrun/service.json.tpl", {
    deploymentLabel: spec.deploymentId.toLowerCase().replace(/[^a-z0-9_-]/g, "-").slice(0, 63),
    accelerator: offer.providerGpuId,
    gpuZonalRedundancyDisabled: true,
    minInstances: s.minWorkers,
    maxInstances: s.maxWorkers,
    concurrency: Math.min(1000, s.concurrency),
    requestTimeout: `${requestTimeoutS}s`,
    image: CLOUDRUN_VLLM_IMAGE,
    command: [command],
    args,
    port: spec.port,
    envJson: JSON.stringify(env),
    cpu: CPU,
    memory: MEMORY,
    probePeriodS: CLOUDRUN_PROBE_PERIOD_S,
    // Keep the startup window within an hour, like the request timeout.
    probeFailureThreshold: Math.min(360, Math.max(1, Math.ceil(s.coldStartTimeoutS / CLOUDRUN_PROBE_PERIOD_S))),
  });
  const service = JSON.parse(rendered) as Record<string, unknown>;

  const notes = [
    `Cloud Run ${offer.providerGpuId} in ${region}, ${CPU} CPU / ${MEMORY}, zonal redundancy off (cheaper, separate quota)`,
    ...engineNotes(spec),
  ];
  if (!offer.regions.includes(region)) notes.push(`${region} does not offer ${gpu.name} (regions: ${offer.regions.join(", ")})`);
  if (secretEnv.length) {
    notes.push(`Secrets ${secretEnv.join(", ")} go to Secret Manager (${secretEnv.map((n) => cloudrunSecretId(spec.name, n)).join(", ")}); the service runs as the key's service account, which gets secretAccessor on them.`);
  }
  notes.push(
    isPublic
      ? "Public: allUsers gets roles/run.invoker; the router sends no upstream auth."
      : "Private (default): the router sends a Google ID token for the service URL. ID tokens expire after 1 h; Tuna re-mints it with the team's service-account key every 30 minutes and publishes it to the routers.",
  );
  if (s.minWorkers > 0) notes.push(`minWorkers=${s.minWorkers}: GPU instances stay up and are billed continuously.`);

  return {
    provider: "cloudrun",
    kind: "serverless",
    resourceName: spec.name,
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: 1 },
    region,
    request: { serviceId: spec.name, service, public: isPublic },
    files: { "cloudrun/service.json": `${JSON.stringify(service, null, 2)}\n` },
    env: {},
    secretEnv,
    notes,
  };
}
