import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import {
  cliFail,
  cliNoSuchCommand,
  cliNotInstalled,
  cliOk,
  FakeHttpServerWithCli,
  type FakeCliCall,
  INVALID_JSON,
  parseJsonBody,
  type RecordedRequest,
  readIncoming,
  recordCliCall,
  sendJson,
} from "../base/fake-server";
import type { ProviderContext } from "../base/types";

/**
 * Fake Baseten: the management API (`/v1/models`, production deployment, autoscaling, secrets) over HTTP on
 * loopback, plus a fake `truss` CLI whose `push` creates the model in the same store. Follows
 * provider-apis.md §5: `Authorization: Api-Key <key>`, JSON errors `{"error": "..."}`, 401 on a bad key,
 * 404 for unknown models. Deployments go BUILDING → DEPLOYING → ACTIVE as they are read (or are set).
 */

export type RecordedHttp = Pick<RecordedRequest, "method" | "path" | "headers" | "body">;

export type { FakeCliCall };

export interface FakeBasetenModel {
  id: string;
  name: string;
  config: string;
  deployment: { id: string; status: string; active_replica_count: number; autoscaling_settings: Record<string, unknown> };
  autoProgress: boolean;
}

const PROGRESSION = ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"];
const AUTOSCALING_FIELDS = ["min_replica", "max_replica", "autoscaling_window", "scale_down_delay", "concurrency_target", "target_utilization_percentage", "target_in_flight_tokens"];

export class FakeBaseten extends FakeHttpServerWithCli<RecordedHttp> {
  readonly models = new Map<string, FakeBasetenModel>();
  readonly secrets = new Map<string, string>();
  trussInstalled = true;
  private nextId = 1;
  private readonly pushFailures: Array<{ code: number; stdout: string; createModel: boolean }> = [];
  protected readonly apiPrefix = "/v1";

  constructor(readonly apiKey = "bt_fake_api_key_0123456789") {
    super();
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    sendJson(res, 500, { error: String(err) });
  }

  reset(): void {
    this.clearRecorded();
    this.models.clear();
    this.secrets.clear();
    this.trussInstalled = true;
    this.pushFailures.length = 0;
  }

  /** The next `times` requests whose "METHOD /path" starts with `prefix` answer `status`. */
  failHttp(prefix: string, times: number, status: number, body: unknown = { error: "rate limited" }): void {
    this.failWhen((method, p) => `${method} ${p}`.startsWith(prefix), { times, status, body, headers: status === 429 ? { "Retry-After": "1" } : undefined });
  }

  /** The next `truss push` exits 1; with `createModel` the model is created first (failure after upload). */
  failPush(stdout: string, createModel = false): void {
    this.pushFailures.push({ code: 1, stdout, createModel });
  }

  setStatus(modelId: string, status: string, replicas?: number): void {
    const m = [...this.models.values()].find((x) => x.id === modelId);
    if (!m) throw new Error(`fake baseten: no model ${modelId}`);
    m.deployment.status = status;
    if (replicas !== undefined) m.deployment.active_replica_count = replicas;
    m.autoProgress = false;
  }

  httpLines(): string[] {
    return this.requests.map((r) => `${r.method} ${r.path}`);
  }

  // ---------------------------------------------------------------- truss CLI

  readonly exec: NonNullable<ProviderContext["exec"]> = async (cmd, args, opts) => {
    const call = recordCliCall(this.calls, cmd, args, opts);
    if (!this.trussInstalled || cmd !== "truss") throw cliNotInstalled(cmd);
    if (args[0] === "--version") return cliOk("0.11.9\n");
    if (args[0] !== "push") return cliNoSuchCommand(args[0]);

    const home = call.env.HOME;
    let rc = "";
    try {
      rc = readFileSync(path.join(home ?? "/nonexistent", ".trussrc"), "utf8");
      call.files[".trussrc"] = rc;
    } catch {
      return cliFail("💻 Let's add a Baseten remote!\nError: no remote configured; run `truss login`\n");
    }
    const key = /^api_key = (.*)$/m.exec(rc)?.[1];
    if (key !== this.apiKey) return cliFail("Error: Invalid API key. Unauthorized (401).\n");
    const dir = path.resolve(opts.cwd ?? ".", args[1] ?? ".");
    let config: string;
    try {
      config = readFileSync(path.join(dir, "config.yaml"), "utf8");
      call.files["config.yaml"] = config;
    } catch {
      return cliFail("Error: no config.yaml found in the Truss directory\n");
    }
    const nameLine = /^model_name: (.+)$/m.exec(config);
    if (!nameLine) return cliFail("Error: config.yaml has no model_name\n");
    const name = JSON.parse(nameLine[1]) as string;
    for (const m of config.matchAll(/^ {2}([a-z0-9_]+): null$/gm)) {
      if (!this.secrets.has(m[1])) return cliFail(`Error: secret '${m[1]}' is not defined in your workspace\n`);
    }
    const failure = this.pushFailures.shift();
    if (failure && !failure.createModel) return cliFail(failure.stdout, failure.code);
    const model = this.createModel(name, config);
    if (failure) return cliFail(failure.stdout, failure.code);
    return cliOk(
      [
        "Compressing... ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100%",
        "Uploading... ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100%",
        `✨ Model ${name} was successfully pushed ✨`,
        `🪵  View logs for your deployment at https://app.baseten.co/models/${model.id}/logs/${model.deployment.id}`,
        "",
      ].join("\n"),
    );
  };

  private createModel(name: string, config: string): FakeBasetenModel {
    const existing = this.models.get(name);
    if (existing) return existing;
    const id = `m${String(this.nextId++).padStart(6, "0")}`;
    const model: FakeBasetenModel = {
      id,
      name,
      config,
      deployment: {
        id: `d${id.slice(1)}`,
        status: "BUILDING",
        active_replica_count: 0,
        autoscaling_settings: { min_replica: 0, max_replica: 1, autoscaling_window: 60, scale_down_delay: 900, concurrency_target: 1, target_utilization_percentage: 70 },
      },
      autoProgress: true,
    };
    this.models.set(name, model);
    return model;
  }

  // ---------------------------------------------------------------- HTTP

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, method, headers, raw } = await readIncoming(req);
    const body = parseJsonBody(raw);
    if (body === INVALID_JSON) return sendJson(res, 400, { error: "Invalid JSON body" });
    this.requests.push({ method, path: url.pathname, headers, body });

    if (headers.authorization !== `Api-Key ${this.apiKey}`) return sendJson(res, 401, { error: "Invalid API key" });
    const failure = this.takeFailure(method, url.pathname);
    if (failure) return sendJson(res, failure.status, failure.body, failure.headers);

    const p = url.pathname.replace(/^\/v1/, "");
    const byId = (id: string) => [...this.models.values()].find((m) => m.id === id);
    const modelRoute = /^\/models\/([^/]+)$/.exec(p);
    const productionRoute = /^\/models\/([^/]+)\/deployments\/production$/.exec(p);
    const autoscalingRoute = /^\/models\/([^/]+)\/deployments\/production\/autoscaling_settings$/.exec(p);
    if (method === "GET" && p === "/models") {
      return sendJson(res, 200, {
        models: [...this.models.values()].map((x) => ({ id: x.id, name: x.name, created_at: "2026-11-27T02:00:00Z", deployments_count: 1, production_deployment_id: x.deployment.id, development_deployment_id: null, instance_type_name: "L4" })),
      });
    }
    if (modelRoute) {
      const m = modelRoute;
      const model = byId(m[1]);
      if (!model) return sendJson(res, 404, { error: `Model ${m[1]} not found` });
      if (method === "GET") return sendJson(res, 200, { id: model.id, name: model.name, production_deployment_id: model.deployment.id });
      if (method === "DELETE") {
        this.models.delete(model.name);
        return sendJson(res, 200, { id: model.id, deleted: true });
      }
    }
    if (productionRoute && method === "GET") {
      const m = productionRoute;
      const model = byId(m[1]);
      if (!model) return sendJson(res, 404, { error: `Model ${m[1]} not found` });
      const d = model.deployment;
      if (model.autoProgress) {
        const i = PROGRESSION.indexOf(d.status);
        if (i >= 0 && i < PROGRESSION.length - 1) d.status = PROGRESSION[i + 1];
        if (d.status === "ACTIVE" && Number(d.autoscaling_settings.min_replica) === 0) d.status = "SCALED_TO_ZERO";
        if (d.status === "ACTIVE") d.active_replica_count = Number(d.autoscaling_settings.min_replica);
      }
      return sendJson(res, 200, { id: d.id, created_at: "2026-11-27T02:00:00Z", name: "deployment-1", model_id: model.id, is_production: true, is_development: false, status: d.status, active_replica_count: d.active_replica_count, autoscaling_settings: d.autoscaling_settings, environment: "production" });
    }
    if (autoscalingRoute && method === "PATCH") {
      const m = autoscalingRoute;
      const model = byId(m[1]);
      if (!model) return sendJson(res, 404, { error: `Model ${m[1]} not found` });
      const b = (body ?? {}) as Record<string, unknown>;
      const unknown = Object.keys(b).filter((k) => !AUTOSCALING_FIELDS.includes(k));
      if (unknown.length) return sendJson(res, 400, { error: `Unknown autoscaling settings: ${unknown.join(", ")}` });
      const delay = b.scale_down_delay;
      if (delay !== undefined && (typeof delay !== "number" || delay < 0 || delay > 3600)) return sendJson(res, 400, { error: "scale_down_delay must be between 0 and 3600" });
      const before = JSON.stringify(model.deployment.autoscaling_settings);
      Object.assign(model.deployment.autoscaling_settings, b);
      const changed = before !== JSON.stringify(model.deployment.autoscaling_settings);
      return sendJson(res, 200, { status: changed ? "ACCEPTED" : "UNCHANGED", message: changed ? "Autoscaling settings updated" : "No changes" });
    }
    if (p === "/secrets") {
      if (method === "GET") return sendJson(res, 200, { secrets: [...this.secrets.keys()].map((name) => ({ name, created_at: "2026-11-27T02:00:00Z" })) });
      if (method === "POST") {
        const b = (body ?? {}) as Record<string, unknown>;
        if (typeof b.name !== "string" || typeof b.value !== "string") return sendJson(res, 400, { error: "name and value are required" });
        this.secrets.set(b.name, b.value);
        return sendJson(res, 200, { name: b.name, created_at: "2026-11-27T02:00:00Z" });
      }
    }
    return sendJson(res, 404, { error: "Not found" });
  }
}
