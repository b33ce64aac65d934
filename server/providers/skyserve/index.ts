import { z } from "zod";
import { checkOutboundUrl, OUTBOUND_POLICIES, OutboundUrlError } from "../../lib/outbound-url";
import { type ServiceRecord, SkyPilotClient } from "../../skypilot";
import { parseCredentials } from "../base/credentials";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import type {
  Component,
  ComponentState,
  ComponentStatus,
  Credentials,
  Finding,
  Plan,
  Provider,
  ProviderContext,
  ResourceRef,
} from "../base/types";
import { mintUpstreamKey, UPSTREAM_KEY_ENV, upstreamKeyHeaders } from "../base/upstream-key";
import { candidateLabel, PROVIDER, planSkyServe, SERVICE_FILE, type SpotCandidate, skyserveGpus, taskWithSecrets } from "./plan";

/**
 * Spot replicas through SkyServe, driven over the SkyPilot API server's REST protocol.
 *
 * Credentials: the API server holds the cloud credentials (AWS/GCP/Azure, configured by its admin and
 * checked with `sky check`); Tuna only needs the server's URL and a service-account token. `secrets` carries
 * the workload secret values (e.g. HF_TOKEN) the caller took from the vault for `plan.secretEnv`.
 *
 * The load balancer's endpoint answers anyone who can reach it, so deploy mints an upstream key
 * (`base/upstream-key.ts`), passes it as the SkyPilot secret `VLLM_API_KEY` and returns it as the router's
 * `authorization` header.
 *
 * Both URLs are tenant-controlled: the API server URL comes from the team's vault (the client checks it before
 * every use, `server/lib/outbound-url.ts`), and the load-balancer endpoint is whatever that server answers, so
 * deploy checks it with the same policy before it becomes a router backend (the router runs in the operator's
 * network). `TUNA_ALLOW_PRIVATE_URLS` lets an operator allow private addresses for both.
 */
export const skyserveCredentialsSchema = z.object({
  apiServerUrl: z.string().regex(/^https?:\/\/[^\s]+$/, { error: "must be an http(s) URL" }),
  token: z.string().min(1).optional(),
  secrets: z.record(z.string(), z.string()).optional(),
});
export type SkyServeCredentials = z.infer<typeof skyserveCredentialsSchema>;

function parseCreds(creds: Credentials | undefined): SkyServeCredentials {
  return parseCredentials(skyserveCredentialsSchema, creds, {
    provider: PROVIDER,
    code: "validation",
    message: (error) => `invalid SkyPilot credentials: ${error.issues.map((i) => `${i.path.join(".") || "(root)"} ${i.message}`).join("; ")}`,
  });
}

/** `extraSecrets`: further values to scrub from errors (the upstream key while a deploy sends it). */
export function skypilotClient(creds: SkyServeCredentials, ctx: ProviderContext = {}, extraSecrets: string[] = []): SkyPilotClient {
  return new SkyPilotClient({
    baseUrl: ctx.baseUrls?.skypilot ?? creds.apiServerUrl,
    token: creds.token,
    providerName: PROVIDER,
    redactValues: [...Object.values(creds.secrets ?? {}), ...extraSecrets],
    fetch: ctx.fetch,
    sleep: ctx.sleep,
    now: ctx.now,
    timeoutMs: ctx.timeoutMs,
    signal: ctx.signal,
  });
}

/** The endpoint label used in messages (the deployment timeline shows them). */
const ENDPOINT_POLICY = { ...OUTBOUND_POLICIES.serviceEndpoint, label: "The SkyServe service endpoint returned by the SkyPilot API server" };

/**
 * The load-balancer endpoint, checked before it is handed to the lifecycle (and from there to the routers): a
 * private, loopback or link-local address (unless allowed by the operator), credentials, `#` or `?` fail the
 * deploy with a `validation` error, which the timeline shows.
 */
export async function checkServiceEndpoint(endpoint: string): Promise<string> {
  try {
    await checkOutboundUrl(endpoint, ENDPOINT_POLICY);
    return endpoint;
  } catch (err) {
    if (!(err instanceof OutboundUrlError)) throw err;
    throw new ProviderError({ provider: PROVIDER, code: err.problem === "unresolvable" ? "unavailable" : "validation", message: err.message });
  }
}

const FAILED_REPLICA = new Set(["FAILED", "FAILED_CLEANUP", "FAILED_INITIAL_DELAY", "FAILED_PROBING", "FAILED_PROVISION", "UNKNOWN"]);
/** Replicas that count toward capacity (launching or serving). */
const LIVE_REPLICA = new Set(["PENDING", "PROVISIONING", "STARTING", "READY", "NOT_READY"]);
const FAILED_SERVICE = new Set(["CONTROLLER_FAILED", "FAILED", "FAILED_CLEANUP"]);

/** SkyServe service + replica states → Tuna's component state. */
export function mapServiceStatus(record: ServiceRecord | undefined): ComponentStatus {
  if (!record) return { state: "gone", message: "no such SkyServe service" };
  const replicas = record.replica_info ?? [];
  const ready = replicas.filter((r) => r.status === "READY").length;
  const total = replicas.filter((r) => LIVE_REPLICA.has(r.status)).length;
  const failed = replicas.filter((r) => FAILED_REPLICA.has(r.status));
  const preempted = replicas.filter((r) => r.status === "PREEMPTED").length;
  const extras: string[] = [];
  if (failed.length) extras.push(`failed replicas: ${failed.map((r) => `${r.replica_id} ${r.status}`).join(", ")}`);
  if (preempted) extras.push(`${preempted} preempted`);
  let state: ComponentState;
  let message = `SkyServe ${record.status}`;
  switch (record.status) {
    case "CONTROLLER_INIT":
    case "REPLICA_INIT":
      state = "creating";
      break;
    case "READY":
      state = ready > 0 ? "ready" : "creating";
      break;
    case "NO_REPLICA":
      // Expected when scaled to zero; when every replica failed, the service cannot serve.
      state = failed.length && total === 0 && !preempted ? "failed" : "scaled_to_zero";
      break;
    case "SHUTTING_DOWN":
      state = "gone";
      message = "SkyServe SHUTTING_DOWN";
      break;
    default:
      state = FAILED_SERVICE.has(record.status) ? "failed" : "creating";
  }
  if (extras.length) message += ` (${extras.join("; ")})`;
  return {
    state,
    message,
    replicas: { ready, total },
    ...(record.endpoint ? { endpointUrl: record.endpoint } : {}),
  };
}

function serviceNameOf(ref: ResourceRef): string {
  return ref.externalIds.serviceName ?? ref.resourceName;
}

async function findService(client: SkyPilotClient, name: string): Promise<ServiceRecord | undefined> {
  return (await client.serveStatus([name])).find((s) => s.name === name);
}

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const parsed = skyserveCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [
      {
        level: "error",
        code: "missing_credentials",
        message: "No SkyPilot API server configured: add its URL and a service-account token (sky_…) to the team's vault.",
      },
    ];
  }
  const creds = parsed.data;
  const client = skypilotClient(creds, ctx);
  const findings: Finding[] = [];

  try {
    await client.checkBaseUrl();
  } catch (err) {
    // A refused URL is a problem with the stored credentials: the vault's "Test" fails, with the reason.
    if (err instanceof ProviderError && err.code === "validation") return [{ level: "error", code: "invalid_credentials", message: err.message.replace(/^skyserve: /, "") }];
    return [preflightError(err)];
  }

  try {
    const health = await client.health();
    if (health.status === "needs_auth") {
      return [
        {
          level: "error",
          code: "unauthorized",
          message: creds.token
            ? "The SkyPilot API server did not accept the service-account token; create a new one (dashboard → Users → Service accounts)."
            : "The SkyPilot API server requires authentication: add a service-account token (sky_…) to the vault.",
        },
      ];
    }
    if (health.status !== "healthy") {
      // Only a status word is repeated: this text is the server's own.
      const shown = /^[A-Za-z_]{1,32}$/.test(health.status) ? health.status : "(not a SkyPilot status)";
      findings.push({ level: "error", code: "server_unhealthy", message: `SkyPilot API server reports status ${shown}.` });
      return findings;
    }
    // needs_auth is how the server refuses a token; healthy means it accepted this one (or needs none).
    findings.push(credentialsAcceptedFinding("The SkyPilot API server"));
  } catch (err) {
    return [preflightError(err)];
  }

  for (const name of plan.secretEnv) {
    if (creds.secrets?.[name] === undefined) {
      findings.push({ level: "error", code: "missing_secret", message: `${name} has no value in the vault; SkyPilot refuses to launch a task with an unset secret.` });
    }
  }

  const candidates = (plan.request.candidates as SpotCandidate[]) ?? [];
  const accelerator = String(plan.request.accelerator);
  const count = Number(plan.request.accelerator_count);
  try {
    const enabled = await client.enabledClouds();
    const usable = candidates.filter((c) => enabled.includes(c.cloud));
    const disabled = [...new Set(candidates.filter((c) => !enabled.includes(c.cloud)).map((c) => c.cloud))];
    if (disabled.length) {
      findings.push({
        level: usable.length ? "warning" : "error",
        code: "cloud_not_enabled",
        message: `The SkyPilot API server has no working credentials for ${disabled.join(", ")} (enabled: ${enabled.join(", ") || "none"}); run \`sky check\` on the server.`,
      });
    }
    if (!usable.length) return findings;

    const offers = (
      await client.listAccelerators({
        nameFilter: `^${accelerator.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`,
        quantityFilter: count,
        clouds: [...new Set(usable.map((c) => c.cloud))],
        allRegions: true,
      })
    )[accelerator] ?? [];
    const spotOffer = (c: SpotCandidate) =>
      offers.some(
        (o) =>
          o.cloud.toLowerCase() === c.cloud &&
          o.acceleratorCount === count &&
          (!c.region || o.region === c.region) &&
          Number.isFinite(o.spotPrice) &&
          o.spotPrice > 0,
      );
    const without = usable.filter((c) => !spotOffer(c));
    if (without.length === usable.length) {
      findings.push({
        level: "error",
        code: "gpu_unavailable_in_region",
        message: `No spot offer for ${accelerator}:${count} in ${usable.map(candidateLabel).join(", ")}; pick other clouds/regions or another GPU.`,
      });
    } else if (without.length) {
      findings.push({
        level: "warning",
        code: "gpu_unavailable_in_region",
        message: `No spot offer for ${accelerator}:${count} in ${without.map(candidateLabel).join(", ")}; SkyServe will use the other locations.`,
      });
    }
  } catch (err) {
    const e = preflightError(err);
    if (e.code === "unauthorized") return [e];
    findings.push({ level: "warning", code: "catalog_unavailable", message: `Could not check GPU availability: ${e.message}` });
  }
  return findings;
}

function preflightError(err: unknown): Finding {
  if (err instanceof ProviderError) {
    if (err.code === "unauthorized" || err.code === "forbidden") {
      return { level: "error", code: "unauthorized", message: `The SkyPilot API server rejected the credentials: ${err.message}` };
    }
    if (err.code === "unavailable" && err.status === undefined) return { level: "error", code: "unreachable", message: err.message };
    if (err.message.includes("version mismatch")) return { level: "error", code: "version_mismatch", message: err.message };
    return { level: "error", code: err.code, message: err.message };
  }
  // Not a ProviderError: no server text to show (and no stack).
  return { level: "error", code: "failed", message: `Could not check the SkyPilot API server: ${err instanceof Error ? err.name : "unknown error"}.` };
}

/** Polls `serve status` until the load balancer has an endpoint (bounded by the client timeout). */
async function waitForEndpoint(client: SkyPilotClient, name: string, ctx: ProviderContext): Promise<string> {
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeoutMs = ctx.timeoutMs ?? 30 * 60_000;
  let waited = 0;
  let delay = 2000;
  for (;;) {
    const rec = await findService(client, name);
    if (!rec) throw new ProviderError({ provider: PROVIDER, code: "failed", message: `service ${name} disappeared while waiting for its endpoint` });
    if (FAILED_SERVICE.has(rec.status)) throw new ProviderError({ provider: PROVIDER, code: "failed", message: `service ${name} is ${rec.status}` });
    if (rec.endpoint) return rec.endpoint;
    if (waited >= timeoutMs) {
      throw new ProviderError({ provider: PROVIDER, code: "timeout", message: `service ${name} has no load-balancer endpoint after ${Math.round(timeoutMs / 1000)} s (still ${rec.status}); deploy again to resume` });
    }
    await sleep(delay);
    waited += delay;
    delay = Math.min(delay * 2, 30_000);
  }
}

async function deploy(plan: Plan, credsIn: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const creds = parseCreds(credsIn);
  const name = plan.resourceName;
  // The key the router already has, on a re-run or relaunch; a first deploy mints one.
  const key = ctx.upstreamKey ?? mintUpstreamKey();
  const client = skypilotClient(creds, ctx, [key]);
  const taskWithKey = (): string => {
    const file = plan.files[SERVICE_FILE];
    if (!file) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `plan has no ${SERVICE_FILE}` });
    return taskWithSecrets(file, [...plan.secretEnv, UPSTREAM_KEY_ENV], { ...(creds.secrets ?? {}), [UPSTREAM_KEY_ENV]: key });
  };
  let endpoint: string | null = null;

  const existing = await findService(client, name);
  if (existing) {
    // Idempotent re-run: the service from an earlier attempt is reused, never created twice.
    if (FAILED_SERVICE.has(existing.status) || existing.status === "SHUTTING_DOWN") {
      throw new ProviderError({
        provider: PROVIDER,
        code: "conflict",
        retryable: existing.status === "SHUTTING_DOWN",
        message: `service ${name} already exists in state ${existing.status}; destroy it before deploying again`,
      });
    }
    // SkyPilot never returns secrets, so the service's key cannot be read back: the reused service gets `key`
    // through `serve update` and the header returned always matches it. When the lifecycle passed the key it
    // holds, that is the same key, and replicas not yet replaced keep accepting the router's requests.
    const task = taskWithKey();
    await client.validate(task);
    await client.serveUpdate(task, name, "rolling");
    endpoint = existing.endpoint;
  } else {
    const task = taskWithKey();
    await client.validate(task);
    try {
      endpoint = (await client.serveUp(task, name)).endpoint;
    } catch (err) {
      // Lost a race with a concurrent attempt: the service exists with that attempt's key; carry on with ours.
      if (!(err instanceof ProviderError && /already exists/i.test(err.message))) throw err;
      await client.serveUpdate(task, name, "rolling");
    }
  }
  if (!endpoint) endpoint = await waitForEndpoint(client, name, ctx);
  await checkServiceEndpoint(endpoint);
  return { provider: PROVIDER, kind: "spot", endpointUrl: endpoint, upstreamHeaders: upstreamKeyHeaders(key), externalIds: { serviceName: name } };
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const client = skypilotClient(parseCreds(credsIn), ctx);
  return mapServiceStatus(await findService(client, serviceNameOf(ref)));
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const client = skypilotClient(parseCreds(credsIn), ctx);
  const name = serviceNameOf(ref);
  const rec = await findService(client, name);
  if (!rec) return;
  // A service whose controller failed cannot shut down cleanly; purge removes its record anyway.
  const purge = rec.status === "FAILED_CLEANUP" || rec.status === "CONTROLLER_FAILED";
  try {
    await client.serveDown([name], { purge });
  } catch (err) {
    if (err instanceof ProviderError && err.code === "not_found") return;
    throw err;
  }
}

async function cleanupStorage(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const client = skypilotClient(parseCreds(credsIn), ctx);
  const prefix = serviceNameOf(ref);
  const listed = (ref.externalIds.buckets ?? "").split(",").filter(Boolean);
  for (const s of await client.storageLs()) {
    if (!(s.name === prefix || s.name.startsWith(`${prefix}-`) || listed.includes(s.name))) continue;
    try {
      await client.storageDelete(s.name);
    } catch (err) {
      if (!(err instanceof ProviderError && err.code === "not_found")) throw err;
    }
  }
}

export const skyserveProvider: Provider = {
  name: PROVIDER,
  displayName: "SkyServe spot (SkyPilot)",
  mintsUpstreamKey: true,
  kind: "spot",
  credentialsSchema: skyserveCredentialsSchema,
  supportedGpus: skyserveGpus,
  plan: planSkyServe,
  preflight,
  deploy,
  status,
  destroy,
  cleanupStorage,
};

export { planSkyServe, serviceName, spotCandidates, taskWithSecrets } from "./plan";
