import { createSign } from "node:crypto";
import { z } from "zod";
import { codeForStatus, ProviderError, redact, type ProviderErrorCode } from "../base/errors";
import { BearerSession, type BearerToken, DEFAULT_REQUEST_TIMEOUT_MS, expiresInS, type HttpFailure, postOAuthForm, sleeperOf, statusRetry, undefinedIfNotFound } from "../base/http";
import type { Credentials, ProviderContext } from "../base/types";

/**
 * Client of the Cloud Run Admin API v2 (`https://run.googleapis.com/v2`), the Secret Manager v1 calls Tuna
 * needs for env-from-secret, and Google's OAuth2 token endpoint (JWT bearer grant signed RS256 with the
 * service-account key, provider-apis.md §3.1). Mutations return long-running Operations that are polled.
 */

export const PROVIDER = "cloudrun";
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token";

export const cloudrunCredentialsSchema = z.object({
  /** The service-account key file, as JSON text. */
  serviceAccountJson: z.string().min(2),
  projectId: z.string().optional(),
  /** Workload secret values from the vault, keyed by env name (e.g. HF_TOKEN). */
  secrets: z.record(z.string(), z.string()).optional(),
});

const serviceAccountKeySchema = z.object({
  client_email: z.string().min(3),
  private_key: z.string().includes("PRIVATE KEY"),
  private_key_id: z.string().optional(),
  token_uri: z.string().url().optional(),
  project_id: z.string().optional(),
});

export interface GcpCredentials {
  clientEmail: string;
  privateKey: string;
  privateKeyId?: string;
  tokenUri: string;
  projectId: string;
  secrets: Record<string, string>;
  /** Strings that must never appear in messages. */
  sensitive: string[];
}

export function parseCloudrunCredentials(creds: Credentials | undefined): GcpCredentials {
  const outer = cloudrunCredentialsSchema.safeParse(creds ?? {});
  if (!outer.success) {
    throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "Cloud Run credentials need serviceAccountJson (a service-account key)" });
  }
  let keyJson: unknown;
  try {
    keyJson = JSON.parse(outer.data.serviceAccountJson);
  } catch {
    throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "serviceAccountJson is not valid JSON" });
  }
  const key = serviceAccountKeySchema.safeParse(keyJson);
  if (!key.success) {
    throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "serviceAccountJson is not a service-account key (needs client_email and private_key)" });
  }
  const projectId = outer.data.projectId ?? key.data.project_id;
  if (!projectId) throw new ProviderError({ provider: PROVIDER, code: "validation", message: "no GCP project: set projectId or use a key with project_id" });
  const secrets = outer.data.secrets ?? {};
  return {
    clientEmail: key.data.client_email,
    privateKey: key.data.private_key,
    privateKeyId: key.data.private_key_id,
    tokenUri: key.data.token_uri ?? DEFAULT_TOKEN_URI,
    projectId,
    secrets,
    sensitive: [key.data.private_key, ...key.data.private_key.split("\n").filter((l) => l.length >= 16), outer.data.serviceAccountJson, ...Object.values(secrets)],
  };
}

export function gcpBases(ctx: ProviderContext = {}): { run: string; secretmanager: string } {
  return {
    run: (ctx.baseUrls?.run ?? "https://run.googleapis.com").replace(/\/$/, ""),
    secretmanager: (ctx.baseUrls?.secretmanager ?? "https://secretmanager.googleapis.com").replace(/\/$/, ""),
  };
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** RS256 JWT signed with the service-account key. */
export function signServiceAccountJwt(gcp: GcpCredentials, claims: Record<string, unknown>, nowS: number): string {
  const header = { alg: "RS256", typ: "JWT", ...(gcp.privateKeyId ? { kid: gcp.privateKeyId } : {}) };
  const payload = { iss: gcp.clientEmail, sub: gcp.clientEmail, aud: gcp.tokenUri, iat: nowS, exp: nowS + 3600, ...claims };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = createSign("RSA-SHA256").update(input).sign(gcp.privateKey);
  return `${input}.${b64url(sig)}`;
}

/** OAuth2 token for the key: an access token (scope) or an ID token (target_audience). */
async function tokenRequest(gcp: GcpCredentials, claims: Record<string, unknown>, ctx: ProviderContext, what: string): Promise<Record<string, unknown>> {
  const nowS = Math.floor((ctx.now?.() ?? Date.now()) / 1000);
  const assertion = signServiceAccountJwt(gcp, claims, nowS);
  // A refusal (invalid_grant / invalid_client: deleted key, bad signature, disabled account) is `unauthorized`.
  return postOAuthForm(
    gcp.tokenUri,
    { grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion },
    { provider: PROVIDER, ctx, what, secrets: [...gcp.sensitive, assertion], timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS },
  );
}

/** An access token for the cloud-platform scope, with its lifetime (`expires_in`, at most an hour). */
export async function getAccessToken(gcp: GcpCredentials, ctx: ProviderContext = {}): Promise<BearerToken> {
  const body = await tokenRequest(gcp, { scope: CLOUD_PLATFORM_SCOPE }, ctx, "OAuth2 access token");
  if (typeof body.access_token !== "string") throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "token endpoint returned no access_token" });
  return { token: body.access_token, expiresInS: expiresInS(body) };
}

/** Lifetime of a Google-signed ID token (fixed by Google: one hour from minting). */
export const ID_TOKEN_TTL_MS = 3_600_000;

/** Google-signed ID token whose audience is the service URL; what a private Cloud Run service accepts. */
export async function mintIdToken(gcp: GcpCredentials, audience: string, ctx: ProviderContext = {}): Promise<string> {
  const body = await tokenRequest(gcp, { target_audience: audience }, ctx, "OAuth2 ID token");
  if (typeof body.id_token !== "string") throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "token endpoint returned no id_token" });
  return body.id_token;
}

/** gRPC canonical codes → Tuna error codes (Operation.error carries the numeric code). */
const GRPC_CODES: Record<number, ProviderErrorCode> = {
  3: "validation", 4: "timeout", 5: "not_found", 6: "conflict", 7: "forbidden", 8: "quota", 9: "failed", 10: "conflict",
  13: "unavailable", 14: "unavailable", 16: "unauthorized",
};

export interface GoogleStatus {
  code?: number;
  status?: string;
  message?: string;
  details?: Array<Record<string, unknown>>;
}

/** The google.rpc.Status of a failed answer (`{ "error": {...} }`; empty if not JSON). */
function parseGoogleStatus(text: string): GoogleStatus {
  try {
    return ((JSON.parse(text) as { error?: GoogleStatus }).error ?? {}) as GoogleStatus;
  } catch {
    return {};
  }
}

/** A 429 that is a quota refusal: permanent, not a rate limit worth retrying. */
function isQuotaRefusal(f: HttpFailure): boolean {
  return f.status === 429 && /quota/i.test(parseGoogleStatus(f.text).message ?? f.text);
}

function googleError(f: HttpFailure, what: string, sensitive: string[]): ProviderError {
  const err = parseGoogleStatus(f.text);
  const quota = isQuotaRefusal(f);
  const reason = err.details?.find((d) => typeof d.reason === "string")?.reason as string | undefined;
  const violations = err.details
    ?.flatMap((d) => (Array.isArray(d.fieldViolations) ? (d.fieldViolations as Array<{ field?: string; description?: string }>) : []))
    .map((v) => `${v.field}: ${v.description}`);
  const msg = [err.message ?? (f.text.slice(0, 300) || f.statusText), reason ? `(${reason})` : "", violations?.length ? `[${violations.join("; ")}]` : ""]
    .filter(Boolean)
    .join(" ");
  return new ProviderError({
    provider: PROVIDER,
    code: quota ? "quota" : codeForStatus(f.status),
    status: f.status,
    retryable: quota ? false : undefined,
    message: redact(`${what} failed (HTTP ${f.status}${err.status ? ` ${err.status}` : ""}): ${msg}`, sensitive),
  });
}

export class GcpSession extends BearerSession {
  private constructor(
    readonly gcp: GcpCredentials,
    first: BearerToken,
    ctx: ProviderContext,
  ) {
    super(PROVIDER, () => getAccessToken(gcp, ctx), first, ctx);
  }

  static async open(creds: Credentials, ctx: ProviderContext = {}): Promise<GcpSession> {
    const gcp = parseCloudrunCredentials(creds);
    return new GcpSession(gcp, await getAccessToken(gcp, ctx), ctx);
  }

  get sensitive(): string[] {
    return [...this.gcp.sensitive, ...this.tokens];
  }

  /**
   * Google answers an expired access token like any other bad one (401 UNAUTHENTICATED, provider-apis.md §3.4),
   * so every 401 gets one call with a new token; a key that no longer works fails at the token endpoint instead.
   */
  protected isExpiredToken(f: HttpFailure): boolean {
    return f.status === 401;
  }

  /**
   * One call with google.rpc.Status error mapping. 429 (unless it is a quota refusal) is retried for every
   * method, 5xx only for idempotent ones; `Retry-After` is honoured.
   */
  async request<T>(method: "GET" | "POST" | "PATCH" | "DELETE", url: string, what: string, body?: unknown): Promise<T> {
    const idempotent = method === "GET" || method === "DELETE";
    const res = await this.bearerJson<T>(method, url, what, body, {
      retryStatus: (f) => !isQuotaRefusal(f) && statusRetry(idempotent)(f),
      toError: (f) => googleError(f, what, this.sensitive),
    });
    return (res.body ?? {}) as T;
  }

  /** `request`, with 404 turned into `undefined`. */
  async requestOrMissing<T>(method: "GET" | "DELETE", url: string, what: string): Promise<T | undefined> {
    return undefinedIfNotFound(this.request<T>(method, url, what));
  }
}

export interface Operation {
  name: string;
  done?: boolean;
  error?: GoogleStatus;
  response?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** Polls `GET /v2/{operation.name}` with exponential backoff (1 s → 30 s) until `done`. */
export async function waitOperation(s: GcpSession, op: Operation, what: string): Promise<Operation> {
  const sleep = sleeperOf(s.ctx);
  const budget = s.ctx.timeoutMs ?? 30 * 60_000;
  let waited = 0;
  let delay = 1000;
  let cur = op;
  while (!cur.done) {
    if (waited >= budget) {
      throw new ProviderError({ provider: PROVIDER, code: "timeout", message: `${what}: operation ${op.name} not done after ${Math.round(waited / 1000)} s` });
    }
    await sleep(delay);
    waited += delay;
    delay = Math.min(delay * 2, 30_000);
    cur = await s.request<Operation>("GET", `${gcpBases(s.ctx).run}/v2/${cur.name}`, `${what} (poll operation)`);
  }
  if (cur.error && (cur.error.code ?? 0) !== 0) {
    const code = cur.error.code === 8 || /quota/i.test(cur.error.message ?? "") ? "quota" : GRPC_CODES[cur.error.code ?? 2] ?? "failed";
    throw new ProviderError({ provider: PROVIDER, code, message: redact(`${what} failed: ${cur.error.message ?? `gRPC code ${cur.error.code}`}`, s.sensitive) });
  }
  return cur;
}

export function servicesPath(project: string, region: string): string {
  return `projects/${encodeURIComponent(project)}/locations/${encodeURIComponent(region)}/services`;
}

export interface CloudRunService {
  name?: string;
  uri?: string;
  reconciling?: boolean;
  terminalCondition?: { type?: string; state?: string; message?: string; reason?: string };
  etag?: string;
  [k: string]: unknown;
}

export interface IamPolicy {
  version?: number;
  etag?: string;
  bindings?: Array<{ role: string; members: string[] }>;
}

/** Read-modify-write of an IAM policy (setIamPolicy replaces the whole policy; the etag guards races). */
export async function addIamBinding(s: GcpSession, resourceUrl: string, role: string, member: string, what: string): Promise<void> {
  const policy = await s.request<IamPolicy>("GET", `${resourceUrl}:getIamPolicy`, `${what} (get IAM policy)`);
  const bindings = policy.bindings ?? [];
  const existing = bindings.find((b) => b.role === role);
  if (existing?.members.includes(member)) return;
  if (existing) existing.members.push(member);
  else bindings.push({ role, members: [member] });
  await s.request("POST", `${resourceUrl}:setIamPolicy`, `${what} (set IAM policy)`, { policy: { ...policy, bindings } });
}
