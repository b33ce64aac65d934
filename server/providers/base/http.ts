import { codeForStatus, ProviderError, redact } from "./errors";
import type { ProviderContext } from "./types";

/**
 * The JSON-over-HTTP loop the REST providers share (RunPod, Cloud Run, Azure, Baseten, Cerebrium): fetch
 * through `ctx.fetch` with an optional per-request timeout joined to `ctx.signal`, JSON body and headers,
 * retries with exponential backoff that honour `Retry-After`, and a provider-specific error envelope turned
 * into a `ProviderError` by the caller's `toError`. What differs per provider (auth header, which statuses and
 * methods are retried, how many attempts, the envelope) is passed in; nothing provider-specific lives here.
 */

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export type SleepFn = (ms: number) => Promise<void>;

/** `ctx.sleep`, or a real timer. */
export function sleeperOf(ctx: ProviderContext): SleepFn {
  return ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
}

/**
 * `Retry-After` in milliseconds (delta-seconds form), or `undefined` when absent or unusable. By default a
 * zero wait counts as unusable (the caller's backoff applies); `allowZero` honours `Retry-After: 0`.
 */
export function retryAfterMs(from: { headers: Headers }, opts: { allowZero?: boolean } = {}): number | undefined {
  const v = from.headers.get("retry-after");
  if (!v) return undefined;
  const s = Number(v);
  if (!Number.isFinite(s)) return undefined;
  return s > 0 || (opts.allowZero && s === 0) ? s * 1000 : undefined;
}

/** The backoff when `Retry-After` says nothing: 1 s, 2 s, 4 s … after attempts 1, 2, 3 … */
export const exponentialBackoffMs = (attempt: number): number => 1000 * 2 ** (attempt - 1);

export interface FetchOnceOptions {
  provider: string;
  ctx: ProviderContext;
  /** Label for messages, e.g. "create endpoint" or "GET /models". */
  what: string;
  /** Values scrubbed from error text. */
  secrets: Array<string | undefined>;
  /**
   * Per-request timeout joined to `ctx.signal`. When set, an aborted request becomes a `timeout` error
   * ("request timed out"); without it every fetch failure is `unavailable` ("network error: …").
   */
  timeoutMs?: number;
}

/** One fetch; a network failure (or timeout) becomes a `ProviderError`. */
export async function fetchOnce(url: string, init: RequestInit, o: FetchOnceOptions): Promise<Response> {
  try {
    const signal =
      o.timeoutMs !== undefined ? AbortSignal.any([AbortSignal.timeout(o.timeoutMs), ...(o.ctx.signal ? [o.ctx.signal] : [])]) : o.ctx.signal;
    return await (o.ctx.fetch ?? fetch)(url, { ...init, signal });
  } catch (err) {
    throw networkError(err, o);
  }
}

function networkError(err: unknown, o: FetchOnceOptions): ProviderError {
  const timedOut = o.timeoutMs !== undefined && err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
  return new ProviderError({
    provider: o.provider,
    code: timedOut ? "timeout" : "unavailable",
    message: redact(`${o.what}: ${timedOut ? "request timed out" : `network error: ${(err as Error).message}`}`, o.secrets),
  });
}

/** A non-2xx answer, body read as text, for a provider's error-envelope parser and retry decision. */
export interface HttpFailure {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Whether this failed answer may be tried again (provider-specific: methods, quota refusals …). */
  retryStatus: (failure: HttpFailure) => boolean;
  /** The wait before retrying a network error after attempt `attempt`, or `undefined` not to retry it. */
  retryNetworkError?: (attempt: number) => number | undefined;
  /** Honour `Retry-After: 0` as "retry at once" instead of falling back to the backoff. */
  retryAfterZero?: boolean;
}

/** The usual policy: 429 for every method, 5xx only for idempotent ones. */
export function statusRetry(idempotent: boolean): (f: HttpFailure) => boolean {
  return (f) => f.status === 429 || (f.status >= 500 && idempotent);
}

export interface JsonRequest extends FetchOnceOptions {
  method: string;
  url: string;
  /** Sent as JSON (with `Content-Type: application/json`) when defined. */
  body?: unknown;
  /** Auth and other provider headers; `Accept: application/json` is always sent. */
  headers?: Record<string, string>;
  /** Absent: one attempt. */
  retry?: RetryPolicy;
  /** The provider's error envelope → `ProviderError` (redact secrets there). */
  toError: (failure: HttpFailure) => ProviderError;
}

export interface JsonResponse<T> {
  status: number;
  headers: Headers;
  /** Parsed JSON, or `undefined` for an empty body (204 and the like). */
  body: T | undefined;
}

/** One JSON call with retries; a final failure is thrown as the provider's `toError`. */
export async function requestJson<T>(req: JsonRequest): Promise<JsonResponse<T>> {
  const init: RequestInit = {
    method: req.method,
    headers: { ...req.headers, Accept: "application/json", ...(req.body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: req.body !== undefined ? JSON.stringify(req.body) : undefined,
  };
  const sleep = sleeperOf(req.ctx);
  const policy = req.retry;
  const maxAttempts = policy?.maxAttempts ?? 1;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await fetchOnce(req.url, init, req);
    } catch (err) {
      const wait = attempt < maxAttempts && !req.ctx.signal?.aborted ? policy?.retryNetworkError?.(attempt) : undefined;
      if (wait === undefined) throw err;
      await sleep(wait);
      continue;
    }
    if (res.ok) {
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as T) : undefined };
    }
    const text = await res.text().catch(() => "");
    const failure: HttpFailure = { status: res.status, statusText: res.statusText, headers: res.headers, text };
    if (policy && attempt < maxAttempts && policy.retryStatus(failure)) {
      await sleep(retryAfterMs(res, { allowZero: policy.retryAfterZero }) ?? exponentialBackoffMs(attempt));
      continue;
    }
    throw req.toError(failure);
  }
}

/** `p`, with a 404 `ProviderError` turned into `undefined` (reads of things that may be gone). */
export async function undefinedIfNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ProviderError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * The error of a plain REST API: `METHOD /path failed (HTTP n): <message>`, where the message is the first of
 * `keys` found in a JSON body (e.g. `{"error": "..."}`), else the body text, else the status text.
 */
export function restError(provider: string, method: string, path: string, f: HttpFailure, keys: string[], secrets: Array<string | undefined>): ProviderError {
  const msg = jsonErrorField(f.text, keys) ?? f.text;
  return new ProviderError({
    provider,
    code: codeForStatus(f.status),
    status: f.status,
    message: redact(`${method} ${path} failed (HTTP ${f.status}): ${msg || f.statusText}`.slice(0, 1500), secrets),
  });
}

/** The first of `keys` present in a parsed JSON error body, as text; `undefined` if the text is not a JSON object with one. */
export function jsonErrorField(text: string, keys: string[]): string | undefined {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    for (const k of keys) if (j?.[k] !== undefined && j[k] !== null) return String(j[k]);
  } catch {
    /* not JSON */
  }
  return undefined;
}

/**
 * An OAuth2 token-endpoint call (form-encoded POST, one attempt) → the JSON answer. A refusal keeps the
 * RFC 6749 `error: error_description`; 400/401 mean the credentials themselves are wrong (`unauthorized`).
 */
export async function postOAuthForm(url: string, form: Record<string, string>, o: FetchOnceOptions): Promise<Record<string, unknown>> {
  const res = await fetchOnce(
    url,
    {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(form).toString(),
    },
    o,
  );
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* keep text */
  }
  if (!res.ok) {
    const detail = [body.error, body.error_description].filter(Boolean).join(": ") || text.slice(0, 300);
    const code = res.status === 400 || res.status === 401 ? "unauthorized" : codeForStatus(res.status);
    throw new ProviderError({ provider: o.provider, code, status: res.status, message: redact(`${o.what} failed (HTTP ${res.status}): ${detail}`, o.secrets) });
  }
  return body;
}

/**
 * A session of a cloud API signed in with an OAuth2 bearer token (Azure Resource Manager, Google APIs):
 * each call is a `requestJson` with the token, the default timeout and three attempts. Subclasses say which
 * answers are retried and map their error envelope; `sensitive` lists what must never reach a message.
 */
export abstract class BearerSession {
  protected constructor(
    protected readonly provider: string,
    protected readonly token: string,
    readonly ctx: ProviderContext,
  ) {}

  /** Strings removed from every message (the token among them). */
  abstract get sensitive(): string[];

  protected bearerJson<T>(
    method: string,
    url: string,
    what: string,
    body: unknown,
    policy: { retryStatus: (f: HttpFailure) => boolean; toError: (f: HttpFailure) => ProviderError },
  ): Promise<JsonResponse<T>> {
    return requestJson<T>({
      provider: this.provider,
      ctx: this.ctx,
      what,
      secrets: this.sensitive,
      timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      method,
      url,
      body,
      headers: { Authorization: `Bearer ${this.token}` },
      retry: { maxAttempts: 3, retryStatus: policy.retryStatus },
      toError: policy.toError,
    });
  }
}
