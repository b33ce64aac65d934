import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { ExecResult, ProviderContext } from "../base/types";

/**
 * Fake Baseten: the management API (`/v1/models`, production deployment, autoscaling, secrets) over HTTP on
 * loopback, plus a fake `truss` CLI whose `push` creates the model in the same store. Follows
 * provider-apis.md §5: `Authorization: Api-Key <key>`, JSON errors `{"error": "..."}`, 401 on a bad key,
 * 404 for unknown models. Deployments go BUILDING → DEPLOYING → ACTIVE as they are read (or are set).
 */

export interface RecordedHttp {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

export interface FakeCliCall {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  files: Record<string, string>;
}

export interface FakeBasetenModel {
  id: string;
  name: string;
  config: string;
  deployment: { id: string; status: string; active_replica_count: number; autoscaling_settings: Record<string, unknown> };
  autoProgress: boolean;
}

const PROGRESSION = ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"];
const AUTOSCALING_FIELDS = ["min_replica", "max_replica", "autoscaling_window", "scale_down_delay", "concurrency_target", "target_utilization_percentage", "target_in_flight_tokens"];

export class FakeBaseten {
  readonly requests: RecordedHttp[] = [];
  readonly calls: FakeCliCall[] = [];
  readonly models = new Map<string, FakeBasetenModel>();
  readonly secrets = new Map<string, string>();
  trussInstalled = true;
  url = "";
  private server?: Server;
  private nextId = 1;
  private readonly httpFailures = new Map<string, Array<{ status: number; body: unknown }>>();
  private readonly pushFailures: Array<{ code: number; stdout: string; createModel: boolean }> = [];

  constructor(readonly apiKey = "bt_fake_api_key_0123456789") {}

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    return this.url;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  reset(): void {
    this.requests.length = 0;
    this.calls.length = 0;
    this.models.clear();
    this.secrets.clear();
    this.trussInstalled = true;
    this.httpFailures.clear();
    this.pushFailures.length = 0;
  }

  /** The next `times` requests whose "METHOD /path" starts with `prefix` answer `status`. */
  failHttp(prefix: string, times: number, status: number, body: unknown = { error: "rate limited" }): void {
    const list = this.httpFailures.get(prefix) ?? [];
    for (let i = 0; i < times; i++) list.push({ status, body });
    this.httpFailures.set(prefix, list);
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

  commandLines(): string[] {
    return this.calls.map((c) => [c.cmd, ...c.args].join(" "));
  }

  httpLines(): string[] {
    return this.requests.map((r) => `${r.method} ${r.path}`);
  }

  // ---------------------------------------------------------------- truss CLI

  readonly exec: NonNullable<ProviderContext["exec"]> = async (cmd, args, opts) => {
    const call: FakeCliCall = { cmd, args: [...args], env: { ...(opts.env ?? {}) }, cwd: opts.cwd, files: {} };
    this.calls.push(call);
    if (!this.trussInstalled || cmd !== "truss") throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT" });
    if (args[0] === "--version") return ok("0.11.9\n");
    if (args[0] !== "push") return { code: 2, stdout: "", stderr: `Error: No such command '${args[0]}'.\n` };

    const home = call.env.HOME;
    let rc = "";
    try {
      rc = readFileSync(path.join(home ?? "/nonexistent", ".trussrc"), "utf8");
      call.files[".trussrc"] = rc;
    } catch {
      return { code: 1, stdout: "💻 Let's add a Baseten remote!\nError: no remote configured; run `truss login`\n", stderr: "" };
    }
    const key = /^api_key = (.*)$/m.exec(rc)?.[1];
    if (key !== this.apiKey) return { code: 1, stdout: "Error: Invalid API key. Unauthorized (401).\n", stderr: "" };
    const dir = path.resolve(opts.cwd ?? ".", args[1] ?? ".");
    let config: string;
    try {
      config = readFileSync(path.join(dir, "config.yaml"), "utf8");
      call.files["config.yaml"] = config;
    } catch {
      return { code: 1, stdout: "Error: no config.yaml found in the Truss directory\n", stderr: "" };
    }
    const nameLine = /^model_name: (.+)$/m.exec(config);
    if (!nameLine) return { code: 1, stdout: "Error: config.yaml has no model_name\n", stderr: "" };
    const name = JSON.parse(nameLine[1]) as string;
    for (const m of config.matchAll(/^ {2}([a-z0-9_]+): null$/gm)) {
      if (!this.secrets.has(m[1])) return { code: 1, stdout: `Error: secret '${m[1]}' is not defined in your workspace\n`, stderr: "" };
    }
    const failure = this.pushFailures.shift();
    if (failure && !failure.createModel) return { code: failure.code, stdout: failure.stdout, stderr: "" };
    const model = this.createModel(name, config);
    if (failure) return { code: failure.code, stdout: failure.stdout, stderr: "" };
    return ok(
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://fake");
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      return json(res, 400, { error: "Invalid JSON body" });
    }
    const method = req.method ?? "GET";
    this.requests.push({ method, path: url.pathname, headers, body });

    if (headers.authorization !== `Api-Key ${this.apiKey}`) return json(res, 401, { error: "Invalid API key" });
    const line = `${method} ${url.pathname}`;
    for (const [prefix, list] of this.httpFailures) {
      const f = line.startsWith(prefix) ? list.shift() : undefined;
      if (f) {
        if (f.status === 429) res.setHeader("Retry-After", "1");
        return json(res, f.status, f.body);
      }
    }

    const p = url.pathname.replace(/^\/v1/, "");
    const byId = (id: string) => [...this.models.values()].find((m) => m.id === id);
    const modelRoute = /^\/models\/([^/]+)$/.exec(p);
    const productionRoute = /^\/models\/([^/]+)\/deployments\/production$/.exec(p);
    const autoscalingRoute = /^\/models\/([^/]+)\/deployments\/production\/autoscaling_settings$/.exec(p);
    if (method === "GET" && p === "/models") {
      return json(res, 200, {
        models: [...this.models.values()].map((x) => ({ id: x.id, name: x.name, created_at: "2026-11-27T02:00:00Z", deployments_count: 1, production_deployment_id: x.deployment.id, development_deployment_id: null, instance_type_name: "L4" })),
      });
    }
    if (modelRoute) {
      const m = modelRoute;
      const model = byId(m[1]);
      if (!model) return json(res, 404, { error: `Model ${m[1]} not found` });
      if (method === "GET") return json(res, 200, { id: model.id, name: model.name, production_deployment_id: model.deployment.id });
      if (method === "DELETE") {
        this.models.delete(model.name);
        return json(res, 200, { id: model.id, deleted: true });
      }
    }
    if (productionRoute && method === "GET") {
      const m = productionRoute;
      const model = byId(m[1]);
      if (!model) return json(res, 404, { error: `Model ${m[1]} not found` });
      const d = model.deployment;
      if (model.autoProgress) {
        const i = PROGRESSION.indexOf(d.status);
        if (i >= 0 && i < PROGRESSION.length - 1) d.status = PROGRESSION[i + 1];
        if (d.status === "ACTIVE" && Number(d.autoscaling_settings.min_replica) === 0) d.status = "SCALED_TO_ZERO";
        if (d.status === "ACTIVE") d.active_replica_count = Number(d.autoscaling_settings.min_replica);
      }
      return json(res, 200, { id: d.id, created_at: "2026-11-27T02:00:00Z", name: "deployment-1", model_id: model.id, is_production: true, is_development: false, status: d.status, active_replica_count: d.active_replica_count, autoscaling_settings: d.autoscaling_settings, environment: "production" });
    }
    if (autoscalingRoute && method === "PATCH") {
      const m = autoscalingRoute;
      const model = byId(m[1]);
      if (!model) return json(res, 404, { error: `Model ${m[1]} not found` });
      const b = (body ?? {}) as Record<string, unknown>;
      const unknown = Object.keys(b).filter((k) => !AUTOSCALING_FIELDS.includes(k));
      if (unknown.length) return json(res, 400, { error: `Unknown autoscaling settings: ${unknown.join(", ")}` });
      const delay = b.scale_down_delay;
      if (delay !== undefined && (typeof delay !== "number" || delay < 0 || delay > 3600)) return json(res, 400, { error: "scale_down_delay must be between 0 and 3600" });
      const before = JSON.stringify(model.deployment.autoscaling_settings);
      Object.assign(model.deployment.autoscaling_settings, b);
      const changed = before !== JSON.stringify(model.deployment.autoscaling_settings);
      return json(res, 200, { status: changed ? "ACCEPTED" : "UNCHANGED", message: changed ? "Autoscaling settings updated" : "No changes" });
    }
    if (p === "/secrets") {
      if (method === "GET") return json(res, 200, { secrets: [...this.secrets.keys()].map((name) => ({ name, created_at: "2026-11-27T02:00:00Z" })) });
      if (method === "POST") {
        const b = (body ?? {}) as Record<string, unknown>;
        if (typeof b.name !== "string" || typeof b.value !== "string") return json(res, 400, { error: "name and value are required" });
        this.secrets.set(b.name, b.value);
        return json(res, 200, { name: b.name, created_at: "2026-11-27T02:00:00Z" });
      }
    }
    return json(res, 404, { error: "Not found" });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}

function ok(stdout: string): ExecResult {
  return { code: 0, stdout, stderr: "" };
}
