import { createHash } from "node:crypto";
import { AZURE_DEFAULT_REGION, AZURE_PROFILE_RESOURCES, azureCatalog, azureOffer } from "../../catalog/providers/azure";
import { findGpu } from "../../catalog/gpus";
import { buildEngineArgs, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import { renderTemplate } from "../base/templates";
import type { DeploymentSpec, Plan } from "../base/types";

export const AZURE_VLLM_IMAGE = "vllm/vllm-openai:v0.15.1";
/** Container Apps caps probe failureThreshold at 10 and periodSeconds at 240. */
const PROBE_FAILURE_THRESHOLD = 10;
const PROBE_INITIAL_DELAY_S = 30;

/** Environment Tuna creates when none in the resource group has the GPU profile (shared by deployments in a region). */
export function azureEnvironmentName(region: string): string {
  return `tuna-gpu-${region}`;
}

/** Container App names are at most 32 characters; longer Tuna names are cut and suffixed with a hash. */
export function azureAppName(name: string): string {
  if (name.length <= 32) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 6);
  return `${name.slice(0, 25).replace(/-+$/, "")}-${hash}`;
}

/** Container Apps secret names: lowercase letters, digits and dashes. */
export function azureSecretName(envName: string): string {
  return envName.toLowerCase().replace(/_/g, "-");
}

function fail(message: string): never {
  throw new ProviderError({ provider: "azure", code: "validation", message });
}

export interface AzurePlanRequest {
  workloadProfileType: string;
  environment: { name: string; body: Record<string, unknown> };
  app: { name: string; body: Record<string, any> };
}

export function planAzure(input: DeploymentSpec): Plan {
  const spec = validateSpec(input);
  if (!/^[a-z]/.test(spec.name)) fail(`Container App names must start with a letter; got "${spec.name}"`);
  const gpu = findGpu(spec.gpu);
  const offer = gpu && azureOffer(gpu.name);
  if (!gpu || !offer) fail(`GPU ${spec.gpu} is not offered by Azure Container Apps (offered: ${azureCatalog.offers.map((o) => o.gpu).join(", ")})`);
  if (spec.gpuCount !== 1 || (spec.engine.tensorParallelSize ?? 1) !== 1) fail("Azure serverless GPU profiles have one GPU per replica: gpuCount and tensorParallelSize must be 1");
  if (spec.engine.kind !== "vllm") fail(`Azure deployments run the vLLM image; engine ${spec.engine.kind} is not supported`);

  const region = spec.region ?? AZURE_DEFAULT_REGION;
  const res = AZURE_PROFILE_RESOURCES[offer.providerGpuId];
  const s = spec.serverlessScaling;
  const [command, ...args] = buildEngineArgs(spec);
  const secretEnv = [...new Set(spec.secretNames)];
  const envName = azureEnvironmentName(region);
  const appBody = JSON.parse(
    renderTemplate("azure/containerapp.json.tpl", {
      location: region,
      deploymentId: spec.deploymentId,
      workloadProfileName: res.profileName,
      port: spec.port,
      secretsJson: JSON.stringify(secretEnv.map((n) => ({ name: azureSecretName(n) }))),
      image: AZURE_VLLM_IMAGE,
      command: [command],
      args,
      envJson: JSON.stringify(secretEnv.map((n) => ({ name: n, secretRef: azureSecretName(n) }))),
      cpu: res.cpu,
      memory: res.memory,
      probeInitialDelayS: PROBE_INITIAL_DELAY_S,
      probePeriodS: Math.min(240, Math.max(1, Math.ceil(s.coldStartTimeoutS / PROBE_FAILURE_THRESHOLD))),
      probeFailureThreshold: PROBE_FAILURE_THRESHOLD,
      minReplicas: s.minWorkers,
      maxReplicas: s.maxWorkers,
      cooldownPeriodS: s.idleTimeoutS,
      concurrentRequests: String(s.concurrency),
    }),
  ) as Record<string, any>;
  const envBody = JSON.parse(renderTemplate("azure/environment.json.tpl", { location: region })) as Record<string, unknown>;
  const request: AzurePlanRequest = {
    workloadProfileType: offer.providerGpuId,
    environment: { name: envName, body: envBody },
    app: { name: azureAppName(spec.name), body: appBody },
  };
  const notes = [
    `Container Apps profile ${offer.providerGpuId} (${res.cpu} vCPU, ${res.memory}) in ${region}`,
    ...engineNotes(spec),
    `Reuses an environment in the resource group that has ${offer.providerGpuId}; otherwise creates ${envName} (can take 30+ min).`,
    "Ingress is external (public URL); the router sends no upstream auth.",
  ];
  if (!offer.regions.includes(region)) notes.push(`${region} does not offer ${gpu.name} on Container Apps`);
  if (secretEnv.length) notes.push(`Secrets ${secretEnv.join(", ")} become Container Apps secrets (${secretEnv.map(azureSecretName).join(", ")}), filled from the vault at deploy time.`);
  return {
    provider: "azure",
    kind: "serverless",
    resourceName: azureAppName(spec.name),
    gpu: { catalogName: gpu.name, providerGpuId: offer.providerGpuId, count: 1 },
    region,
    request: request as unknown as Record<string, unknown>,
    files: {
      "azure/containerapp.json": `${JSON.stringify(appBody, null, 2)}\n`,
      "azure/environment.json": `${JSON.stringify(envBody, null, 2)}\n`,
    },
    env: {},
    secretEnv,
    notes,
  };
}
