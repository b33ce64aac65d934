import { z } from "zod";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { codeForStatus, ProviderError, redact } from "../base/errors";
import { DEFAULT_REQUEST_TIMEOUT_MS, type HttpFailure, requestJson, statusRetry, undefinedIfNotFound } from "../base/http";
import type { Credentials, ProviderContext } from "../base/types";

/**
 * Client of RunPod's management REST API v2 (`https://api.runpod.io/v2`) and the serverless runtime API
 * (`https://api.runpod.ai/v2/{endpointId}`). Both take `Authorization: Bearer <api key>`.
 * CRUD is synchronous; readiness comes from the runtime `/health` (provider-apis.md §2).
 */

export const PROVIDER = "runpod";
export const RUNPOD_API_BASE = "https://api.runpod.io/v2";
export const RUNPOD_RUNTIME_BASE = "https://api.runpod.ai/v2";

export const runpodCredentialsSchema = z.object({
  apiKey: z.string().min(1),
  /** Workload secret values from the vault, keyed by name (e.g. HF_TOKEN). */
  secrets: z.record(z.string(), z.string()).optional(),
});
export type RunpodCredentials = z.infer<typeof runpodCredentialsSchema>;

export function parseRunpodCredentials(creds: Credentials | undefined): RunpodCredentials {
  return parseCredentials(runpodCredentialsSchema, creds, { provider: PROVIDER, code: "unauthorized", message: "RunPod credentials need an apiKey" });
}

export function runpodBases(ctx: ProviderContext = {}): { api: string; runtime: string } {
  return {
    api: (ctx.baseUrls?.api ?? RUNPOD_API_BASE).replace(/\/$/, ""),
    runtime: (ctx.baseUrls?.runtime ?? RUNPOD_RUNTIME_BASE).replace(/\/$/, ""),
  };
}

const MAX_ATTEMPTS = 3;

function secretsOf(creds: RunpodCredentials): string[] {
  return sensitiveValues([creds.apiKey], creds.secrets);
}

/** RunPod's error envelope `{ "error": "..." }` (or `{ "error": {...} }`), else the raw text. */
function errorText(f: HttpFailure): string {
  try {
    const body = JSON.parse(f.text) as unknown;
    if (body && typeof body === "object" && "error" in body) {
      const e = (body as { error: unknown }).error;
      return typeof e === "string" ? e : JSON.stringify(e);
    }
  } catch {
    /* not JSON */
  }
  return f.text.slice(0, 500) || f.statusText;
}

export interface RunpodRequest {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  url: string;
  body?: unknown;
  /** Label for messages, e.g. "create endpoint". */
  what: string;
}

/**
 * One API call with error mapping. 429 is retried for every method (the request was not processed), 5xx and
 * network errors only for idempotent methods; waits honour `Retry-After`.
 */
export async function runpodRequest<T>(creds: RunpodCredentials, req: RunpodRequest, ctx: ProviderContext = {}): Promise<T | undefined> {
  const idempotent = req.method === "GET" || req.method === "DELETE";
  const secrets = secretsOf(creds);
  const res = await requestJson<T>({
    provider: PROVIDER,
    ctx,
    what: req.what,
    secrets,
    timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
    method: req.method,
    url: req.url,
    body: req.body,
    headers: { Authorization: `Bearer ${creds.apiKey}` },
    retry: {
      maxAttempts: MAX_ATTEMPTS,
      retryStatus: statusRetry(idempotent),
      retryNetworkError: (attempt) => (idempotent ? 1000 * attempt : undefined),
      retryAfterZero: true,
    },
    toError: (f) =>
      new ProviderError({
        provider: PROVIDER,
        code: codeForStatus(f.status),
        status: f.status,
        message: redact(`${req.what} failed (HTTP ${f.status}): ${errorText(f)}`, secrets),
      }),
  });
  return res.body;
}

export interface RunpodEndpoint {
  id: string;
  name: string;
  type?: string;
  workers?: { min?: number; max?: number; idleTimeout?: number };
  requestUrls?: Record<string, string>;
  env?: Record<string, string>;
  [k: string]: unknown;
}

export async function createEndpoint(creds: RunpodCredentials, body: Record<string, unknown>, ctx?: ProviderContext): Promise<RunpodEndpoint> {
  const { api } = runpodBases(ctx);
  const ep = await runpodRequest<RunpodEndpoint>(creds, { method: "POST", url: `${api}/serverless`, body, what: "create endpoint" }, ctx);
  if (!ep?.id) throw new ProviderError({ provider: PROVIDER, code: "failed", message: "create endpoint: response has no id" });
  return ep;
}

export async function updateEndpoint(creds: RunpodCredentials, id: string, body: Record<string, unknown>, ctx?: ProviderContext): Promise<RunpodEndpoint | undefined> {
  const { api } = runpodBases(ctx);
  return runpodRequest<RunpodEndpoint>(creds, { method: "PATCH", url: `${api}/serverless/${encodeURIComponent(id)}`, body, what: "update endpoint" }, ctx);
}

export async function getEndpoint(creds: RunpodCredentials, id: string, ctx?: ProviderContext): Promise<RunpodEndpoint | undefined> {
  const { api } = runpodBases(ctx);
  return undefinedIfNotFound(runpodRequest<RunpodEndpoint>(creds, { method: "GET", url: `${api}/serverless/${encodeURIComponent(id)}`, what: "get endpoint" }, ctx));
}

/**
 * `GET /v2/serverless` is paginated by cursor (provider-apis.md §2.1), but the reference marks the parameter
 * names **unverified**. Used here: `?cursor=<opaque>` in, `pagination.nextCursor` (null on the last page,
 * `hasNextPage: false`) out, as Runpod's MCP server names them for its list tools, which it says are shaped
 * after the REST API's cursor pagination; a top-level `nextCursor` is read too. Change them here if the API
 * differs.
 */
const LIST_CURSOR_PARAM = "cursor";
type EndpointPage = { endpoints?: RunpodEndpoint[]; pagination?: { nextCursor?: string | null; hasNextPage?: boolean }; nextCursor?: string | null };

function nextCursorOf(page: EndpointPage | undefined): string | undefined {
  if (page?.pagination?.hasNextPage === false) return undefined;
  return page?.pagination?.nextCursor || page?.nextCursor || undefined;
}

/** The endpoints of the account page by page, following the cursor to the last page. */
async function* endpointPages(creds: RunpodCredentials, ctx?: ProviderContext): AsyncGenerator<RunpodEndpoint[]> {
  const { api } = runpodBases(ctx);
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (;;) {
    const url = cursor === undefined ? `${api}/serverless` : `${api}/serverless?${new URLSearchParams({ [LIST_CURSOR_PARAM]: cursor })}`;
    const page = await runpodRequest<EndpointPage>(creds, { method: "GET", url, what: "list endpoints" }, ctx);
    yield page?.endpoints ?? [];
    cursor = nextCursorOf(page);
    if (cursor === undefined) return;
    // A cursor handed back twice would loop for ever (an API that ignores the parameter, say): better to fail.
    if (seen.has(cursor)) throw new ProviderError({ provider: PROVIDER, code: "failed", message: "list endpoints: the API returned the same page cursor twice" });
    seen.add(cursor);
  }
}

/** Every endpoint of the account (all pages). */
export async function listEndpoints(creds: RunpodCredentials, ctx?: ProviderContext): Promise<RunpodEndpoint[]> {
  const out: RunpodEndpoint[] = [];
  for await (const page of endpointPages(creds, ctx)) out.push(...page);
  return out;
}

/**
 * The endpoint with this name on any page of the list, reading pages only until it is found. RunPod's legacy
 * API appended " -fb" to flashboot endpoint names; match both spellings.
 */
export async function findEndpointByName(creds: RunpodCredentials, name: string, ctx?: ProviderContext): Promise<RunpodEndpoint | undefined> {
  for await (const page of endpointPages(creds, ctx)) {
    const hit = page.find((e) => e.name === name || e.name === `${name} -fb`);
    if (hit) return hit;
  }
  return undefined;
}

/** Deletes the endpoint; an endpoint that is already gone counts as deleted. */
export async function deleteEndpoint(creds: RunpodCredentials, id: string, ctx?: ProviderContext): Promise<void> {
  const { api } = runpodBases(ctx);
  await undefinedIfNotFound(runpodRequest(creds, { method: "DELETE", url: `${api}/serverless/${encodeURIComponent(id)}`, what: "delete endpoint" }, ctx));
}

export interface RunpodHealth {
  jobs?: Record<string, number>;
  workers?: { idle?: number; initializing?: number; ready?: number; running?: number; throttled?: number; unhealthy?: number };
}

export async function endpointHealth(creds: RunpodCredentials, id: string, ctx?: ProviderContext): Promise<RunpodHealth> {
  const { runtime } = runpodBases(ctx);
  const h = await runpodRequest<RunpodHealth>(creds, { method: "GET", url: `${runtime}/${encodeURIComponent(id)}/health`, what: "endpoint health" }, ctx);
  return h ?? {};
}

export interface RunpodCatalogGpu {
  id: string;
  displayName?: string;
  memoryInGb?: number;
  pool?: string;
  maxCount?: number;
  /** Per-GPU-hour price (secure cloud); field names in RunPod's response are not confirmed, see below. */
  pricePerHourUsd?: number;
  availability?: string;
  dataCenters: string[];
}

function firstNumber(...vals: unknown[]): number | undefined {
  for (const v of vals) if (typeof v === "number" && Number.isFinite(v)) return v;
  return undefined;
}

/**
 * `GET /v2/catalog/gpus?include=AVAILABILITY&product=SERVERLESS&count=N`. Price and per-DC field names are
 * unverified in the reference, so several plausible spellings are read.
 */
export async function listRunpodGpus(credsIn: Credentials, ctx: ProviderContext = {}, opts: { count?: number } = {}): Promise<RunpodCatalogGpu[]> {
  const creds = parseRunpodCredentials(credsIn);
  const { api } = runpodBases(ctx);
  const q = new URLSearchParams({ include: "AVAILABILITY", product: "SERVERLESS", count: String(opts.count ?? 1) });
  const out = await runpodRequest<unknown>(creds, { method: "GET", url: `${api}/catalog/gpus?${q}`, what: "GPU catalog" }, ctx);
  const items: unknown[] = Array.isArray(out) ? out : Array.isArray((out as { gpus?: unknown[] })?.gpus) ? (out as { gpus: unknown[] }).gpus : [];
  return items.flatMap((raw) => {
    const g = raw as Record<string, unknown>;
    if (typeof g.id !== "string") return [];
    const dcs = Array.isArray(g.dataCenters) ? g.dataCenters : [];
    const dataCenters = dcs.flatMap((d) => {
      if (typeof d === "string") return [d];
      const o = d as Record<string, unknown>;
      if (typeof o?.id !== "string") return [];
      return o.availability === "NONE" ? [] : [o.id];
    });
    return [
      {
        id: g.id,
        displayName: typeof g.displayName === "string" ? g.displayName : undefined,
        memoryInGb: firstNumber(g.memoryInGb),
        pool: typeof g.pool === "string" ? g.pool : undefined,
        maxCount: firstNumber(g.maxCount),
        pricePerHourUsd: firstNumber(g.securePrice, g.price, (g.lowestPrice as Record<string, unknown> | undefined)?.uninterruptablePrice),
        availability: typeof g.availability === "string" ? g.availability : undefined,
        dataCenters,
      },
    ];
  });
}
