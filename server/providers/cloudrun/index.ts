import { cloudrunCatalog, cloudrunOffer } from "../../catalog/providers/cloudrun";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import type { Component, ComponentStatus, Credentials, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import {
  addIamBinding,
  cloudrunCredentialsSchema,
  GcpSession,
  gcpBases,
  ID_TOKEN_TTL_MS,
  mintIdToken,
  parseCloudrunCredentials,
  servicesPath,
  waitOperation,
  type CloudRunService,
  type Operation,
} from "./client";
import { cloudrunSecretId, planCloudrun } from "./plan";

function serviceUrl(s: GcpSession, region: string, name?: string): string {
  const base = `${gcpBases(s.ctx).run}/v2/${servicesPath(s.gcp.projectId, region)}`;
  return name ? `${base}/${encodeURIComponent(name)}` : base;
}

function secretUrl(s: GcpSession, secretId?: string): string {
  const base = `${gcpBases(s.ctx).secretmanager}/v1/projects/${encodeURIComponent(s.gcp.projectId)}/secrets`;
  return secretId ? `${base}/${encodeURIComponent(secretId)}` : base;
}

/** Creates (or reuses) the Secret Manager secret, adds the value as a new version, lets `member` read it. */
async function putSecret(s: GcpSession, owner: string, secretId: string, value: string, member: string): Promise<void> {
  try {
    await s.request("POST", `${secretUrl(s)}?secretId=${encodeURIComponent(secretId)}`, `create secret ${secretId}`, {
      replication: { automatic: {} },
      labels: { "managed-by": "tuna", "tuna-service": owner },
    });
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 409)) throw err;
  }
  await s.request("POST", `${secretUrl(s, secretId)}:addVersion`, `add version to secret ${secretId}`, {
    payload: { data: Buffer.from(value, "utf8").toString("base64") },
  });
  await addIamBinding(s, secretUrl(s, secretId), "roles/secretmanager.secretAccessor", member, `secret ${secretId}`);
}

/** The service body minus env-from-secret entries: those secrets are only created by deploy. */
function withoutSecretRefs(service: Record<string, any>): Record<string, any> {
  const copy = structuredClone(service);
  for (const c of copy.template?.containers ?? []) c.env = (c.env ?? []).filter((e: { valueSource?: unknown }) => !e.valueSource);
  return copy;
}

async function preflight(plan: Plan, creds: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const findings: Finding[] = [];
  const offer = cloudrunOffer(plan.gpu.catalogName);
  if (offer && !offer.regions.includes(plan.region)) {
    findings.push({
      level: "error",
      code: "gpu_unavailable_in_region",
      message: `Cloud Run has no ${plan.gpu.catalogName} in ${plan.region}; pick one of ${offer.regions.join(", ")}.`,
    });
  }
  if (!cloudrunCredentialsSchema.safeParse(creds ?? {}).success) {
    findings.push({ level: "error", code: "missing_credentials", message: "No Google service-account key: add one (JSON key with roles/run.admin) to the team's vault." });
    return findings;
  }
  let gcp: ReturnType<typeof parseCloudrunCredentials>;
  try {
    gcp = parseCloudrunCredentials(creds);
  } catch (err) {
    findings.push({ level: "error", code: "missing_credentials", message: (err as Error).message });
    return findings;
  }
  for (const name of plan.secretEnv) {
    if (!gcp.secrets[name]) findings.push({ level: "warning", code: "missing_secret", message: `${name} is not set: gated models will fail to download.` });
  }
  let s: GcpSession;
  try {
    s = await GcpSession.open(creds!, ctx);
  } catch (err) {
    if (err instanceof ProviderError && err.code === "unauthorized") {
      findings.push({ level: "error", code: "unauthorized", message: `Google rejected the service-account key: ${err.message}` });
      return findings;
    }
    throw err;
  }
  // validateOnly runs Cloud Run's own validation (GPU, CPU/memory, quota, permissions) without creating anything.
  try {
    await s.request(
      "POST",
      `${serviceUrl(s, plan.region)}?serviceId=${encodeURIComponent(plan.resourceName)}&validateOnly=true`,
      "validate service",
      withoutSecretRefs((plan.request as { service: Record<string, any> }).service),
    );
    findings.push(credentialsAcceptedFinding("Google Cloud Run"));
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    // Quota and name-collision answers come after Google checked who is asking; they confirm the key too.
    if (err.code === "quota" || err.code === "conflict") findings.push(credentialsAcceptedFinding("Google Cloud Run"));
    const byCode: Record<string, [string, string]> = {
      quota: ["quota", "Not enough Cloud Run GPU quota; request more (zonal redundancy disabled) for this region or lower maxWorkers."],
      unauthorized: ["unauthorized", "The service-account token was rejected."],
      forbidden: ["forbidden", "The service account lacks permission or the Cloud Run API is disabled (enable run.googleapis.com; grant roles/run.admin)."],
      validation: ["invalid_request", "Cloud Run rejected the service definition."],
      conflict: ["exists", "A service with this name exists; deploy will update it."],
    };
    const [code, hint] = byCode[err.code] ?? ["provider_error", "Cloud Run preflight call failed."];
    findings.push({ level: code === "exists" ? "info" : "error", code, message: `${hint} ${err.message}` });
  }
  if (!(plan.request as { public?: boolean }).public) {
    findings.push({ level: "info", code: "private_service", message: "The service is private: the router authenticates with an ID token (valid 1 h) that Tuna re-mints every 30 minutes with this key." });
  }
  return findings;
}

async function upstreamHeadersFor(s: GcpSession, uri: string, isPublic: boolean): Promise<Record<string, string>> {
  if (isPublic) return {};
  return { Authorization: `Bearer ${await mintIdToken(s.gcp, uri, s.ctx)}` };
}

async function deploy(plan: Plan, creds: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const s = await GcpSession.open(creds, ctx);
  const req = plan.request as { serviceId: string; service: Record<string, any>; public?: boolean };
  const service = structuredClone(req.service);
  const runAs = s.gcp.clientEmail;
  for (const name of plan.secretEnv) {
    const value = s.gcp.secrets[name];
    if (value === undefined) {
      // No value in the vault: drop the reference rather than point at a secret that does not exist.
      service.template.containers[0].env = service.template.containers[0].env.filter((e: { name: string }) => e.name !== name);
      continue;
    }
    await putSecret(s, plan.resourceName, cloudrunSecretId(plan.resourceName, name), value, `serviceAccount:${runAs}`);
    service.template.serviceAccount = runAs;
  }

  let op: Operation;
  try {
    op = await s.request<Operation>("POST", `${serviceUrl(s, plan.region)}?serviceId=${encodeURIComponent(req.serviceId)}`, "create service", service);
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 409)) throw err;
    // A previous attempt created it: update in place (same deterministic name).
    op = await s.request<Operation>("PATCH", serviceUrl(s, plan.region, req.serviceId), "update service", service);
  }
  await waitOperation(s, op, "deploy service");
  const svc = await s.request<CloudRunService>("GET", serviceUrl(s, plan.region, req.serviceId), "get service");
  if (!svc.uri) throw new ProviderError({ provider: "cloudrun", code: "failed", message: "service is ready but has no uri" });
  if (req.public) await addIamBinding(s, serviceUrl(s, plan.region, req.serviceId), "roles/run.invoker", "allUsers", "make service public");
  return {
    provider: "cloudrun",
    kind: "serverless",
    endpointUrl: svc.uri.replace(/\/$/, ""),
    upstreamHeaders: await upstreamHeadersFor(s, svc.uri, req.public === true),
    externalIds: { project: s.gcp.projectId, service: req.serviceId, uri: svc.uri, public: String(req.public === true) },
  };
}

async function status(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const s = await GcpSession.open(creds, ctx);
  const svc = await s.requestOrMissing<CloudRunService>("GET", serviceUrl(s, ref.region, ref.resourceName), "get service");
  if (!svc) return { state: "gone", message: "Cloud Run service does not exist" };
  const cond = svc.terminalCondition ?? {};
  const endpointUrl = svc.uri;
  if (cond.state === "CONDITION_FAILED") return { state: "failed", message: cond.message ?? cond.reason ?? "service failed", endpointUrl };
  if (svc.reconciling || cond.state !== "CONDITION_SUCCEEDED") return { state: "creating", message: cond.message ?? "reconciling", endpointUrl };
  // Cloud Run reports no live instance count; a ready service with min 0 instances scales to zero by itself.
  return { state: "ready", endpointUrl };
}

async function destroy(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const s = await GcpSession.open(creds, ctx);
  const op = await s.requestOrMissing<Operation>("DELETE", serviceUrl(s, ref.region, ref.resourceName), "delete service");
  if (op) await waitOperation(s, op, "delete service");
  // Secrets Tuna made for this service, found by label so a half-finished deploy (no ids recorded) is covered.
  let pageToken: string | undefined;
  do {
    const q = new URLSearchParams({ pageSize: "250", ...(pageToken ? { pageToken } : {}) });
    const page = await s.request<{ secrets?: Array<{ name: string; labels?: Record<string, string> }>; nextPageToken?: string }>(
      "GET",
      `${secretUrl(s)}?${q}`,
      "list secrets",
    );
    for (const sec of page.secrets ?? []) {
      if (sec.labels?.["managed-by"] !== "tuna" || sec.labels["tuna-service"] !== ref.resourceName) continue;
      const id = sec.name.split("/").pop() ?? "";
      await s.requestOrMissing("DELETE", secretUrl(s, id), `delete secret ${id}`);
    }
    pageToken = page.nextPageToken || undefined;
  } while (pageToken);
}

/**
 * Re-mints the ID token the router sends to a private service (tokens live 1 h); the control plane calls it
 * through the provider contract (`upstreamHeadersTtlMs`). Public services need none.
 */
async function refreshUpstreamHeaders(ref: ResourceRef, creds: Credentials, ctx: ProviderContext = {}): Promise<Record<string, string>> {
  const gcp = parseCloudrunCredentials(creds);
  if (ref.externalIds.public === "true") return {};
  const uri = ref.externalIds.uri;
  if (!uri) throw new ProviderError({ provider: "cloudrun", code: "validation", message: "no service uri recorded; deploy first" });
  return { Authorization: `Bearer ${await mintIdToken(gcp, uri, ctx)}` };
}

export const cloudrunProvider: Provider & { refreshUpstreamHeaders: typeof refreshUpstreamHeaders } = {
  name: "cloudrun",
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: cloudrunCatalog.displayName,
  kind: "serverless",
  credentialsSchema: cloudrunCredentialsSchema,
  supportedGpus: () => cloudrunCatalog.offers.map((o) => o.gpu),
  plan: planCloudrun,
  preflight,
  deploy,
  status,
  destroy,
  // Images are pulled from Docker Hub and weights downloaded at start; secrets go with `destroy`.
  cleanupStorage: async () => {},
  refreshUpstreamHeaders,
  upstreamHeadersTtlMs: ID_TOKEN_TTL_MS,
};
