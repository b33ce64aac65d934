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

/**
 * The wait an IETF `RateLimit` header asks for, in milliseconds: the longest `t` (seconds to reset) among the
 * windows whose quota is spent (`r=0`), since several windows (say a minute and an hour) can be spent at once
 * and only the longest wait lets the next call through. Reads the structured-field list of the current draft
 * (`"minute";r=0;t=20, "hour";r=0;t=1800`) and the dictionary of earlier drafts (`limit=100, remaining=0,
 * reset=20`). `undefined` when absent, unparsable or no window is spent (provider-apis.md §2.6).
 */
export function rateLimitWaitMs(from: { headers: Headers }): number | undefined {
  const v = from.headers.get("ratelimit");
  if (!v) return undefined;
  const members = v.split(",").map((m) => m.trim());
  const numeric = (x: string | undefined) => (x !== undefined && /^\d+(\.\d+)?$/.test(x) ? Number(x) : undefined);
  const waits: number[] = [];
  if (members.some((m) => /^(remaining|reset)\s*=/i.test(m))) {
    // Earlier drafts: one window as a dictionary.
    const dict = Object.fromEntries(members.map((m) => m.split("=").map((x) => x.trim().toLowerCase())));
    const remaining = numeric(dict.remaining);
    const reset = numeric(dict.reset);
    if (remaining === 0 && reset !== undefined) waits.push(reset);
  } else {
    for (const m of members) {
      const params = Object.fromEntries(
        m.split(";").slice(1).map((p) => p.split("=").map((x) => x.trim())),
      ) as Record<string, string | undefined>;
      const remaining = numeric(params.r);
      const reset = numeric(params.t);
      if (remaining === 0 && reset !== undefined) waits.push(reset);
    }
  }
  return waits.length ? Math.max(...waits) * 1000 : undefined;
}

/**
 * The longest a single call waits in place for a rate limit to clear. A provider asking for more (an hourly
 * window, say) gets a retryable `rate_limited` error instead, so the workflow retries the step later rather
 * than holding a worker asleep for up to an hour.
 */
export const MAX_RATE_LIMIT_WAIT_MS = 60_000;

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
      const asked = longestWaitMs(retryAfterMs(res, { allowZero: policy.retryAfterZero }), rateLimitWaitMs(res));
      if (asked !== undefined && asked > MAX_RATE_LIMIT_WAIT_MS) throw waitTooLongError(req.toError(failure), failure, asked);
      await sleep(asked ?? exponentialBackoffMs(attempt));
      continue;
    }
    throw req.toError(failure);
  }
}

function longestWaitMs(...waits: Array<number | undefined>): number | undefined {
  const known = waits.filter((w): w is number => w !== undefined);
  return known.length ? Math.max(...known) : undefined;
}

/**
 * The provider's own error for a refused call whose wait is too long to sit out: retryable, `rate_limited` for a
 * 429 (a 503 keeps its own kind), saying how long the provider asked for.
 */
function waitTooLongError(err: ProviderError, failure: HttpFailure, askedMs: number): ProviderError {
  const own = err.message.startsWith(`${err.provider}: `) ? err.message.slice(err.provider.length + 2) : err.message;
  return new ProviderError({
    provider: err.provider,
    code: failure.status === 429 ? "rate_limited" : err.code,
    status: err.status,
    retryable: true,
    message: `${own} (asked to wait ${Math.ceil(askedMs / 1000)} s, longer than the ${MAX_RATE_LIMIT_WAIT_MS / 1000} s a call waits; retry later)`,
  });
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

/** An OAuth2 access token and its lifetime (`expires_in`, seconds) as the token endpoint gave them. */
export interface BearerToken {
  token: string;
  expiresInS?: number;
}

/** `expires_in` of a token-endpoint answer, when it is a usable number of seconds. */
export function expiresInS(body: Record<string, unknown>): number | undefined {
  const v = typeof body.expires_in === "string" ? Number(body.expires_in) : body.expires_in;
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined;
}

/** How long before its expiry a token is replaced: 5 min, or half the lifetime of a shorter-lived token. */
export function tokenRefreshMarginMs(lifetimeMs: number): number {
  return Math.min(5 * 60_000, lifetimeMs / 2);
}

/**
 * A session of a cloud API signed in with an OAuth2 bearer token (Azure Resource Manager, Google APIs):
 * each call is a `requestJson` with the token, the default timeout and three attempts. Subclasses say which
 * answers are retried and map their error envelope; `sensitive` lists what must never reach a message.
 *
 * Tokens live about an hour while a deploy can wait on the provider for longer (an Azure environment plus app
 * can take ~90 min), so the session fetches a new token shortly before the one it holds expires, and when an
 * answer still says the token expired (clock skew, a lifetime the endpoint did not state) it fetches one and
 * repeats that call once.
 */
export abstract class BearerSession {
  private current: { token: string; refreshAtMs?: number };
  private refreshing?: Promise<void>;
  /** Every token this session held: any of them may be echoed in an answer. */
  private readonly issued: string[] = [];

  protected constructor(
    protected readonly provider: string,
    private readonly fetchToken: () => Promise<BearerToken>,
    first: BearerToken,
    readonly ctx: ProviderContext,
  ) {
    this.current = this.adopt(first);
  }

  /** Every token this session has held, for `sensitive`. */
  protected get tokens(): string[] {
    return [...this.issued];
  }

  /** Strings removed from every message (the tokens among them). */
  abstract get sensitive(): string[];

  /** Whether a failed answer says the bearer token has expired (worth one call with a new token). */
  protected abstract isExpiredToken(failure: HttpFailure): boolean;

  private now(): number {
    return this.ctx.now?.() ?? Date.now();
  }

  private adopt(t: BearerToken): { token: string; refreshAtMs?: number } {
    this.issued.push(t.token);
    if (t.expiresInS === undefined) return { token: t.token };
    const lifetimeMs = t.expiresInS * 1000;
    return { token: t.token, refreshAtMs: this.now() + lifetimeMs - tokenRefreshMarginMs(lifetimeMs) };
  }

  /** Replaces the token; concurrent callers share one token request. */
  private refresh(): Promise<void> {
    this.refreshing ??= this.fetchToken()
      .then((t) => {
        this.current = this.adopt(t);
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  private async freshToken(): Promise<string> {
    const at = this.current.refreshAtMs;
    if (at !== undefined && this.now() >= at) await this.refresh();
    return this.current.token;
  }

  protected async bearerJson<T>(
    method: string,
    url: string,
    what: string,
    body: unknown,
    policy: { retryStatus: (f: HttpFailure) => boolean; toError: (f: HttpFailure) => ProviderError },
  ): Promise<JsonResponse<T>> {
    const call = (token: string, onExpired?: () => void) =>
      requestJson<T>({
        provider: this.provider,
        ctx: this.ctx,
        what,
        secrets: this.sensitive,
        timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
        method,
        url,
        body,
        headers: { Authorization: `Bearer ${token}` },
        retry: { maxAttempts: 3, retryStatus: policy.retryStatus },
        toError: (f) => {
          if (onExpired && this.isExpiredToken(f)) onExpired();
          return policy.toError(f);
        },
      });
    const token = await this.freshToken();
    let expired = false;
    try {
      return await call(token, () => {
        expired = true;
      });
    } catch (err) {
      if (!expired) throw err;
    }
    // The token ran out between the check and the answer: one more call with a new one.
    if (this.current.token === token) await this.refresh();
    return call(this.current.token);
  }
}
