import { fetchRunpodLiveCatalog, runpodCatalog } from "../../catalog/providers/runpod";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import type { Component, ComponentStatus, Credentials, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import {
  createEndpoint,
  deleteEndpoint,
  endpointHealth,
  findEndpointByName,
  getEndpoint,
  parseRunpodCredentials,
  runpodBases,
  runpodCredentialsSchema,
  updateEndpoint,
  type RunpodCredentials,
} from "./client";
import { planRunpod } from "./plan";

function endpointBody(plan: Plan, creds: RunpodCredentials): Record<string, unknown> {
  const body = structuredClone(plan.request.endpoint as Record<string, unknown>);
  const env = { ...((body.env as Record<string, string> | undefined) ?? {}) };
  for (const name of plan.secretEnv) {
    const value = creds.secrets?.[name];
    if (value !== undefined) env[name] = value;
  }
  body.env = env;
  return body;
}

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const findings: Finding[] = [];
  const parsed = runpodCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [{ level: "error", code: "missing_credentials", message: "No RunPod API key: add a RunPod API key (Settings → API Keys) to the team's vault." }];
  }
  const creds = parsed.data;
  for (const name of plan.secretEnv) {
    if (!creds.secrets?.[name]) {
      findings.push({ level: "warning", code: "missing_secret", message: `${name} is not set: gated models will fail to download.` });
    }
  }
  let live: Awaited<ReturnType<typeof fetchRunpodLiveCatalog>>;
  try {
    live = await fetchRunpodLiveCatalog(creds, ctx, { gpuCount: plan.gpu.count });
  } catch (err) {
    if (err instanceof ProviderError && (err.code === "unauthorized" || err.code === "forbidden")) {
      findings.push({ level: "error", code: "unauthorized", message: `RunPod rejected the API key (HTTP ${err.status}). Create a new key with read/write access.` });
      return findings;
    }
    findings.push({ level: "warning", code: "catalog_unavailable", message: `Could not read RunPod's GPU catalog: ${(err as Error).message}` });
    return findings;
  }
  // The catalog call is authenticated: RunPod answering it is what confirms the key.
  findings.push(credentialsAcceptedFinding("RunPod"));
  const offer = live.find((o) => o.gpu === plan.gpu.catalogName);
  const wantedPool = (plan.request.endpoint as { gpu?: { pools?: string[] } }).gpu?.pools?.[0];
  if (offer?.maxGpuCount !== undefined && plan.gpu.count > offer.maxGpuCount) {
    findings.push({ level: "error", code: "quota", message: `RunPod allows at most ${offer.maxGpuCount}× ${plan.gpu.catalogName} per worker; the plan asks for ${plan.gpu.count}.` });
  } else if (!offer || offer.stock === "NONE") {
    findings.push({ level: "warning", code: "gpu_unavailable", message: `RunPod reports no serverless stock for ${plan.gpu.catalogName} right now; workers may queue until capacity frees up.` });
  } else {
    if (plan.region && !offer.dataCenters.includes(plan.region)) {
      findings.push({
        level: "error",
        code: "gpu_unavailable_in_region",
        message: `${plan.gpu.catalogName} is not available in RunPod data center ${plan.region}${offer.dataCenters.length ? ` (available: ${offer.dataCenters.join(", ")})` : ""}.`,
      });
    }
    if (offer.pool && wantedPool && offer.pool !== wantedPool) {
      findings.push({ level: "warning", code: "pool_mismatch", message: `RunPod now serves ${plan.gpu.catalogName} from pool ${offer.pool}, the plan uses ${wantedPool}; re-plan to pick it up.` });
    }
    if (offer.pricePerGpuHourUsd !== null) {
      findings.push({ level: "info", code: "live_price", message: `${plan.gpu.catalogName} on RunPod: $${offer.pricePerGpuHourUsd.toFixed(2)}/GPU-hour, stock ${offer.stock ?? "unknown"}.` });
    }
  }
  return findings;
}

function componentFor(id: string, creds: RunpodCredentials, ctx?: ProviderContext): Component {
  return {
    provider: "runpod",
    kind: "serverless",
    endpointUrl: `${runpodBases(ctx).runtime}/${id}/openai`,
    upstreamHeaders: { Authorization: `Bearer ${creds.apiKey}` },
    externalIds: { endpointId: id },
  };
}

async function deploy(plan: Plan, credsIn: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const creds = parseRunpodCredentials(credsIn);
  const body = endpointBody(plan, creds);
  // The endpoint name is the idempotency key: a retried deploy adopts the endpoint an earlier attempt made.
  let existing = await findEndpointByName(creds, plan.resourceName, ctx);
  if (!existing) {
    try {
      const created = await createEndpoint(creds, body, ctx);
      return componentFor(created.id, creds, ctx);
    } catch (err) {
      if (!(err instanceof ProviderError && err.code === "conflict")) throw err;
      existing = await findEndpointByName(creds, plan.resourceName, ctx);
      if (!existing) throw err;
    }
  }
  // `type` is immutable after create; everything else is a sparse PATCH.
  const { type: _type, name: _name, ...mutable } = body;
  await updateEndpoint(creds, existing.id, mutable, ctx);
  return componentFor(existing.id, creds, ctx);
}

async function resolveEndpointId(ref: ResourceRef, creds: RunpodCredentials, ctx?: ProviderContext): Promise<string | undefined> {
  if (ref.externalIds.endpointId) return ref.externalIds.endpointId;
  return (await findEndpointByName(creds, ref.resourceName, ctx))?.id;
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const creds = parseRunpodCredentials(credsIn);
  const id = await resolveEndpointId(ref, creds, ctx);
  const ep = id ? await getEndpoint(creds, id, ctx) : undefined;
  if (!id || !ep) return { state: "gone", message: "RunPod endpoint does not exist" };
  const endpointUrl = componentFor(id, creds, ctx).endpointUrl;
  // /health answers even when no worker runs, and does not wake one (python-tuna benchmark notes).
  const w = (await endpointHealth(creds, id, ctx)).workers ?? {};
  const up = (w.ready ?? 0) + (w.idle ?? 0) + (w.running ?? 0);
  const total = up + (w.initializing ?? 0) + (w.throttled ?? 0) + (w.unhealthy ?? 0);
  const replicas = { ready: up, total };
  if (up > 0) return { state: "ready", replicas, endpointUrl };
  if ((w.unhealthy ?? 0) > 0) return { state: "failed", message: `${w.unhealthy} worker(s) unhealthy; check the worker logs`, replicas, endpointUrl };
  if ((w.initializing ?? 0) > 0 || (w.throttled ?? 0) > 0) return { state: "creating", message: "workers starting", replicas, endpointUrl };
  return { state: "scaled_to_zero", message: "no workers running; the next request cold-starts one", replicas, endpointUrl };
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const creds = parseRunpodCredentials(credsIn);
  const ids = new Set<string>();
  if (ref.externalIds.endpointId) ids.add(ref.externalIds.endpointId);
  // Also by name: a deploy that failed after create but before returning left no id behind.
  const byName = await findEndpointByName(creds, ref.resourceName, ctx);
  if (byName) ids.add(byName.id);
  for (const id of ids) await deleteEndpoint(creds, id, ctx);
}

export const runpodProvider: Provider = {
  name: "runpod",
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: runpodCatalog.displayName,
  kind: "serverless",
  credentialsSchema: runpodCredentialsSchema,
  supportedGpus: () => runpodCatalog.offers.map((o) => o.gpu),
  plan: planRunpod,
  preflight,
  deploy,
  status,
  destroy,
  // RunPod serverless keeps no images, volumes or artifacts for Tuna: weights download on each cold start.
  cleanupStorage: async () => {},
};
