import { z } from "zod";
import { codeForStatus, ProviderError, redact } from "../base/errors";
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
  const r = basetenCredentialsSchema.safeParse(creds ?? {});
  if (!r.success) throw new ProviderError({ provider: PROVIDER, code: "validation", message: "Baseten credentials need apiKey" });
  return r.data;
}

export function basetenSecrets(creds: BasetenCredentials): string[] {
  return [creds.apiKey, ...Object.values(creds.secrets ?? {})];
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

export class BasetenClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly creds: BasetenCredentials,
    private readonly ctx: ProviderContext = {},
  ) {
    this.base = (ctx.baseUrls?.baseten ?? BASETEN_API_BASE).replace(/\/+$/, "");
    this.fetchImpl = ctx.fetch ?? fetch;
    this.sleep = ctx.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** One call; 429 and 5xx are retried (honouring Retry-After) a few times. `undefined` for 404 when allowed. */
  async request<T>(method: string, path: string, body?: unknown, opts: { allow404?: boolean } = {}): Promise<T | undefined> {
    const secrets = basetenSecrets(this.creds);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetchImpl(`${this.base}${path}`, {
          method,
          headers: { Authorization: `Api-Key ${this.creds.apiKey}`, Accept: "application/json", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: this.ctx.signal,
        });
      } catch (err) {
        throw new ProviderError({ provider: PROVIDER, code: "unavailable", message: redact(`${method} ${path}: network error: ${(err as Error).message}`, secrets) });
      }
      if (res.ok) {
        const text = await res.text();
        return (text ? JSON.parse(text) : undefined) as T;
      }
      if (res.status === 404 && opts.allow404) {
        await res.body?.cancel().catch(() => undefined);
        return undefined;
      }
      if ((res.status === 429 || res.status >= 500) && attempt < 3) {
        const after = Number(res.headers.get("retry-after"));
        await res.body?.cancel().catch(() => undefined);
        await this.sleep(Number.isFinite(after) && after > 0 ? after * 1000 : 1000 * 2 ** attempt);
        continue;
      }
      const text = await res.text().catch(() => "");
      let msg = text;
      try {
        const j = JSON.parse(text) as Record<string, unknown>;
        msg = String(j.error ?? j.message ?? j.detail ?? text);
      } catch {
        // not JSON
      }
      throw new ProviderError({
        provider: PROVIDER,
        code: codeForStatus(res.status),
        status: res.status,
        message: redact(`${method} ${path} failed (HTTP ${res.status}): ${msg || res.statusText}`.slice(0, 1500), secrets),
      });
    }
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

  async updateProductionAutoscaling(modelId: string, settings: Record<string, unknown>): Promise<{ status: string; message?: string } | undefined> {
    return this.request("PATCH", `/models/${encodeURIComponent(modelId)}/deployments/production/autoscaling_settings`, settings);
  }

  /** Creates or updates a workspace secret. */
  async upsertSecret(name: string, value: string): Promise<void> {
    await this.request("POST", "/secrets", { name, value });
  }
}
