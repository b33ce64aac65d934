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
 * Fake Baseten: the management API (`/v1/models`, deployments by id or `production`, autoscaling, secrets)
 * over HTTP on loopback, plus a fake `truss` CLI whose `push` creates the model (first deployment in
 * production) or adds a deployment to it (into production only with `--promote`, once it is ready). Follows
 * provider-apis.md §5: `Authorization: Api-Key <key>`, JSON errors `{"error": "..."}`, 401 on a bad key,
 * 404 for unknown models. Deployments go BUILDING → DEPLOYING → ACTIVE as they are read (or are set).
 */

export type RecordedHttp = Pick<RecordedRequest, "method" | "path" | "headers" | "body">;

export type { FakeCliCall };

export interface FakeBasetenDeployment {
  id: string;
  status: string;
  active_replica_count: number;
  autoscaling_settings: Record<string, unknown>;
  autoProgress: boolean;
  /** Pushed with `--promote`: becomes production when it is ready. */
  promoteWhenReady: boolean;
}

export interface FakeBasetenModel {
  id: string;
  name: string;
  config: string;
  deployments: FakeBasetenDeployment[];
  productionId: string | null;
}

const PROGRESSION = ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"];
const AUTOSCALING_FIELDS = ["min_replica", "max_replica", "autoscaling_window", "scale_down_delay", "concurrency_target", "target_utilization_percentage", "target_in_flight_tokens"];

export class FakeBaseten extends FakeHttpServerWithCli<RecordedHttp> {
  readonly models = new Map<string, FakeBasetenModel>();
  readonly secrets = new Map<string, string>();
  trussInstalled = true;
  private nextId = 1;
  private readonly pushFailures: Array<{ code: number; stdout: string; createModel: boolean; deploymentStatus: string | null }> = [];
  private stalls: Array<{ prefix: string; times: number }> = [];
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
    this.stalls = [];
  }

  /** The next `times` requests whose "METHOD /path" starts with `prefix` answer `status`. */
  failHttp(prefix: string, times: number, status: number, body: unknown = { error: "rate limited" }): void {
    this.failWhen((method, p) => `${method} ${p}`.startsWith(prefix), { times, status, body, headers: status === 429 ? { "Retry-After": "1" } : undefined });
  }

  /** The next `times` requests whose "METHOD /path" starts with `prefix` get no answer until the client gives up. */
  stallHttp(prefix: string, times = 1): void {
    this.stalls.push({ prefix, times });
  }

  /**
   * The next `truss push` exits 1. With `createModel` the upload went through first (the model, or a new
   * deployment of it, exists) and that deployment is left in `deploymentStatus` (`null`: the model has no
   * deployment at all).
   */
  failPush(stdout: string, createModel = false, deploymentStatus: string | null = "BUILD_FAILED"): void {
    this.pushFailures.push({ code: 1, stdout, createModel, deploymentStatus });
  }

  /** The production deployment of a model (`undefined` when it has none). */
  production(model: FakeBasetenModel): FakeBasetenDeployment | undefined {
    return model.deployments.find((d) => d.id === model.productionId);
  }

  /** Sets the status of the model's production deployment (else its latest) and stops its progression. */
  setStatus(modelId: string, status: string, replicas?: number): void {
    const m = [...this.models.values()].find((x) => x.id === modelId);
    const d = m && (this.production(m) ?? m.deployments.at(-1));
    if (!m || !d) throw new Error(`fake baseten: no deployment of model ${modelId}`);
    d.status = status;
    if (replicas !== undefined) d.active_replica_count = replicas;
    d.autoProgress = false;
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
    const model = this.models.get(name) ?? this.createModel(name, config);
    model.config = config;
    if (failure) {
      if (failure.deploymentStatus !== null) {
        const d = this.addDeployment(model, args.includes("--promote"));
        Object.assign(d, { status: failure.deploymentStatus, autoProgress: false });
      }
      return cliFail(failure.stdout, failure.code);
    }
    const deployment = this.addDeployment(model, args.includes("--promote"));
    return cliOk(
      [
        "Compressing... ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100%",
        "Uploading... ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100%",
        `✨ Model ${name} was successfully pushed ✨`,
        `🪵  View logs for your deployment at https://app.baseten.co/models/${model.id}/logs/${deployment.id}`,
        "",
      ].join("\n"),
    );
  };

  private createModel(name: string, config: string): FakeBasetenModel {
    const model: FakeBasetenModel = { id: `m${String(this.nextId++).padStart(6, "0")}`, name, config, deployments: [], productionId: null };
    this.models.set(name, model);
    return model;
  }

  /** A new published deployment: a model's first one is production at once, later ones only via `--promote`. */
  private addDeployment(model: FakeBasetenModel, promote: boolean): FakeBasetenDeployment {
    const d: FakeBasetenDeployment = {
      id: `d${String(this.nextId++).padStart(6, "0")}`,
      status: "BUILDING",
      active_replica_count: 0,
      autoscaling_settings: { min_replica: 0, max_replica: 1, autoscaling_window: 60, scale_down_delay: 900, concurrency_target: 1, target_utilization_percentage: 70 },
      autoProgress: true,
      promoteWhenReady: promote,
    };
    if (model.deployments.length === 0) model.productionId = d.id;
    model.deployments.push(d);
    return d;
  }

  /** One read of a deployment moves it a step along BUILDING → … → ACTIVE (SCALED_TO_ZERO with min 0). */
  private progress(model: FakeBasetenModel, d: FakeBasetenDeployment): void {
    if (d.autoProgress) {
      const i = PROGRESSION.indexOf(d.status);
      if (i >= 0 && i < PROGRESSION.length - 1) d.status = PROGRESSION[i + 1];
      if (d.status === "ACTIVE" && Number(d.autoscaling_settings.min_replica) === 0) d.status = "SCALED_TO_ZERO";
      if (d.status === "ACTIVE") d.active_replica_count = Number(d.autoscaling_settings.min_replica);
    }
    if (d.promoteWhenReady && (d.status === "ACTIVE" || d.status === "SCALED_TO_ZERO")) {
      model.productionId = d.id;
      d.promoteWhenReady = false;
    }
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
    const stall = this.stalls.find((x) => x.times > 0 && `${method} ${url.pathname}`.startsWith(x.prefix));
    if (stall) {
      stall.times--;
      await new Promise<void>((r) => res.once("close", () => r()));
      return;
    }

    const p = url.pathname.replace(/^\/v1/, "");
    const byId = (id: string) => [...this.models.values()].find((m) => m.id === id);
    const modelRoute = /^\/models\/([^/]+)$/.exec(p);
    const deploymentRoute = /^\/models\/([^/]+)\/deployments\/([^/]+)$/.exec(p);
    const autoscalingRoute = /^\/models\/([^/]+)\/deployments\/([^/]+)\/autoscaling_settings$/.exec(p);
    /** The model and its deployment (`production` or an id), or the 404 already sent. */
    const findDeployment = (modelId: string, ref: string): { model: FakeBasetenModel; d: FakeBasetenDeployment } | undefined => {
      const model = byId(modelId);
      if (!model) return void sendJson(res, 404, { error: `Model ${modelId} not found` });
      const d = ref === "production" ? this.production(model) : model.deployments.find((x) => x.id === ref);
      if (!d) return void sendJson(res, 404, { error: `Deployment ${ref} of model ${modelId} not found` });
      return { model, d };
    };
    if (method === "GET" && p === "/models") {
      return sendJson(res, 200, {
        models: [...this.models.values()].map((x) => ({ id: x.id, name: x.name, created_at: "2026-11-27T02:00:00Z", deployments_count: x.deployments.length, production_deployment_id: x.productionId, development_deployment_id: null, instance_type_name: "L4" })),
      });
    }
    if (modelRoute) {
      const m = modelRoute;
      const model = byId(m[1]);
      if (!model) return sendJson(res, 404, { error: `Model ${m[1]} not found` });
      if (method === "GET") return sendJson(res, 200, { id: model.id, name: model.name, production_deployment_id: model.productionId });
      if (method === "DELETE") {
        this.models.delete(model.name);
        return sendJson(res, 200, { id: model.id, deleted: true });
      }
    }
    if (deploymentRoute && method === "GET") {
      const found = findDeployment(deploymentRoute[1], deploymentRoute[2]);
      if (!found) return;
      const { model, d } = found;
      this.progress(model, d);
      const isProduction = d.id === model.productionId;
      return sendJson(res, 200, { id: d.id, created_at: "2026-11-27T02:00:00Z", name: `deployment-${model.deployments.indexOf(d) + 1}`, model_id: model.id, is_production: isProduction, is_development: false, status: d.status, active_replica_count: d.active_replica_count, autoscaling_settings: d.autoscaling_settings, environment: isProduction ? "production" : null });
    }
    if (autoscalingRoute && method === "PATCH") {
      const found = findDeployment(autoscalingRoute[1], autoscalingRoute[2]);
      if (!found) return;
      const { d } = found;
      const b = (body ?? {}) as Record<string, unknown>;
      const unknown = Object.keys(b).filter((k) => !AUTOSCALING_FIELDS.includes(k));
      if (unknown.length) return sendJson(res, 400, { error: `Unknown autoscaling settings: ${unknown.join(", ")}` });
      const delay = b.scale_down_delay;
      if (delay !== undefined && (typeof delay !== "number" || delay < 0 || delay > 3600)) return sendJson(res, 400, { error: "scale_down_delay must be between 0 and 3600" });
      const before = JSON.stringify(d.autoscaling_settings);
      Object.assign(d.autoscaling_settings, b);
      const changed = before !== JSON.stringify(d.autoscaling_settings);
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
