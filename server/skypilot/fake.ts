import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { FakeHttpServer, INVALID_JSON, OutcomeQueues, parseJsonBody, readIncoming } from "../providers/base/fake-server";

/**
 * A local fake of the SkyPilot API server (provider-apis.md §1.11 checklist): bearer `sky_` auth, version
 * headers (400 when too old), async requests (200 `null` + `X-Skypilot-Request-ID`) that go
 * PENDING → RUNNING → SUCCEEDED/FAILED as they are observed, `/api/get`, `/api/status`, `/api/cancel`,
 * services with replica progression, storage, the accelerator catalog, and failure injection per route.
 * It keeps every request it received (`requests`) so tests can assert exact bodies and headers.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string[]>;
  headers: Record<string, string>;
  body: unknown;
}

export interface FakeReplica {
  replica_id: number;
  name: string;
  status: string;
  version: number;
  launched_at: number;
  endpoint: string | null;
  is_spot: boolean;
}

export interface FakeService {
  name: string;
  task: string;
  status: string;
  endpoint: string | null;
  minReplicas: number;
  maxReplicas: number;
  replicas: FakeReplica[];
  nextReplicaId: number;
  /** When false, status polls no longer advance this service (tests set states by hand). */
  autoProgress: boolean;
  /** Bumped by every `serve update`. */
  version: number;
}

export interface FakeStorage {
  name: string;
  launched_at: number;
  store: string[];
  last_use: string;
  status: string;
}

/** `[cloud, instance_type, accelerator_name, accelerator_count, cpu_count, device_memory, memory, price, spot_price, region]` */
export type FakeOffer = [string, string, string, number, number, number, number, number | null, number | null, string];

type Failure =
  | { kind: "http"; status: number; body: unknown }
  | { kind: "request"; type: string; message: string | ((body: Record<string, unknown>) => string) };

interface FakeRequest {
  request_id: string;
  name: string;
  route: string;
  body: Record<string, unknown>;
  status: "PENDING" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
  observations: number;
  created_at: number;
  finished_at: number | null;
  return_value: unknown;
  error: { type: string; message: string } | null;
  failure?: { type: string; message: string };
  waiters: Array<() => void>;
}

export interface FakeSkyPilotOptions {
  /** Service-account token the fake accepts; unset = no auth (loopback server). */
  token?: string;
  apiVersion?: number;
  minCompatibleApiVersion?: number;
  version?: string;
  /** Observations (status polls) a request needs before it finishes: 0 = done at once. */
  observationsToFinish?: number;
  /** Load-balancer endpoint the fake reports for a service. */
  endpointFor?: (serviceName: string) => string | null;
  /** When true, requests stay RUNNING until `release()`. */
  holdRequests?: boolean;
  /** When true, `serve up` returns a null endpoint and the service gets it once the controller is up. */
  lateEndpoint?: boolean;
}

const REQUIRED_FIELDS: Record<string, string[]> = {
  "/serve/up": ["task", "service_name"],
  "/serve/update": ["task", "service_name", "mode"],
  "/serve/status": ["service_names"],
  "/serve/down": ["service_names"],
  "/storage/delete": ["name"],
  "/validate": ["dag"],
};

const ROUTE_NAMES: Record<string, string> = {
  "/serve/up": "sky.serve.up",
  "/serve/update": "sky.serve.update",
  "/serve/status": "sky.serve.status",
  "/serve/down": "sky.serve.down",
  "/storage/ls": "sky.storage_ls",
  "/storage/delete": "sky.storage_delete",
  "/list_accelerators": "sky.list_accelerators",
  "/enabled_clouds": "sky.enabled_clouds",
  "/api/cancel": "sky.api_cancel",
};

const REPLICA_PROGRESSION = ["PENDING", "PROVISIONING", "STARTING", "READY"];

export class FakeSkyPilotServer extends FakeHttpServer<RecordedRequest> {
  readonly services = new Map<string, FakeService>();
  readonly storage = new Map<string, FakeStorage>();
  offers: FakeOffer[] = [];
  /** Clouds whose credentials the fake server "holds" (as `str(cloud)` spells them). */
  enabledClouds: string[] = ["AWS", "GCP", "Azure"];
  holdRequests: boolean;
  /** Routes whose requests stay RUNNING until `release()` (e.g. a long `/serve/up`). */
  readonly heldRoutes = new Set<string>();
  /**
   * Paths whose HTTP requests are recorded and then never answered until `release()`/`close()` (a wedged
   * server or proxy), unlike `heldRoutes`, whose submissions are answered at once and stay RUNNING.
   */
  readonly stalledPaths = new Set<string>();
  private readonly stalled: Array<() => void> = [];
  private readonly opts: Required<Omit<FakeSkyPilotOptions, "token" | "holdRequests">> & { token?: string };
  private readonly lateEndpoints = new Map<string, string | null>();
  private readonly pending = new Map<string, FakeRequest>();
  private readonly failures = new OutcomeQueues<Failure>();

  constructor(opts: FakeSkyPilotOptions = {}) {
    super();
    this.opts = {
      token: opts.token,
      apiVersion: opts.apiVersion ?? 33,
      minCompatibleApiVersion: opts.minCompatibleApiVersion ?? 24,
      version: opts.version ?? "0.11.1",
      observationsToFinish: opts.observationsToFinish ?? 2,
      endpointFor: opts.endpointFor ?? (() => "http://10.0.0.1:30001"),
      lateEndpoint: opts.lateEndpoint ?? false,
    };
    this.holdRequests = opts.holdRequests ?? false;
  }

  async start(): Promise<string> {
    this.url = await this.listen();
    return this.url;
  }

  async close(): Promise<void> {
    this.release();
    await super.close();
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    this.json(res, 500, { detail: String(err) });
  }

  // ---------------------------------------------------------------- test controls

  /** The next `times` submissions to `route` answer HTTP `status` with `body` (e.g. 503 shutting down). */
  failHttp(route: string, times: number, status: number, body: unknown = { detail: "Server is shutting down, please try again later." }): void {
    this.queueFailure(route, times, { kind: "http", status, body });
  }

  /**
   * The next `times` requests to `route` are accepted, then FAIL inside with a Python exception (a message
   * function gets the request body, e.g. to echo the task the way a YAML error does).
   */
  failRequest(route: string, times: number, type: string, message: string | ((body: Record<string, unknown>) => string)): void {
    this.queueFailure(route, times, { kind: "request", type, message });
  }

  private queueFailure(route: string, times: number, f: Failure): void {
    this.failures.add(route, times, f);
  }

  /** Lets held requests finish. */
  release(): void {
    this.holdRequests = false;
    this.heldRoutes.clear();
    this.stalledPaths.clear();
    for (const answer of this.stalled.splice(0)) answer();
    for (const r of this.pending.values()) this.finish(r);
  }

  addStorage(name: string, store = "S3"): void {
    this.storage.set(name, { name, launched_at: 1764200000, store: [store], last_use: "sky storage", status: "READY" });
  }

  setReplicaStatus(service: string, replicaId: number, status: string): void {
    const s = this.mustService(service);
    const r = s.replicas.find((x) => x.replica_id === replicaId);
    if (!r) throw new Error(`fake: no replica ${replicaId} in ${service}`);
    r.status = status;
    s.autoProgress = false;
    this.recomputeServiceStatus(s);
  }

  setServiceStatus(service: string, status: string): void {
    const s = this.mustService(service);
    s.status = status;
    s.autoProgress = false;
  }

  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Submissions of async routes (no `/api/*` bookkeeping, no health). */
  submittedRoutes(): string[] {
    return this.requests.filter((r) => !r.path.startsWith("/api/")).map((r) => `${r.method} ${r.path}`);
  }

  private mustService(name: string): FakeService {
    const s = this.services.get(name);
    if (!s) throw new Error(`fake: no service ${name}`);
    return s;
  }

  // ---------------------------------------------------------------- HTTP

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, headers, raw } = await readIncoming(req);
    const body = parseJsonBody(raw) ?? null;
    if (body === INVALID_JSON) return this.json(res, 400, { detail: "There was an error parsing the body" });
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) query[k] = [...(query[k] ?? []), v];
    this.requests.push({ method: req.method ?? "GET", path: url.pathname, query, headers, body });
    if (this.stalledPaths.has(url.pathname)) {
      await new Promise<void>((r) => this.stalled.push(r));
      res.destroy();
      return;
    }

    // 1. version headers: checked only when both are present (legacy clients skip the check).
    const apiHeader = headers["x-skypilot-api-version"];
    const versionHeader = headers["x-skypilot-version"];
    const versioned = apiHeader !== undefined && versionHeader !== undefined;
    if (versioned) {
      if (!/^\d+$/.test(apiHeader)) return this.json(res, 500, { detail: "Internal Server Error" });
      res.setHeader("X-SkyPilot-API-Version", String(this.opts.apiVersion));
      res.setHeader("X-SkyPilot-Version", this.opts.version);
      if (Number(apiHeader) < this.opts.minCompatibleApiVersion) {
        return this.json(res, 400, {
          error: "version_mismatch",
          message: `Your SkyPilot client (API version ${apiHeader}) is too old for this server (minimum ${this.opts.minCompatibleApiVersion}).\nUpgrade with: pip install -U skypilot`,
        });
      }
    }

    // 2. auth
    const authError = this.checkAuth(headers);
    if (url.pathname === "/api/health") {
      if (authError) {
        if (!versioned) return this.json(res, 200, { status: "healthy" });
        if (Number(apiHeader) >= 14) return this.json(res, 200, { status: "needs_auth", api_version: String(this.opts.apiVersion), version: this.opts.version });
        return this.json(res, 401, { detail: authError });
      }
      return this.json(res, 200, {
        status: "healthy",
        api_version: String(this.opts.apiVersion),
        version: this.opts.version,
        version_on_disk: this.opts.version,
        commit: "0000000",
        basic_auth_enabled: false,
        service_account_token_enabled: this.opts.token !== undefined,
        ingress_basic_auth_enabled: false,
        ...(this.opts.token ? { user: { id: "ab12cd34", name: "ci-bot" } } : {}),
      });
    }
    if (authError) return this.json(res, 401, { detail: authError });

    // 3. request management
    if (url.pathname === "/api/get" && req.method === "GET") return this.apiGet(url, res);
    if (url.pathname === "/api/status" && req.method === "GET") return this.apiStatus(url, res);

    // 4. async routes
    const route = url.pathname;
    const isGet = route === "/storage/ls" || route === "/enabled_clouds";
    const known = route in ROUTE_NAMES || route === "/validate";
    if (!known) return this.json(res, 404, { detail: "Not Found" });
    if ((isGet && req.method !== "GET") || (!isGet && req.method !== "POST")) return this.json(res, 405, { detail: "Method Not Allowed" });
    const obj = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const missing = (REQUIRED_FIELDS[route] ?? []).filter((f) => !(f in obj));
    if (missing.length) {
      return this.json(res, 422, {
        detail: missing.map((f) => ({ type: "missing", loc: ["body", f], msg: "Field required", input: obj })),
      });
    }

    const failure = this.failures.next(route);
    if (failure?.kind === "http") return this.json(res, failure.status, failure.body);
    if (route === "/serve/update" && obj.mode !== "rolling" && obj.mode !== "blue_green") {
      return this.json(res, 422, {
        detail: [{ type: "enum", loc: ["body", "mode"], msg: "Input should be 'rolling' or 'blue_green'", input: obj.mode }],
      });
    }

    if (route === "/validate") {
      const problem = validateServiceTask(String(obj.dag));
      return problem ? this.json(res, 400, { detail: { type: "ValueError", message: problem } }) : this.json(res, 200, null);
    }

    const r: FakeRequest = {
      request_id: randomUUID(),
      name: ROUTE_NAMES[route],
      route,
      body: obj,
      status: "PENDING",
      observations: 0,
      created_at: Date.now() / 1000,
      finished_at: null,
      return_value: null,
      error: null,
      failure: failure?.kind === "request" ? { type: failure.type, message: typeof failure.message === "function" ? failure.message(obj) : failure.message } : undefined,
      waiters: [],
    };
    this.pending.set(r.request_id, r);
    if (this.opts.observationsToFinish === 0 && !this.isHeld(r)) this.finish(r);
    res.setHeader("X-Skypilot-Request-ID", r.request_id);
    return this.json(res, 200, null);
  }

  private checkAuth(headers: Record<string, string>): string | null {
    if (!this.opts.token) return null;
    const auth = headers.authorization;
    if (!auth) return "Authentication required";
    const m = /^Bearer (.+)$/.exec(auth);
    if (!m) return "Invalid authentication method";
    const value = m[1];
    if (!value.startsWith("sky_") && headers["x-skypilot-auth-mode"] !== "token") return "Invalid authentication method";
    if (value !== this.opts.token) return "Invalid or expired service account token";
    return null;
  }

  private findRequest(idOrPrefix: string): FakeRequest | "ambiguous" | undefined {
    const exact = this.pending.get(idOrPrefix);
    if (exact) return exact;
    const matches = [...this.pending.values()].filter((r) => r.request_id.startsWith(idOrPrefix));
    if (matches.length > 1) return "ambiguous";
    return matches[0];
  }

  private isHeld(r: FakeRequest): boolean {
    return this.holdRequests || this.heldRoutes.has(r.route);
  }

  /** One observation moves a request one step: PENDING → RUNNING → … → finished. */
  private observe(r: FakeRequest): void {
    if (r.status !== "PENDING" && r.status !== "RUNNING") return;
    r.observations++;
    if (r.status === "PENDING") r.status = "RUNNING";
    if (!this.isHeld(r) && r.observations >= this.opts.observationsToFinish) this.finish(r);
  }

  private apiStatus(url: URL, res: ServerResponse): void {
    const ids = url.searchParams.getAll("request_ids");
    const all = url.searchParams.get("all_status") === "true";
    let list: FakeRequest[];
    if (ids.length) {
      list = [];
      for (const id of ids) {
        const r = this.findRequest(id);
        if (r === "ambiguous") {
          this.json(res, 400, { detail: `Multiple requests found for request ID prefix: ${id}` });
          return;
        }
        if (r) list.push(r);
      }
    } else list = [...this.pending.values()].filter((r) => all || r.status === "PENDING" || r.status === "RUNNING");
    for (const r of list) this.observe(r);
    this.json(res, 200, list.map((r) => this.payload(r)));
  }

  private async apiGet(url: URL, res: ServerResponse): Promise<void> {
    const id = url.searchParams.get("request_id") ?? "";
    const r = this.findRequest(id);
    if (r === "ambiguous") return this.json(res, 400, { detail: `Multiple requests found for request ID prefix: ${id}` });
    if (!r) return this.json(res, 404, { detail: `Request '${id}' not found` });
    // The real server holds the connection until the request ends.
    if (r.status === "PENDING" || r.status === "RUNNING") {
      if (this.isHeld(r)) await new Promise<void>((resolve) => r.waiters.push(resolve));
      else this.finish(r);
    }
    const payload = this.payload(r);
    if (r.status === "SUCCEEDED") return this.json(res, 200, payload);
    return this.json(res, 500, { detail: payload });
  }

  private payload(r: FakeRequest): Record<string, unknown> {
    return {
      request_id: r.request_id,
      name: r.name,
      entrypoint: "",
      request_body: JSON.stringify(r.body),
      status: r.status,
      created_at: r.created_at,
      finished_at: r.finished_at,
      user_id: "ab12cd34",
      user_name: "ci-bot",
      return_value: JSON.stringify(r.return_value),
      error: JSON.stringify(r.error ? { object: "gAROLg==", type: r.error.type, message: r.error.message } : null),
      pid: 4242,
      schedule_type: r.route === "/serve/up" || r.route === "/storage/delete" ? "long" : "short",
      cluster_name: null,
      status_msg: null,
      should_retry: false,
    };
  }

  private finish(r: FakeRequest): void {
    if (r.status === "SUCCEEDED" || r.status === "FAILED" || r.status === "CANCELLED") return;
    r.finished_at = Date.now() / 1000;
    if (r.failure) {
      r.status = "FAILED";
      r.error = r.failure;
    } else {
      try {
        r.return_value = this.execute(r.route, r.body);
        r.status = "SUCCEEDED";
      } catch (err) {
        r.status = "FAILED";
        r.error = err instanceof FakeRequestError ? { type: err.type, message: err.message } : { type: "RuntimeError", message: String(err) };
      }
    }
    for (const w of r.waiters.splice(0)) w();
  }

  // ---------------------------------------------------------------- route semantics

  private execute(route: string, body: Record<string, unknown>): unknown {
    switch (route) {
      case "/serve/up":
        return this.serveUp(String(body.task), String(body.service_name));
      case "/serve/update":
        return this.serveUpdate(String(body.task), String(body.service_name));
      case "/serve/status":
        return this.serveStatus(body.service_names);
      case "/serve/down":
        return this.serveDown(body.service_names, body.all === true);
      case "/storage/ls":
        return [...this.storage.values()];
      case "/storage/delete": {
        const name = String(body.name);
        if (!this.storage.delete(name)) throw new FakeRequestError("ValueError", `Storage name '${name}' not found.`);
        return null;
      }
      case "/list_accelerators":
        return this.listAccelerators(body);
      case "/api/cancel":
        return this.cancel(body.request_ids);
      case "/enabled_clouds":
        return [...this.enabledClouds];
      default:
        return null;
    }
  }

  /** Cancels unfinished requests (null = all); returns the ids actually cancelled. */
  private cancel(ids: unknown): string[] {
    const wanted = Array.isArray(ids) ? ids.map(String) : null;
    const cancelled: string[] = [];
    for (const r of this.pending.values()) {
      if (r.route === "/api/cancel" || (r.status !== "PENDING" && r.status !== "RUNNING")) continue;
      if (wanted && !wanted.some((w) => r.request_id.startsWith(w))) continue;
      r.status = "CANCELLED";
      r.finished_at = Date.now() / 1000;
      for (const w of r.waiters.splice(0)) w();
      cancelled.push(r.request_id);
    }
    return cancelled;
  }

  private serveUp(task: string, name: string): unknown {
    const problem = validateServiceTask(task);
    if (problem) throw new FakeRequestError("ValueError", problem);
    if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) throw new FakeRequestError("ValueError", `Invalid service name '${name}'.`);
    if (this.services.has(name)) throw new FakeRequestError("ValueError", `Service '${name}' already exists.`);
    const min = Number(/^\s+min_replicas:\s*(\d+)/m.exec(task)?.[1] ?? /^\s+replicas:\s*(\d+)/m.exec(task)?.[1] ?? 1);
    const max = Number(/^\s+max_replicas:\s*(\d+)/m.exec(task)?.[1] ?? min);
    let endpoint = this.opts.endpointFor(name);
    if (this.opts.lateEndpoint) {
      this.lateEndpoints.set(name, endpoint);
      endpoint = null;
    }
    this.services.set(name, {
      name,
      task,
      status: "CONTROLLER_INIT",
      endpoint,
      minReplicas: min,
      maxReplicas: max,
      replicas: [],
      nextReplicaId: 1,
      autoProgress: true,
      version: 1,
    });
    return [name, endpoint];
  }

  /** A new version: its replicas replace the old ones (the fake rolls them all at once). */
  private serveUpdate(task: string, name: string): null {
    const s = this.services.get(name);
    if (!s) throw new FakeRequestError("ValueError", `Service '${name}' does not exist.`);
    if (["SHUTTING_DOWN", "FAILED", "CONTROLLER_FAILED", "FAILED_CLEANUP"].includes(s.status)) {
      throw new FakeRequestError("RuntimeError", `Service '${name}' is ${s.status}; cannot update it.`);
    }
    const problem = validateServiceTask(task);
    if (problem) throw new FakeRequestError("ValueError", problem);
    s.task = task;
    s.version++;
    s.minReplicas = Number(/^\s+min_replicas:\s*(\d+)/m.exec(task)?.[1] ?? s.minReplicas);
    s.maxReplicas = Number(/^\s+max_replicas:\s*(\d+)/m.exec(task)?.[1] ?? s.minReplicas);
    s.replicas = [];
    for (let i = 0; i < s.minReplicas; i++) this.addReplica(s);
    s.autoProgress = true;
    if (s.status !== "CONTROLLER_INIT") this.recomputeServiceStatus(s);
    return null;
  }

  private addReplica(s: FakeService): void {
    const id = s.nextReplicaId++;
    s.replicas.push({ replica_id: id, name: `${s.name}-${id}`, status: "PENDING", version: s.version, launched_at: 1764200000, endpoint: null, is_spot: true });
  }

  private serveStatus(names: unknown): unknown {
    const wanted = names === null ? null : Array.isArray(names) ? names.map(String) : [String(names)];
    const list = [...this.services.values()].filter((s) => wanted === null || wanted.includes(s.name));
    for (const s of list) this.progress(s);
    return list.map((s) => ({
      name: s.name,
      controller_job_id: 1,
      uptime: 60,
      status: s.status,
      controller_port: 20001,
      load_balancer_port: 30001,
      endpoint: s.endpoint,
      policy: `Autoscaling from ${s.minReplicas} to ${s.maxReplicas} replicas`,
      requested_resources_str: "1x [Spot]",
      load_balancing_policy: "least_load",
      tls_encrypted: false,
      active_versions: [s.version],
      version: s.version,
      replica_info: s.replicas.map((r) => ({ ...r, handle: "gAROLg==" })),
    }));
  }

  /** CONTROLLER_INIT → REPLICA_INIT → (replicas PENDING → PROVISIONING → STARTING → READY) → READY, or NO_REPLICA at min 0. */
  private progress(s: FakeService): void {
    if (!s.autoProgress) return;
    if (s.status === "CONTROLLER_INIT") {
      s.status = "REPLICA_INIT";
      if (this.lateEndpoints.has(s.name)) s.endpoint = this.lateEndpoints.get(s.name) ?? null;
      for (let i = 0; i < s.minReplicas; i++) this.addReplica(s);
      return;
    }
    for (const r of s.replicas) {
      const i = REPLICA_PROGRESSION.indexOf(r.status);
      if (i >= 0 && i < REPLICA_PROGRESSION.length - 1) {
        r.status = REPLICA_PROGRESSION[i + 1];
        if (r.status === "READY" && probeLockedOut(s.task)) r.status = "FAILED_INITIAL_DELAY";
        if (r.status === "READY") r.endpoint = `http://10.0.1.${r.replica_id}:8000`;
      }
    }
    this.recomputeServiceStatus(s);
  }

  private recomputeServiceStatus(s: FakeService): void {
    if (["SHUTTING_DOWN", "FAILED", "CONTROLLER_FAILED", "FAILED_CLEANUP"].includes(s.status)) return;
    if (s.replicas.some((r) => r.status === "READY")) s.status = "READY";
    else if (s.replicas.length === 0 || s.replicas.every((r) => r.status.startsWith("FAILED") || r.status === "PREEMPTED")) s.status = "NO_REPLICA";
    else s.status = "REPLICA_INIT";
  }

  private serveDown(names: unknown, all: boolean): null {
    const wanted = all || names === null ? [...this.services.keys()] : Array.isArray(names) ? names.map(String) : [String(names)];
    const missing = wanted.filter((n) => !this.services.has(n));
    if (missing.length) throw new FakeRequestError("ValueError", `Service(s) '${missing.join("', '")}' does not exist.`);
    for (const n of wanted) this.services.delete(n);
    return null;
  }

  private listAccelerators(body: Record<string, unknown>): unknown {
    const nameFilter = typeof body.name_filter === "string" ? new RegExp(body.name_filter) : null;
    const clouds = body.clouds == null ? null : (Array.isArray(body.clouds) ? body.clouds : [body.clouds]).map((c) => String(c).toLowerCase());
    const region = typeof body.region_filter === "string" ? body.region_filter : null;
    const qty = typeof body.quantity_filter === "number" ? body.quantity_filter : null;
    const requirePrice = body.require_price !== false;
    const out: Record<string, FakeOffer[]> = {};
    for (const o of this.offers) {
      if (nameFilter && !nameFilter.test(o[2])) continue;
      if (clouds && !clouds.includes(o[0].toLowerCase())) continue;
      if (region && o[9] !== region) continue;
      if (qty !== null && o[3] !== qty) continue;
      if (requirePrice && o[7] === null && o[8] === null) continue;
      out[o[2]] = [...(out[o[2]] ?? []), o];
    }
    return out;
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.statusCode = status;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(body));
  }
}

class FakeRequestError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What the engine in a replica does to SkyServe's readiness probe: with an API key set (vLLM `VLLM_API_KEY`,
 * given a value in `secrets:`), `/v1/*` answers 401 to a probe that sends no headers, so the replica never
 * becomes READY; `/health` stays open.
 */
export function probeLockedOut(task: string): boolean {
  const path = /^\s+path:\s*"?([^"\n]*)"?/m.exec(task)?.[1] ?? "";
  const keyed = /^\s+VLLM_API_KEY:\s*(?!null\s*$)\S/m.test(task);
  return keyed && path.startsWith("/v1") && !/^\s+headers:/m.test(task);
}

/**
 * The checks SkyPilot applies to a service task that our generator could get wrong (§1.8). Line-based,
 * because the fake has no YAML parser: it understands the block layout our template emits.
 */
export function validateServiceTask(task: string): string | null {
  const docs = task.split(/^---\s*$/m).filter((d) => d.trim() && !/^\s*name:[^\n]*\s*$/.test(d.trim()));
  if (docs.length !== 1) return `Only one task is allowed in a service YAML, got ${docs.length}.`;
  if (!/^service:/m.test(task)) return "Service section not found in the YAML file.";
  const hasReplicas = /^\s+replicas:\s*\d+/m.test(task);
  const hasPolicy = /^\s+replica_policy:/m.test(task);
  if (hasReplicas === hasPolicy) return "Exactly one of `replicas` or `replica_policy` must be specified.";
  const min = /^\s+min_replicas:\s*(-?\d+)/m.exec(task);
  const max = /^\s+max_replicas:\s*(-?\d+)/m.exec(task);
  if (hasPolicy && !min) return "min_replicas is required in replica_policy.";
  if (min && Number(min[1]) < 0) return "min_replicas must be >= 0.";
  if (min && max && Number(max[1]) < Number(min[1])) return "max_replicas must be greater than or equal to min_replicas.";
  const probe = /^\s+path:\s*"?([^"\n]*)"?/m.exec(task);
  if (!probe) return "readiness_probe path is required.";
  if (!probe[1].startsWith("/")) return "Readiness probe path must start with '/'.";
  if (!/^\s+ports:\s*\d+/m.test(task)) return "The service requires resources.ports to be set.";
  if (/^\s+(base_ondemand_fallback_replicas|dynamic_ondemand_fallback):/m.test(task) && !/^\s+use_spot:\s*true/m.test(task)) {
    return "On-demand fallback requires use_spot: true.";
  }
  return null;
}
