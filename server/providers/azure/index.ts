import { azureCatalog, azureOffer } from "../../catalog/providers/azure";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import type { Component, ComponentStatus, Credentials, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import { ArmSession, azureCredentialsSchema, RESOURCES_API_VERSION } from "./client";
import { azureEnvironmentName, azureSecretName, planAzure, type AzurePlanRequest } from "./plan";

interface ManagedEnvironment {
  id: string;
  name: string;
  location: string;
  tags?: Record<string, string>;
  properties?: { provisioningState?: string; workloadProfiles?: Array<{ name: string; workloadProfileType: string }> };
}

interface ContainerApp {
  id?: string;
  name?: string;
  properties?: {
    provisioningState?: string;
    runningStatus?: string;
    environmentId?: string;
    managedEnvironmentId?: string;
    configuration?: { ingress?: { fqdn?: string } };
  };
}

/** ARM may report "East US" or "eastus". */
const sameRegion = (a: string, b: string) => a.toLowerCase().replace(/\s+/g, "") === b.toLowerCase().replace(/\s+/g, "");

/** An environment in the resource group and region that already has the GPU profile type (Tuna's own first). */
async function findGpuEnvironment(s: ArmSession, region: string, profileType: string): Promise<{ env: ManagedEnvironment; profileName: string } | undefined> {
  const envs = await s.list<ManagedEnvironment>(s.url(`${s.appPrefix}/managedEnvironments`), "list environments");
  const candidates = envs
    .filter((e) => sameRegion(e.location, region) && e.properties?.provisioningState !== "Failed" && e.properties?.provisioningState !== "ScheduledForDelete")
    .flatMap((env) => {
      const p = env.properties?.workloadProfiles?.find((w) => w.workloadProfileType === profileType);
      return p ? [{ env, profileName: p.name }] : [];
    });
  return candidates.find((c) => c.env.name === azureEnvironmentName(region)) ?? candidates[0];
}

async function waitEnvironmentReady(s: ArmSession, name: string): Promise<void> {
  const sleep = s.ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const budget = s.ctx.timeoutMs ?? 45 * 60_000;
  let waited = 0;
  let delay = 5_000;
  for (;;) {
    const env = (await s.call<ManagedEnvironment>("GET", s.url(`${s.appPrefix}/managedEnvironments/${encodeURIComponent(name)}`), "get environment")).body;
    const state = env.properties?.provisioningState;
    if (state === "Succeeded") return;
    if (state === "Failed" || state === "Canceled" || state === "ScheduledForDelete") {
      throw new ProviderError({ provider: "azure", code: "failed", message: `environment ${name} is ${state}` });
    }
    if (waited >= budget) throw new ProviderError({ provider: "azure", code: "timeout", message: `environment ${name} still ${state} after ${Math.round(waited / 1000)} s` });
    await sleep(delay);
    waited += delay;
    delay = Math.min(delay * 2, 30_000);
  }
}

async function preflight(plan: Plan, creds: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const findings: Finding[] = [];
  const req = plan.request as unknown as AzurePlanRequest;
  const offer = azureOffer(plan.gpu.catalogName);
  if (offer && !offer.regions.includes(plan.region)) {
    findings.push({ level: "error", code: "gpu_unavailable_in_region", message: `Azure Container Apps has no ${plan.gpu.catalogName} in ${plan.region}; pick one of ${offer.regions.join(", ")}.` });
  }
  const parsed = azureCredentialsSchema.safeParse(creds ?? {});
  if (!parsed.success) {
    findings.push({ level: "error", code: "missing_credentials", message: "Azure credentials are missing: add a service principal (tenantId, clientId, clientSecret) with subscriptionId and resourceGroup to the team's vault." });
    return findings;
  }
  for (const name of plan.secretEnv) {
    if (!parsed.data.secrets?.[name]) findings.push({ level: "warning", code: "missing_secret", message: `${name} is not set: gated models will fail to download.` });
  }
  let s: ArmSession;
  try {
    s = await ArmSession.open(parsed.data, ctx);
  } catch (err) {
    if (err instanceof ProviderError && err.code === "unauthorized") {
      findings.push({ level: "error", code: "unauthorized", message: `Entra ID rejected the service principal: ${err.message}` });
      return findings;
    }
    throw err;
  }
  const sub = `/subscriptions/${encodeURIComponent(s.creds.subscriptionId)}`;
  const guard = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      const code = err.code === "unauthorized" || err.code === "forbidden" ? err.code : "provider_error";
      findings.push({ level: "error", code, message: err.message });
    }
  };
  await guard(async () => {
    const rg = await s.getOrMissing(s.url(`${sub}/resourcegroups/${encodeURIComponent(s.creds.resourceGroup)}`, RESOURCES_API_VERSION), "get resource group");
    // Entra ID issuing a token is not enough: ARM answering for this subscription confirms the principal.
    findings.push(credentialsAcceptedFinding("Azure"));
    if (!rg) findings.push({ level: "error", code: "resource_group_missing", message: `Resource group ${s.creds.resourceGroup} does not exist in the subscription.` });
  });
  await guard(async () => {
    const types = await s.list<{ name: string }>(
      s.url(`${sub}/providers/Microsoft.App/locations/${encodeURIComponent(plan.region)}/availableManagedEnvironmentsWorkloadProfileTypes`),
      "list workload profile types",
    );
    if (!types.some((t) => t.name === req.workloadProfileType)) {
      findings.push({ level: "error", code: "gpu_unavailable_in_region", message: `Azure reports no ${req.workloadProfileType} workload profile in ${plan.region}.` });
    }
  });
  await guard(async () => {
    // Usage names are not documented in the reference; match the GPU model in the usage's name.
    const token = req.workloadProfileType.includes("T4") ? "T4" : "A100";
    const usages = await s.list<{ name?: { value?: string; localizedValue?: string }; currentValue?: number; limit?: number }>(
      s.url(`${sub}/providers/Microsoft.App/locations/${encodeURIComponent(plan.region)}/usages`),
      "list usages",
    );
    const u = usages.find((x) => new RegExp(token, "i").test(`${x.name?.value ?? ""} ${x.name?.localizedValue ?? ""}`));
    if (u && typeof u.limit === "number" && typeof u.currentValue === "number" && u.limit - u.currentValue < 1) {
      findings.push({
        level: "error",
        code: "quota",
        message: `No ${token} GPU quota left in ${plan.region} (${u.currentValue}/${u.limit} used); request more for Container Apps serverless GPUs.`,
      });
    }
  });
  await guard(async () => {
    const found = await findGpuEnvironment(s, plan.region, req.workloadProfileType);
    findings.push(
      found
        ? { level: "info", code: "environment_reused", message: `Will reuse environment ${found.env.name} (profile ${found.profileName}).` }
        : { level: "info", code: "environment_created", message: `Will create environment ${req.environment.name}; the first deploy can take 30+ minutes.` },
    );
  });
  return findings;
}

async function deploy(plan: Plan, creds: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const s = await ArmSession.open(creds, ctx);
  const req = plan.request as unknown as AzurePlanRequest;
  let env = await findGpuEnvironment(s, plan.region, req.workloadProfileType);
  let created = false;
  if (env && env.env.properties?.provisioningState !== "Succeeded") {
    // Found mid-creation (e.g. a concurrent or interrupted deploy): wait until it can take apps.
    await waitEnvironmentReady(s, env.env.name);
  }
  if (!env) {
    const put = await s.call<ManagedEnvironment>("PUT", s.url(`${s.appPrefix}/managedEnvironments/${encodeURIComponent(req.environment.name)}`), "create environment", req.environment.body);
    await s.waitLro(put, "create environment");
    const got = await s.call<ManagedEnvironment>("GET", s.url(`${s.appPrefix}/managedEnvironments/${encodeURIComponent(req.environment.name)}`), "get environment");
    const profile = got.body.properties?.workloadProfiles?.find((w) => w.workloadProfileType === req.workloadProfileType);
    if (!profile) throw new ProviderError({ provider: "azure", code: "failed", message: `environment ${req.environment.name} has no ${req.workloadProfileType} profile` });
    env = { env: got.body, profileName: profile.name };
    created = true;
  }

  const body = structuredClone(req.app.body);
  body.properties.environmentId = env.env.id;
  body.properties.workloadProfileName = env.profileName;
  const secrets: Array<{ name: string; value?: string }> = body.properties.configuration.secrets;
  const missing = new Set<string>();
  for (const name of plan.secretEnv) {
    const value = s.creds.secrets?.[name];
    const entry = secrets.find((x) => x.name === azureSecretName(name));
    if (value === undefined || !entry) missing.add(name);
    else entry.value = value;
  }
  // No value in the vault: drop the secret and its reference rather than send an empty secret.
  body.properties.configuration.secrets = secrets.filter((x) => x.value !== undefined);
  for (const c of body.properties.template.containers) c.env = (c.env ?? []).filter((e: { name: string }) => !missing.has(e.name));

  const appUrl = s.url(`${s.appPrefix}/containerApps/${encodeURIComponent(req.app.name)}`);
  const put = await s.call<ContainerApp>("PUT", appUrl, "create container app", body);
  await s.waitLro(put, "create container app");
  const app = (await s.call<ContainerApp>("GET", appUrl, "get container app")).body;
  const fqdn = app.properties?.configuration?.ingress?.fqdn;
  if (!fqdn) throw new ProviderError({ provider: "azure", code: "failed", message: `container app ${req.app.name} has no ingress fqdn after provisioning` });
  return {
    provider: "azure",
    kind: "serverless",
    endpointUrl: `https://${fqdn}`,
    upstreamHeaders: {},
    externalIds: { app: req.app.name, environmentName: env.env.name, environmentId: env.env.id, environmentCreated: String(created), fqdn },
  };
}

async function status(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const s = await ArmSession.open(creds, ctx);
  const app = await s.getOrMissing<ContainerApp>(s.url(`${s.appPrefix}/containerApps/${encodeURIComponent(ref.resourceName)}`), "get container app");
  if (!app) return { state: "gone", message: "container app does not exist" };
  const p = app.properties ?? {};
  const fqdn = p.configuration?.ingress?.fqdn;
  const endpointUrl = fqdn ? `https://${fqdn}` : undefined;
  if (p.provisioningState === "Failed" || p.provisioningState === "Canceled") return { state: "failed", message: `provisioning ${p.provisioningState}`, endpointUrl };
  if (p.provisioningState !== "Succeeded") return { state: "creating", message: `provisioning ${p.provisioningState ?? "unknown"}`, endpointUrl };
  if (p.runningStatus === "Stopped" || p.runningStatus === "Suspended") return { state: "failed", message: `app is ${p.runningStatus}`, endpointUrl };
  return { state: "ready", endpointUrl };
}

async function destroy(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const s = await ArmSession.open(creds, ctx);
  const name = ref.externalIds.app ?? ref.resourceName;
  try {
    const res = await s.call("DELETE", s.url(`${s.appPrefix}/containerApps/${encodeURIComponent(name)}`), "delete container app");
    await s.waitLro(res, "delete container app");
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 404)) throw err;
  }
}

/**
 * Deletes the managed environment when Tuna created it (tag `managed-by: tuna`) and no container app uses it any
 * more. Environments Tuna reused, or that other apps still run in, are kept.
 */
async function cleanupStorage(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const s = await ArmSession.open(creds, ctx);
  const envName = ref.externalIds.environmentName ?? azureEnvironmentName(ref.region);
  const envUrl = s.url(`${s.appPrefix}/managedEnvironments/${encodeURIComponent(envName)}`);
  const env = await s.getOrMissing<ManagedEnvironment>(envUrl, "get environment");
  if (!env || env.tags?.["managed-by"] !== "tuna") return;
  const apps = await s.list<ContainerApp>(s.url(`${s.appPrefix}/containerApps`), "list container apps");
  const inUse = apps.some((a) => {
    const id = a.properties?.environmentId ?? a.properties?.managedEnvironmentId ?? "";
    return id.toLowerCase() === env.id.toLowerCase();
  });
  if (inUse) return;
  try {
    const res = await s.call("DELETE", envUrl, "delete environment");
    await s.waitLro(res, "delete environment");
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 404)) throw err;
  }
}

export const azureProvider: Provider = {
  name: "azure",
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: azureCatalog.displayName,
  kind: "serverless",
  credentialsSchema: azureCredentialsSchema,
  supportedGpus: () => azureCatalog.offers.map((o) => o.gpu),
  plan: planAzure,
  preflight,
  deploy,
  status,
  destroy,
  cleanupStorage,
};
