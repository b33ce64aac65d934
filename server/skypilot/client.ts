import { createHash } from "node:crypto";
import { STATUS_CODES } from "node:http";
import { checkOutboundUrl, guardedFetch, joinBaseUrl, OUTBOUND_POLICIES, OutboundUrlError } from "../lib/outbound-url";
import { codeForStatus, ProviderError, type ProviderErrorCode, redact } from "../providers/base/errors";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "../providers/base/http";

/**
 * Client of the SkyPilot API server's REST protocol (the server behind `sky` CLI/SDK ≥ 0.10), spoken
 * directly over HTTP so Tuna needs no Python. Protocol notes: shared/reference/provider-apis.md §1.
 *
 * Every call is asynchronous on the server: the POST/GET answers 200 with body `null` and the request id in
 * `X-Skypilot-Request-ID`; the result is fetched with `/api/get`. Because `/api/get` holds the connection until
 * the request ends (launches take minutes), this client polls `/api/status` with backoff (through the
 * injected `sleep`, bounded by `timeoutMs`) and calls `/api/get` only once the request has finished. Every HTTP
 * request, `/api/get` included, is therefore short and carries its own timeout (`requestTimeoutMs`), so a server
 * that accepts the connection and never answers cannot hold a deploy, a status check or a price query.
 *
 * The API server URL comes from a tenant's vault, so it is an outbound URL under `server/lib/outbound-url.ts`:
 * checked before the first request (no private/loopback address unless the operator allowed it in
 * `TUNA_ALLOW_PRIVATE_URLS`, no `user:pass@`, `#` or `?`), paths joined with `new URL` under the base's path,
 * connections made to the address that was checked, redirects never followed. Non-2xx answers keep their
 * status and at most a short message from the API's documented error shape, never the body itself.
 */

/** The API version this client was written and tested against (sent in `X-SkyPilot-API-Version`). */
export const SKYPILOT_CLIENT_API_VERSION = 33;
/** Readable SkyPilot release whose protocol this client speaks (sent in `X-SkyPilot-Version`). */
export const SKYPILOT_CLIENT_VERSION = "0.11.1";
export const SKYPILOT_DEFAULT_URL = "http://127.0.0.1:46580";
/** Longest server-supplied error message kept in an error (the rest is cut). */
const MAX_SERVER_MESSAGE = 200;
/** Bytes of a non-2xx body read to find that message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export type RequestStatus = "PENDING" | "RUNNING" | "WAITING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
const FINISHED: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export interface RequestPayload {
  request_id: string;
  name: string;
  status: RequestStatus;
  return_value?: string | null;
  error?: string | null;
  [key: string]: unknown;
}

export interface ServiceReplica {
  replica_id: number;
  name?: string;
  status: string;
  version?: number;
  endpoint?: string | null;
  is_spot?: boolean;
  [key: string]: unknown;
}

export interface ServiceRecord {
  name: string;
  status: string;
  endpoint: string | null;
  policy?: string;
  replica_info: ServiceReplica[];
  [key: string]: unknown;
}

export interface StorageRecord {
  name: string;
  status: string;
  store: string[];
  launched_at?: number;
  last_use?: string;
  [key: string]: unknown;
}

/** One accelerator offering (SkyPilot `InstanceTypeInfo`), normalised from the array or object form. */
export interface InstanceTypeInfo {
  cloud: string;
  instanceType: string | null;
  acceleratorName: string;
  acceleratorCount: number;
  cpuCount: number | null;
  deviceMemory: number | null;
  memory: number | null;
  price: number;
  spotPrice: number;
  region: string;
}

export interface ListAcceleratorsFilter {
  nameFilter?: string;
  regionFilter?: string;
  quantityFilter?: number;
  clouds?: string | string[];
  allRegions?: boolean;
  requirePrice?: boolean;
}

export interface SkyPilotHealth {
  status: string;
  api_version?: string;
  version?: string;
  user?: { id: string; name?: string };
  [key: string]: unknown;
}

export interface SkyPilotClientOptions {
  /** API server base URL, e.g. `https://sky.example.com` (routes live at the root). */
  baseUrl: string;
  /** Service-account token (`sky_...`); omitted for a server without auth. */
  token?: string;
  /** Name errors are attributed to (the provider using this client); default "skypilot". */
  providerName?: string;
  /** Further values to scrub from error messages (e.g. workload secrets sent inside a task). */
  redactValues?: string[];
  /** 8-hex user hash sent as `SKYPILOT_USER_ID` (the server attributes requests to the token's user anyway). */
  userHash?: string;
  /** Transport (tests); default `guardedFetch`, which connects only to the checked address. The URL is checked either way. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Upper bound for waiting on one async request. */
  timeoutMs?: number;
  /**
   * Upper bound for one HTTP request (answer and body); default `DEFAULT_REQUEST_TIMEOUT_MS`, never more than
   * `timeoutMs`. The long waits are the `/api/status` polling above, not single requests.
   */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface WaitOptions {
  timeoutMs?: number;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SkyPilotClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly redactValues: string[];
  private readonly providerName: string;
  private readonly userHash: string;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly signal?: AbortSignal;
  private checkedBase?: Promise<URL>;

  constructor(opts: SkyPilotClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.token = opts.token || undefined;
    this.redactValues = opts.redactValues ?? [];
    this.providerName = opts.providerName ?? "skypilot";
    this.userHash = opts.userHash ?? createHash("sha256").update("tuna").digest("hex").slice(0, 8);
    this.fetchImpl = opts.fetch ?? guardedFetch(OUTBOUND_POLICIES.skypilotApiServer);
    this.sleep = opts.sleep ?? defaultSleep;
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? 30 * 60_000;
    this.requestTimeoutMs = Math.min(opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, this.timeoutMs);
    this.signal = opts.signal;
  }

  // ---------------------------------------------------------------- transport

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = {
      "X-SkyPilot-API-Version": String(SKYPILOT_CLIENT_API_VERSION),
      "X-SkyPilot-Version": SKYPILOT_CLIENT_VERSION,
      Accept: "application/json",
    };
    if (json) h["Content-Type"] = "application/json";
    if (this.token) {
      h.Authorization = `Bearer ${this.token}`;
      // Tokens without the `sky_` prefix are only treated as service-account tokens with this header.
      if (!this.token.startsWith("sky_")) h["X-Skypilot-Auth-Mode"] = "token";
    }
    return h;
  }

  /** Fields every POST body carries (provider-apis.md §1.5). */
  private commonBody(): Record<string, unknown> {
    return {
      env_vars: { SKYPILOT_USER_ID: this.userHash, SKYPILOT_USER: "tuna" },
      entrypoint: "",
      entrypoint_command: "tuna",
      using_remote_api_server: true,
      override_skypilot_config: {},
    };
  }

  private secretFree(text: string): string {
    return redact(text, [this.token, ...this.redactValues]);
  }

  /**
   * Checks the API server URL (syntax, and every address its host resolves to) once per client; throws a
   * `validation` ProviderError for a refused URL, `unavailable` for a host that does not resolve.
   */
  async checkBaseUrl(): Promise<URL> {
    this.checkedBase ??= checkOutboundUrl(this.baseUrl, OUTBOUND_POLICIES.skypilotApiServer).then(
      (r) => r.url,
      (err: unknown) => {
        this.checkedBase = undefined;
        throw err instanceof OutboundUrlError ? this.urlRefused(err) : err;
      },
    );
    return this.checkedBase;
  }

  private urlRefused(err: OutboundUrlError): ProviderError {
    return new ProviderError({
      provider: this.providerName,
      code: err.problem === "unresolvable" ? "unavailable" : "validation",
      message: err.message,
    });
  }

  /** One HTTP request under its own timeout, joined to the caller's `signal`; the same signal bounds reading the body. */
  private async send(method: "GET" | "POST", pathAndQuery: string, body?: unknown): Promise<Response> {
    const url = joinBaseUrl(await this.checkBaseUrl(), pathAndQuery);
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    try {
      return await this.fetchImpl(url.href, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
        signal: this.signal ? AbortSignal.any([timeout, this.signal]) : timeout,
      });
    } catch (err) {
      if (timeout.aborted && isTimeout(err)) throw this.requestTimedOut(`${method} ${pathAndQuery.split("?")[0]}`);
      // The address the name resolved to at connect time is internal (DNS changed since the check).
      if (err instanceof OutboundUrlError) throw this.urlRefused(err);
      const reason = err instanceof Error ? err.message : String(err);
      throw new ProviderError({
        provider: this.providerName,
        code: "unavailable",
        message: this.secretFree(`cannot reach the SkyPilot API server at ${this.baseUrl}: ${reason}`),
      });
    }
  }

  private requestTimedOut(what: string): ProviderError {
    return new ProviderError({
      provider: this.providerName,
      code: "timeout",
      message: `${what}: the SkyPilot API server at ${this.baseUrl} did not answer within ${this.requestTimeoutMs} ms`,
    });
  }

  /**
   * The JSON body of `res`; a body that stalls past the request timeout is a `timeout` ProviderError too. A body
   * that is not JSON is reported by its status only: its text is never repeated.
   */
  private async readJson<T>(res: Response, what: string): Promise<T> {
    try {
      return (await res.json()) as T;
    } catch (err) {
      if (isTimeout(err)) throw this.requestTimedOut(what);
      if (err instanceof SyntaxError) throw this.notJson(res, what);
      throw err;
    }
  }

  private notJson(res: Response, what: string): ProviderError {
    return new ProviderError({
      provider: this.providerName,
      code: "failed",
      status: res.status,
      message: `${what}: the SkyPilot API server answered something that is not JSON (HTTP ${res.status})`,
    });
  }

  /** An answer whose JSON does not have the documented shape (reported without its content). */
  private unexpected(res: Response, what: string): ProviderError {
    return new ProviderError({
      provider: this.providerName,
      code: "failed",
      status: res.status,
      message: `${what}: the SkyPilot API server answered with an unexpected body (HTTP ${res.status}); is ${this.baseUrl} a SkyPilot API server?`,
    });
  }

  /**
   * Turns a non-2xx answer into a ProviderError with the status and, when the body is the SkyPilot API's
   * documented error shape (provider-apis.md §1.9: FastAPI `{"detail": …}` or `{"error": "version_mismatch",
   * "message": …}`), its message cut to MAX_SERVER_MESSAGE characters, minus secrets. Any other body (HTML,
   * plain text, other JSON) is not repeated: the URL may lead somewhere that is not a SkyPilot server.
   */
  private async httpError(res: Response, what: string): Promise<ProviderError> {
    const text = await readCapped(res, MAX_ERROR_BODY_BYTES);
    const parsed = skypilotErrorMessage(text);
    const code: ProviderErrorCode = parsed?.versionMismatch ? "validation" : codeForStatus(res.status);
    const reason = STATUS_CODES[res.status] ?? "error";
    // Secrets are removed before cutting, so a cut cannot leave part of one behind.
    const detail = parsed?.message ? `: ${oneLine(this.secretFree(parsed.message), MAX_SERVER_MESSAGE)}` : ` ${reason}`;
    return new ProviderError({ provider: this.providerName, code, status: res.status, message: `${what} failed (HTTP ${res.status})${detail}` });
  }

  /**
   * Schedules an async request and returns its id. Retries the transient 503s the server documents
   * ("shutting down", "exhausted its concurrent worker limit") and 429 a few times with backoff.
   */
  async submit(method: "GET" | "POST", path: string, body?: Record<string, unknown>): Promise<string> {
    const fullBody = method === "POST" ? { ...this.commonBody(), ...(body ?? {}) } : undefined;
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(method, path, fullBody);
      if (res.ok) {
        await res.body?.cancel().catch(() => undefined);
        const id = res.headers.get("x-skypilot-request-id");
        if (!id) {
          throw new ProviderError({
            provider: this.providerName,
            code: "failed",
            status: res.status,
            message: `${method} ${path} returned no X-Skypilot-Request-ID header (is ${this.baseUrl} a SkyPilot API server?)`,
          });
        }
        return id;
      }
      if ((res.status === 503 || res.status === 429) && attempt < 3) {
        await res.body?.cancel().catch(() => undefined);
        await this.sleep(1000 * 2 ** attempt);
        continue;
      }
      throw await this.httpError(res, `${method} ${path}`);
    }
  }

  /** Current payload of a request (no waiting). */
  async requestStatus(requestId: string): Promise<RequestPayload> {
    const q = new URLSearchParams({ request_ids: requestId, all_status: "true" });
    const res = await this.send("GET", `/api/status?${q}`);
    if (!res.ok) throw await this.httpError(res, "GET /api/status");
    const list = await this.readJson<unknown>(res, "GET /api/status");
    if (!Array.isArray(list)) throw this.unexpected(res, "GET /api/status");
    const found = (list as RequestPayload[]).find((r) => typeof r?.request_id === "string" && (r.request_id === requestId || r.request_id.startsWith(requestId)));
    if (!found) {
      throw new ProviderError({ provider: this.providerName, code: "not_found", status: 404, message: `request ${requestId} not found` });
    }
    return found;
  }

  /**
   * Waits until the request finishes and returns its decoded return value; a failed or cancelled request
   * becomes a ProviderError carrying the Python exception type and message.
   */
  async wait<T>(requestId: string, opts: WaitOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = this.now() + timeoutMs;
    let delay = 250;
    let elapsedBySleep = 0;
    for (;;) {
      const payload = await this.requestStatus(requestId);
      if (FINISHED.has(payload.status)) break;
      // Both the clock and the accumulated sleeps bound the wait, so an instant test `sleep` still ends.
      if (this.now() >= deadline || elapsedBySleep >= timeoutMs) {
        throw new ProviderError({
          provider: this.providerName,
          code: "timeout",
          message: `request ${requestId} (${payload.name}) still ${payload.status} after ${Math.round(timeoutMs / 1000)} s`,
        });
      }
      await this.sleep(delay);
      elapsedBySleep += delay;
      delay = Math.min(delay * 2, 10_000);
    }
    return this.result<T>(requestId);
  }

  /** `/api/get` for a finished request: 200 → return value; 500 → the request's error. */
  private async result<T>(requestId: string): Promise<T> {
    const res = await this.send("GET", `/api/get?request_id=${encodeURIComponent(requestId)}`);
    if (res.status !== 200 && res.status !== 500) throw await this.httpError(res, "GET /api/get");
    const raw = await this.readJson<unknown>(res, "GET /api/get");
    const payload = (res.status === 500 ? (raw as { detail?: unknown }).detail : raw) as RequestPayload | undefined;
    if (!payload || typeof payload !== "object" || typeof payload.status !== "string") throw this.unexpected(res, "GET /api/get");
    if (payload.status === "CANCELLED") {
      throw new ProviderError({ provider: this.providerName, code: "failed", message: `request ${requestId} (${payload.name}) was cancelled` });
    }
    const err = decodeJsonString(payload.error);
    if (payload.status === "FAILED" || (err && typeof err === "object")) {
      const e = (err ?? {}) as { type?: string; message?: string };
      const type = e.type ?? "Error";
      throw new ProviderError({
        provider: this.providerName,
        code: codeForExceptionType(type, e.message ?? ""),
        // The documented error of a finished request: its type and message, cut short (never a whole body).
        message: `${oneLine(String(payload.name), 100)} failed: ${oneLine(String(type), 100)}: ${oneLine(this.secretFree(String(e.message ?? "unknown error")), 2 * MAX_SERVER_MESSAGE)}`,
      });
    }
    return decodeJsonString(payload.return_value) as T;
  }

  /** Submit and wait. */
  async call<T>(method: "GET" | "POST", path: string, body?: Record<string, unknown>, opts?: WaitOptions): Promise<T> {
    const id = await this.submit(method, path, body);
    return this.wait<T>(id, opts);
  }

  // ---------------------------------------------------------------- routes

  /** `POST /api/cancel` (itself async); returns the ids the server cancelled. */
  async cancel(requestIds: string[]): Promise<string[]> {
    const rv = await this.call<unknown>("POST", "/api/cancel", { request_ids: requestIds });
    return Array.isArray(rv) ? rv.map(String) : [];
  }

  /** `GET /api/health`; with a token, `status: "needs_auth"` or a 401 means the token was not accepted. */
  async health(): Promise<SkyPilotHealth> {
    const res = await this.send("GET", "/api/health");
    if (!res.ok) throw await this.httpError(res, "GET /api/health");
    const health = await this.readJson<unknown>(res, "GET /api/health");
    if (!health || typeof health !== "object" || typeof (health as SkyPilotHealth).status !== "string") throw this.unexpected(res, "GET /api/health");
    return health as SkyPilotHealth;
  }

  /** Synchronous `POST /validate` of a task YAML: resolves when valid, throws a `validation` error otherwise. */
  async validate(taskYaml: string): Promise<void> {
    const res = await this.send("POST", "/validate", { ...this.commonBody(), dag: taskYaml });
    if (res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return;
    }
    throw await this.httpError(res, "POST /validate");
  }

  /** `sky serve up`; returns the service name and its load-balancer endpoint (null while provisioning). */
  async serveUp(taskYaml: string, serviceName: string, opts?: WaitOptions): Promise<{ name: string; endpoint: string | null }> {
    const rv = await this.call<unknown>("POST", "/serve/up", { task: taskYaml, service_name: serviceName }, opts);
    if (Array.isArray(rv)) return { name: String(rv[0] ?? serviceName), endpoint: normaliseEndpoint(rv[1]) };
    return { name: serviceName, endpoint: null };
  }

  /**
   * `sky serve update`: a new version of an existing service from `taskYaml`. `rolling` replaces replicas one
   * by one; `blue_green` switches traffic once the new version is ready.
   */
  async serveUpdate(taskYaml: string, serviceName: string, mode: "rolling" | "blue_green", opts?: WaitOptions): Promise<void> {
    await this.call<null>("POST", "/serve/update", { task: taskYaml, service_name: serviceName, mode }, opts);
  }

  /** `sky serve status`; `null` lists every service. */
  async serveStatus(serviceNames: string[] | null, opts?: WaitOptions): Promise<ServiceRecord[]> {
    const rv = await this.call<ServiceRecord[] | null>("POST", "/serve/status", { service_names: serviceNames }, opts);
    return (rv ?? []).map((s) => ({ ...s, endpoint: normaliseEndpoint(s.endpoint), replica_info: s.replica_info ?? [] }));
  }

  async serveDown(serviceNames: string[], opts: WaitOptions & { purge?: boolean } = {}): Promise<void> {
    await this.call<null>("POST", "/serve/down", { service_names: serviceNames, all: false, purge: opts.purge ?? false }, opts);
  }

  async storageLs(opts?: WaitOptions): Promise<StorageRecord[]> {
    return (await this.call<StorageRecord[] | null>("GET", "/storage/ls", undefined, opts)) ?? [];
  }

  async storageDelete(name: string, opts?: WaitOptions): Promise<void> {
    await this.call<null>("POST", "/storage/delete", { name }, opts);
  }

  /** Clouds the API server holds working credentials for (`GET /enabled_clouds`), lowercased. */
  async enabledClouds(opts?: WaitOptions): Promise<string[]> {
    const rv = (await this.call<unknown[] | null>("GET", "/enabled_clouds", undefined, opts)) ?? [];
    return rv.map((c) => String(c).toLowerCase());
  }

  async listAccelerators(filter: ListAcceleratorsFilter = {}, opts?: WaitOptions): Promise<Record<string, InstanceTypeInfo[]>> {
    const body: Record<string, unknown> = {
      gpus_only: true,
      name_filter: filter.nameFilter ?? null,
      region_filter: filter.regionFilter ?? null,
      quantity_filter: filter.quantityFilter ?? null,
      clouds: filter.clouds ?? null,
      all_regions: filter.allRegions ?? false,
      require_price: filter.requirePrice ?? true,
      case_sensitive: true,
    };
    const rv = (await this.call<Record<string, unknown[]> | null>("POST", "/list_accelerators", body, opts)) ?? {};
    const out: Record<string, InstanceTypeInfo[]> = {};
    for (const [acc, infos] of Object.entries(rv)) {
      out[acc] = (infos ?? []).map(parseInstanceTypeInfo).filter((i): i is InstanceTypeInfo => i !== null);
    }
    return out;
  }
}

// ---------------------------------------------------------------- helpers

/** What fetch (or reading its body) rejects with when an `AbortSignal.timeout` fired. */
function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "TimeoutError";
}

/** At most `limit` bytes of the body as text (the rest is not read); "" when it cannot be read. */
async function readCapped(res: Response, limit: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    return "";
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * The message of a SkyPilot API error body, when it has one of the documented shapes: `{"detail": "<text>"}`,
 * `{"detail": [{"loc": [...], "msg": "..."}]}` (FastAPI validation), `{"detail": {"type", "message"}}`
 * (`/validate`), `{"error": "version_mismatch", "message": "..."}`. Anything else: null.
 */
export function skypilotErrorMessage(body: string): { message: string; versionMismatch: boolean } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return null;
  const o = parsed as Record<string, unknown>;
  if (o.error === "version_mismatch") {
    return { message: `version mismatch: ${typeof o.message === "string" ? o.message.trim() : ""}`, versionMismatch: true };
  }
  const d = o.detail;
  if (typeof d === "string") return { message: d, versionMismatch: false };
  if (Array.isArray(d)) {
    const items = d.filter((x): x is { loc?: unknown; msg?: unknown } => !!x && typeof x === "object");
    if (items.length === 0 || items.length !== d.length) return null;
    const text = items
      .map((e) => `${Array.isArray(e.loc) ? e.loc.map(String).join(".") : ""}: ${typeof e.msg === "string" ? e.msg : "invalid"}`)
      .join("; ");
    return { message: text, versionMismatch: false };
  }
  if (d && typeof d === "object") {
    const e = d as { type?: unknown; message?: unknown };
    if (typeof e.message === "string") return { message: typeof e.type === "string" ? `${e.type}: ${e.message}` : e.message, versionMismatch: false };
  }
  return null;
}

/** `return_value`, `error` and `request_body` are JSON strings inside JSON (parse twice). */
function decodeJsonString(v: unknown): unknown {
  if (typeof v !== "string") return v ?? null;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** Older servers return `host:port` without a scheme; `null`/empty means "not up yet". */
export function normaliseEndpoint(v: unknown): string | null {
  if (typeof v !== "string" || !v.trim()) return null;
  const s = v.trim().replace(/\/+$/, "");
  return /^https?:\/\//.test(s) ? s : `http://${s}`;
}

function num(v: unknown): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** Accepts the array form `[cloud, instance_type, accelerator_name, accelerator_count, cpu_count, device_memory, memory, price, spot_price, region]` or an object with those keys. NaN prices (JSON null / "NaN") become NaN. */
export function parseInstanceTypeInfo(v: unknown): InstanceTypeInfo | null {
  let f: unknown[];
  if (Array.isArray(v)) f = v;
  else if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    f = [o.cloud, o.instance_type, o.accelerator_name, o.accelerator_count, o.cpu_count, o.device_memory, o.memory, o.price, o.spot_price, o.region];
  } else return null;
  const [cloud, instanceType, acceleratorName, count, cpu, devMem, mem, price, spot, region] = f;
  if (typeof cloud !== "string" || typeof acceleratorName !== "string") return null;
  return {
    cloud,
    instanceType: typeof instanceType === "string" ? instanceType : null,
    acceleratorName,
    acceleratorCount: num(count) ?? 0,
    cpuCount: num(cpu),
    deviceMemory: num(devMem),
    memory: num(mem),
    price: num(price) ?? Number.NaN,
    spotPrice: num(spot) ?? Number.NaN,
    region: typeof region === "string" ? region : "",
  };
}

/** Maps the Python exception class of a failed request to our error code. */
function codeForExceptionType(type: string, message: string): ProviderErrorCode {
  if (/ResourcesUnavailable/i.test(type)) return "quota";
  if (/DoesNotExist|NotFound/i.test(type) || /does not exist|not found/i.test(message)) return "not_found";
  if (/PermissionError|Forbidden/i.test(type)) return "forbidden";
  if (/ValueError|NotSupported|InvalidSkyPilotConfig|ValidationError|SchemaError/i.test(type)) return "validation";
  if (/Timeout/i.test(type)) return "timeout";
  return "failed";
}
