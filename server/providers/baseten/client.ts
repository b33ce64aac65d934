import { z } from "zod";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { DEFAULT_REQUEST_TIMEOUT_MS, requestJson, restError, undefinedIfNotFound } from "../base/http";
import type { Credentials, ProviderContext } from "../base/types";
import { PROVIDER } from "./plan";

/** Baseten management API (provider-apis.md §5): `Authorization: Api-Key <key>`, synchronous JSON CRUD. */
export const BASETEN_API_BASE = "https://api.baseten.co/v1";

export const basetenCredentialsSchema = z.object({
  apiKey: z.string().min(1),
  /** Workload secret values (e.g. HF_TOKEN) taken from the vault for `plan.secretEnv`. */
  secrets: z.record(z.string(), z.string()).optional(),
});
export type BasetenCredentials = z.infer<typeof basetenCredentialsSchema>;

export function parseBasetenCredentials(creds: Credentials | undefined): BasetenCredentials {
  return parseCredentials(basetenCredentialsSchema, creds, { provider: PROVIDER, code: "validation", message: "Baseten credentials need apiKey" });
}

export function basetenSecrets(creds: BasetenCredentials): string[] {
  return sensitiveValues([creds.apiKey], creds.secrets);
}

export interface BasetenModel {
  id: string;
  name: string;
  production_deployment_id?: string | null;
  [key: string]: unknown;
}

export interface BasetenDeployment {
  id: string;
  name?: string;
  model_id?: string;
  status: string;
  active_replica_count?: number;
  autoscaling_settings?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Deployment statuses that will never serve: a retried deploy pushes again rather than adopt them (§5.2). */
export const FAILED_DEPLOYMENT_STATUSES: ReadonlySet<string> = new Set(["BUILD_FAILED", "BUILD_STOPPED", "DEPLOY_FAILED", "FAILED"]);

export interface BasetenClientOptions {
  /** Per-request timeout; tests shorten it. */
  requestTimeoutMs?: number;
}

export class BasetenClient {
  private readonly base: string;
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly creds: BasetenCredentials,
    private readonly ctx: ProviderContext = {},
    opts: BasetenClientOptions = {},
  ) {
    this.base = (ctx.baseUrls?.baseten ?? BASETEN_API_BASE).replace(/\/+$/, "");
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  /**
   * One call, bounded by the request timeout (a stalled answer is a `timeout` error, not a hung workflow
   * step); 429 and 5xx are retried (honouring Retry-After) a few times. `undefined` for 404 when allowed.
   */
  async request<T>(method: string, path: string, body?: unknown, opts: { allow404?: boolean } = {}): Promise<T | undefined> {
    const secrets = basetenSecrets(this.creds);
    const call = requestJson<T>({
      provider: PROVIDER,
      ctx: this.ctx,
      what: `${method} ${path}`,
      secrets,
      timeoutMs: this.requestTimeoutMs,
      method,
      url: `${this.base}${path}`,
      body,
      headers: { Authorization: `Api-Key ${this.creds.apiKey}` },
      retry: { maxAttempts: 4, retryStatus: (f) => f.status === 429 || f.status >= 500 },
      toError: (f) => restError(PROVIDER, method, path, f, ["error", "message", "detail"], secrets),
    });
    return (opts.allow404 ? await undefinedIfNotFound(call) : await call)?.body;
  }

  async listModels(): Promise<BasetenModel[]> {
    const r = await this.request<{ models?: BasetenModel[] }>("GET", "/models");
    return r?.models ?? [];
  }

  async findModelByName(name: string): Promise<BasetenModel | undefined> {
    return (await this.listModels()).find((m) => m.name === name);
  }

  async deleteModel(id: string): Promise<void> {
    await this.request("DELETE", `/models/${encodeURIComponent(id)}`, undefined, { allow404: true });
  }

  async productionDeployment(modelId: string): Promise<BasetenDeployment | undefined> {
    return this.request<BasetenDeployment>("GET", `/models/${encodeURIComponent(modelId)}/deployments/production`, undefined, { allow404: true });
  }

  async deployment(modelId: string, deploymentId: string): Promise<BasetenDeployment | undefined> {
    return this.request<BasetenDeployment>("GET", `/models/${encodeURIComponent(modelId)}/deployments/${encodeURIComponent(deploymentId)}`, undefined, { allow404: true });
  }

  /** Autoscaling of one deployment, or of whichever is in production (`"production"`); only passed fields change. */
  async updateAutoscaling(modelId: string, deploymentId: string, settings: Record<string, unknown>): Promise<{ status: string; message?: string } | undefined> {
    return this.request("PATCH", `/models/${encodeURIComponent(modelId)}/deployments/${encodeURIComponent(deploymentId)}/autoscaling_settings`, settings);
  }

  /** Creates or updates a workspace secret. */
  async upsertSecret(name: string, value: string): Promise<void> {
    await this.request("POST", "/secrets", { name, value });
  }
}
