import { z } from "zod";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { codeForStatus, ProviderError, redact, type ProviderErrorCode } from "../base/errors";
import { BearerSession, type BearerToken, DEFAULT_REQUEST_TIMEOUT_MS, expiresInS, type HttpFailure, postOAuthForm, retryAfterMs, sleeperOf, statusRetry, undefinedIfNotFound } from "../base/http";
import type { Credentials, ProviderContext } from "../base/types";

/**
 * Client of Azure Resource Manager for Microsoft.App (Container Apps), api-version 2025-07-01, with a
 * client-credentials token from Microsoft Entra ID. Long-running operations are polled through
 * `Azure-AsyncOperation` (create/update) or `Location` (delete), honouring `Retry-After` (provider-apis.md §4).
 */

export const PROVIDER = "azure";
export const ACA_API_VERSION = "2025-07-01";
export const RESOURCES_API_VERSION = "2021-04-01";

export const azureCredentialsSchema = z.object({
  tenantId: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  subscriptionId: z.string().min(1),
  resourceGroup: z.string().min(1),
  /** Workload secret values from the vault, keyed by env name (e.g. HF_TOKEN). */
  secrets: z.record(z.string(), z.string()).optional(),
});
export type AzureCredentials = z.infer<typeof azureCredentialsSchema>;

export function parseAzureCredentials(creds: Credentials | undefined): AzureCredentials {
  return parseCredentials(azureCredentialsSchema, creds, {
    provider: PROVIDER,
    code: "unauthorized",
    message: "Azure credentials need tenantId, clientId, clientSecret, subscriptionId and resourceGroup",
  });
}

export function azureBases(ctx: ProviderContext = {}): { login: string; arm: string } {
  return {
    login: (ctx.baseUrls?.login ?? "https://login.microsoftonline.com").replace(/\/$/, ""),
    arm: (ctx.baseUrls?.arm ?? "https://management.azure.com").replace(/\/$/, ""),
  };
}

/** A client-credentials access token for ARM, with its lifetime (`expires_in`, about an hour). */
export async function getArmToken(creds: AzureCredentials, ctx: ProviderContext = {}): Promise<BearerToken> {
  const url = `${azureBases(ctx).login}/${encodeURIComponent(creds.tenantId)}/oauth2/v2.0/token`;
  const sensitive = sensitiveValues([creds.clientSecret], creds.secrets);
  const body = await postOAuthForm(
    url,
    { grant_type: "client_credentials", client_id: creds.clientId, client_secret: creds.clientSecret, scope: "https://management.azure.com/.default" },
    { provider: PROVIDER, ctx, what: "Entra ID token", secrets: sensitive, timeoutMs: DEFAULT_REQUEST_TIMEOUT_MS },
  );
  if (typeof body.access_token !== "string") throw new ProviderError({ provider: PROVIDER, code: "unauthorized", message: "token endpoint returned no access_token" });
  return { token: body.access_token, expiresInS: expiresInS(body) };
}

export interface ArmResponse<T> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ArmError {
  code?: string;
  message?: string;
  details?: Array<{ code?: string; message?: string }>;
}

export class ArmSession extends BearerSession {
  private constructor(
    readonly creds: AzureCredentials,
    first: BearerToken,
    ctx: ProviderContext,
  ) {
    super(PROVIDER, () => getArmToken(creds, ctx), first, ctx);
  }

  static async open(creds: Credentials, ctx: ProviderContext = {}): Promise<ArmSession> {
    const c = parseAzureCredentials(creds);
    return new ArmSession(c, await getArmToken(c, ctx), ctx);
  }

  get sensitive(): string[] {
    return sensitiveValues([this.creds.clientSecret, ...this.tokens], this.creds.secrets);
  }

  /** ARM's answer to a token past its lifetime (provider-apis.md §4.1); `InvalidAuthenticationToken` is not retried. */
  protected isExpiredToken(f: HttpFailure): boolean {
    return f.status === 401 && parseArmError(f.text).code === "ExpiredAuthenticationToken";
  }

  /** `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App` */
  get appPrefix(): string {
    return `/subscriptions/${encodeURIComponent(this.creds.subscriptionId)}/resourceGroups/${encodeURIComponent(this.creds.resourceGroup)}/providers/Microsoft.App`;
  }

  url(path: string, apiVersion = ACA_API_VERSION): string {
    return `${azureBases(this.ctx).arm}${path}${path.includes("?") ? "&" : "?"}api-version=${apiVersion}`;
  }

  /**
   * One ARM call (absolute URL) with ARM error-envelope mapping. 429 is retried for every method, 5xx only for
   * idempotent ones (GET, PUT and DELETE are idempotent in ARM); `Retry-After` is honoured.
   */
  async call<T>(method: "GET" | "PUT" | "PATCH" | "POST" | "DELETE", url: string, what: string, body?: unknown): Promise<ArmResponse<T>> {
    const idempotent = method !== "POST" && method !== "PATCH";
    const res = await this.bearerJson<T>(method, url, what, body, {
      retryStatus: statusRetry(idempotent),
      toError: (f) => armError(f.status, parseArmError(f.text), f.text || f.statusText, what, this.sensitive),
    });
    return { status: res.status, body: (res.body ?? {}) as T, headers: res.headers };
  }

  /** GET returning undefined on 404. */
  async getOrMissing<T>(url: string, what: string): Promise<T | undefined> {
    return undefinedIfNotFound(this.call<T>("GET", url, what).then((r) => r.body));
  }

  /** GET of every page of an ARM list (`value` + `nextLink`). */
  async list<T>(url: string, what: string): Promise<T[]> {
    const out: T[] = [];
    let next: string | undefined = url;
    while (next) {
      const page: { value?: T[]; nextLink?: string } = (await this.call<{ value?: T[]; nextLink?: string }>("GET", next, what)).body;
      out.push(...(page.value ?? []));
      next = page.nextLink || undefined;
    }
    return out;
  }

  /**
   * Waits for a PUT/DELETE started with `res`: polls `Azure-AsyncOperation` (status document) if present,
   * else `Location` (202 while running, 200/204 when done). Backoff 1 s → 30 s unless `Retry-After` says otherwise.
   */
  async waitLro(res: ArmResponse<unknown>, what: string): Promise<void> {
    const asyncOp = res.headers.get("azure-asyncoperation");
    const location = res.headers.get("location");
    if (!asyncOp && !location) return;
    const sleep = sleeperOf(this.ctx);
    const budget = this.ctx.timeoutMs ?? 45 * 60_000;
    let waited = 0;
    let delay = retryAfterMs(res) ?? 1000;
    let backoff = 1000;
    for (;;) {
      if (waited >= budget) throw new ProviderError({ provider: PROVIDER, code: "timeout", message: `${what}: not finished after ${Math.round(waited / 1000)} s` });
      await sleep(delay);
      waited += delay;
      backoff = Math.min(backoff * 2, 30_000);
      if (asyncOp) {
        const poll = await this.call<{ status?: string; error?: ArmError }>("GET", asyncOp, `${what} (poll)`);
        const st = poll.body.status ?? "";
        if (st === "Succeeded") return;
        if (st === "Failed" || st === "Canceled") {
          const e = poll.body.error ?? {};
          throw armError(undefined, e, `operation ${st}`, what, this.sensitive);
        }
        delay = retryAfterMs(poll) ?? backoff;
      } else {
        const poll = await this.call<unknown>("GET", location ?? "", `${what} (poll)`);
        if (poll.status !== 202) return;
        delay = retryAfterMs(poll) ?? backoff;
      }
    }
  }
}

/** The ARM envelope `{ "error": { "code", "message", "details" } }` of a failed answer (empty if not JSON). */
function parseArmError(text: string): ArmError {
  try {
    return ((JSON.parse(text) as { error?: ArmError }).error ?? {}) as ArmError;
  } catch {
    return {};
  }
}

function armError(status: number | undefined, err: ArmError, fallback: string, what: string, sensitive: string[]): ProviderError {
  const text = `${err.code ? `${err.code}: ` : ""}${err.message ?? fallback}`;
  const quota = /quota|MaxNumberOf/i.test(`${err.code ?? ""} ${err.message ?? ""}`) && status !== 429;
  const byArmCode: Record<string, ProviderErrorCode> = { ResourceNotFound: "not_found", AuthorizationFailed: "forbidden", Conflict: "conflict" };
  const code: ProviderErrorCode = quota ? "quota" : status ? codeForStatus(status) : (byArmCode[err.code ?? ""] ?? "failed");
  return new ProviderError({
    provider: PROVIDER,
    code,
    status,
    retryable: quota ? false : undefined,
    message: redact(`${what} failed${status ? ` (HTTP ${status})` : ""}: ${text}`, sensitive),
  });
}
