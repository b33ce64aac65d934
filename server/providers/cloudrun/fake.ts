/**
 * Test-only fake of Google's OAuth2 token endpoint (JWT bearer grant, RS256 signature checked against the
 * key's public half), the Cloud Run Admin API v2 (services, long-running operations, IAM) and the Secret
 * Manager v1 calls Tuna uses. Errors are google.rpc.Status JSON (provider-apis.md §3.4).
 */
import { createVerify, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { FakeHttpServer, INVALID_JSON, parseJsonBody, type RecordedRequest, readIncoming } from "../base/fake-server";

export type { RecordedRequest };

interface FakeOperation {
  name: string;
  pollsLeft: number;
  error?: { code: number; message: string };
  response?: unknown;
  onDone?: () => void;
}

export interface FakeSecret {
  name: string;
  labels: Record<string, string>;
  versions: string[];
  policy: { etag: string; bindings: Array<{ role: string; members: string[] }> };
}

const STATUS_NAME: Record<number, string> = {
  400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
  412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
};

export const FAKE_GPU_REGIONS: Record<string, string[]> = {
  "nvidia-l4": ["us-central1", "europe-west1", "europe-west4", "asia-southeast1", "us-east4"],
  "nvidia-rtx-pro-6000": ["us-central1"],
};

function parseMemoryGi(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(Gi|G|Mi|M)$/.exec(v);
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2].startsWith("G") ? n : n / 1024;
}

export class CloudrunFake extends FakeHttpServer {
  /** Keyed by full resource name `projects/p/locations/r/services/s`. */
  readonly services = new Map<string, Record<string, any>>();
  readonly servicePolicies = new Map<string, { etag: string; bindings: Array<{ role: string; members: string[] }> }>();
  /** Keyed by `projects/p/secrets/id`. */
  readonly secrets = new Map<string, FakeSecret>();
  readonly operations = new Map<string, FakeOperation>();
  /** GPU instances allowed per region (maxInstanceCount above it fails with RESOURCE_EXHAUSTED). */
  gpuQuota: Record<string, number> = { "us-central1": 3, "europe-west4": 0 };
  /** Polls an operation needs before `done`. */
  operationPolls = 2;
  runApiEnabled = true;
  /** `expires_in` of the access tokens the fake issues (Google: at most an hour). */
  tokenLifetimeS = 3599;
  /** The fake's clock, for access-token expiry; tests that fake time point it at theirs. */
  now: () => number = () => Date.now();
  /** Issued access tokens → expiry (ms on `now`). */
  private accessTokens = new Map<string, number>();

  constructor(readonly opts: { project: string; clientEmail: string; publicKeyPem: string }) {
    super();
  }

  async start(): Promise<this> {
    this.url = await this.listen();
    return this;
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    this.gerr(res, 500, String(err));
  }

  get tokenUri(): string {
    return `${this.url}/token`;
  }

  get baseUrls(): Record<string, string> {
    return { run: this.url, secretmanager: this.url };
  }

  /** Everything Tuna can leave behind. */
  isEmpty(): boolean {
    return this.services.size === 0 && this.secrets.size === 0;
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
  }

  private gerr(res: ServerResponse, status: number, message: string, details: unknown[] = [], headers: Record<string, string> = {}): void {
    this.send(res, status, { error: { code: status, status: STATUS_NAME[status] ?? "UNKNOWN", message, details } }, headers);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const { url: u, method, headers, raw, query } = await readIncoming(req);
    const body = headers["content-type"]?.startsWith("application/json") ? parseJsonBody(raw) : undefined;
    if (body === INVALID_JSON) return this.gerr(res, 400, "Invalid JSON payload received.");
    this.requests.push({ method, path: u.pathname, query, headers, body, raw });
    const failure = this.takeFailure(method, u.pathname);
    if (failure) {
      if (failure.body) return this.send(res, failure.status, failure.body, failure.headers);
      return this.gerr(res, failure.status, `injected failure ${failure.status}`, [], failure.headers);
    }
    if (u.pathname === "/token" && method === "POST") return this.token(res, raw);

    const auth = headers.authorization ?? "";
    const expiresAt = auth.startsWith("Bearer ") ? this.accessTokens.get(auth.slice(7)) : undefined;
    // An expired token gets the same 401 UNAUTHENTICATED as any invalid one (provider-apis.md §3.4).
    if (expiresAt === undefined || this.now() >= expiresAt) {
      return this.gerr(res, 401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
    }
    const p = u.pathname;
    let m: RegExpMatchArray | null = null;
    m = p.match(/^\/v2\/projects\/([^/]+)\/locations\/([^/]+)\/(.*)$/);
    if (m) {
      if (m[1] !== this.opts.project) return this.gerr(res, 403, `Permission denied on resource project ${m[1]}.`);
      if (!this.runApiEnabled) {
        return this.gerr(res, 403, "Cloud Run Admin API has not been used in project before or it is disabled.", [
          { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "SERVICE_DISABLED", domain: "googleapis.com" },
        ]);
      }
      return this.run(res, method, m[1], m[2], m[3], u.searchParams, body);
    }
    m = p.match(/^\/v1\/projects\/([^/]+)\/secrets(?:\/([^/:]+))?(?::(\w+))?$/);
    if (m) {
      if (m[1] !== this.opts.project) return this.gerr(res, 403, `Permission denied on resource project ${m[1]}.`);
      return this.secretManager(res, method, m[1], m[2], m[3], u.searchParams, body);
    }
    return this.gerr(res, 404, `The requested URL ${p} was not found on this server.`);
  }

  private token(res: ServerResponse, raw: string): unknown {
    const form = new URLSearchParams(raw);
    const bad = (status: number, error: string, description: string) => this.send(res, status, { error, error_description: description });
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return bad(400, "unsupported_grant_type", "Invalid grant_type");
    const jwt = form.get("assertion") ?? "";
    const parts = jwt.split(".");
    if (parts.length !== 3) return bad(400, "invalid_grant", "Invalid JWT: malformed");
    let header: Record<string, unknown>;
    let claims: Record<string, any>;
    try {
      header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
    } catch {
      return bad(400, "invalid_grant", "Invalid JWT: malformed");
    }
    if (header.alg !== "RS256") return bad(400, "invalid_grant", "Invalid JWT: alg must be RS256");
    const ok = createVerify("RSA-SHA256").update(`${parts[0]}.${parts[1]}`).verify(this.opts.publicKeyPem, Buffer.from(parts[2], "base64url"));
    if (!ok) return bad(400, "invalid_grant", "Invalid JWT Signature.");
    if (claims.iss !== this.opts.clientEmail) return bad(401, "invalid_client", "The OAuth client was not found.");
    if (claims.aud !== this.tokenUri) return bad(400, "invalid_grant", "Invalid JWT: Failed audience check.");
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== "number" || typeof claims.exp !== "number" || claims.exp - claims.iat > 3600 || claims.exp < now || claims.iat > now + 300) {
      return bad(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    }
    if (typeof claims.target_audience === "string") {
      const idClaims = { iss: "https://accounts.google.com", aud: claims.target_audience, email: claims.iss, iat: now, exp: now + 3600 };
      const idToken = `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify(idClaims)).toString("base64url")}.${randomBytes(16).toString("base64url")}`;
      return this.send(res, 200, { id_token: idToken });
    }
    if (claims.scope !== "https://www.googleapis.com/auth/cloud-platform") return bad(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    const token = `ya29.${randomBytes(24).toString("hex")}`;
    this.accessTokens.set(token, this.now() + this.tokenLifetimeS * 1000);
    this.send(res, 200, { access_token: token, expires_in: this.tokenLifetimeS, token_type: "Bearer" });
  }

  private newOperation(project: string, region: string, snapshot: unknown, opts: { error?: FakeOperation["error"]; onDone?: () => void } = {}): Record<string, unknown> {
    const name = `projects/${project}/locations/${region}/operations/${randomBytes(8).toString("hex")}`;
    this.operations.set(name, { name, pollsLeft: this.operationPolls, error: opts.error, response: snapshot, onDone: opts.onDone });
    return { name, metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Service", ...(snapshot as object) }, done: false };
  }

  private validateService(region: string, svc: Record<string, any>): Array<{ field: string; description: string }> {
    const v: Array<{ field: string; description: string }> = [];
    const t = svc.template;
    if (!t || typeof t !== "object") return [{ field: "template", description: "template is required" }];
    const containers = t.containers;
    if (!Array.isArray(containers) || containers.length === 0) return [{ field: "template.containers", description: "at least one container is required" }];
    if (typeof containers[0].image !== "string" || !containers[0].image) v.push({ field: "template.containers[0].image", description: "image is required" });
    if (t.timeout !== undefined) {
      const s = /^(\d+)s$/.exec(String(t.timeout));
      if (!s || Number(s[1]) > 3600) v.push({ field: "template.timeout", description: "timeout must be a duration of at most 3600s" });
    }
    if (t.maxInstanceRequestConcurrency !== undefined && (t.maxInstanceRequestConcurrency < 1 || t.maxInstanceRequestConcurrency > 1000)) {
      v.push({ field: "template.maxInstanceRequestConcurrency", description: "must be between 1 and 1000" });
    }
    const sc = t.scaling ?? {};
    if (sc.minInstanceCount !== undefined && sc.maxInstanceCount !== undefined && sc.minInstanceCount > sc.maxInstanceCount) {
      v.push({ field: "template.scaling", description: "minInstanceCount must not exceed maxInstanceCount" });
    }
    const limits = containers[0].resources?.limits ?? {};
    for (const k of Object.keys(limits)) if (!["cpu", "memory", "nvidia.com/gpu"].includes(k)) v.push({ field: `resources.limits.${k}`, description: "unsupported resource" });
    const acc = t.nodeSelector?.accelerator;
    if (acc !== undefined || limits["nvidia.com/gpu"] !== undefined) {
      if (!FAKE_GPU_REGIONS[acc]) v.push({ field: "template.node_selector.accelerator", description: `unsupported accelerator ${acc}` });
      else if (!FAKE_GPU_REGIONS[acc].includes(region)) v.push({ field: "template.node_selector.accelerator", description: `accelerator ${acc} is not available in region ${region}` });
      if (limits["nvidia.com/gpu"] !== "1") v.push({ field: "resources.limits.nvidia.com/gpu", description: "must be \"1\"" });
      if (!(Number(limits.cpu) >= 4)) v.push({ field: "resources.limits.cpu", description: "GPU services need at least 4 CPU" });
      if (!(parseMemoryGi(String(limits.memory)) >= 16)) v.push({ field: "resources.limits.memory", description: "GPU services need at least 16Gi memory" });
      if (containers[0].resources?.cpuIdle !== false) v.push({ field: "resources.cpu_idle", description: "GPU services require CPU always allocated (cpuIdle=false)" });
    }
    for (const [i, e] of (containers[0].env ?? []).entries()) {
      const ref = e.valueSource?.secretKeyRef;
      if (ref && !this.secrets.has(`projects/${this.opts.project}/secrets/${ref.secret}`)) {
        v.push({ field: `template.containers[0].env[${i}]`, description: `secret ${ref.secret} not found` });
      }
    }
    return v;
  }

  private quotaExceeded(region: string, svc: Record<string, any>): boolean {
    const max = svc.template?.scaling?.maxInstanceCount ?? 1;
    return svc.template?.nodeSelector?.accelerator !== undefined && max > (this.gpuQuota[region] ?? 0);
  }

  private run(res: ServerResponse, method: string, project: string, region: string, rest: string, q: URLSearchParams, body: any): unknown {
    const parent = `projects/${project}/locations/${region}`;
    let m: RegExpMatchArray | null = null;
    if (rest === "services" && method === "POST") {
      const id = q.get("serviceId");
      if (!id || !/^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$/.test(id)) return this.gerr(res, 400, "serviceId must be a lowercase DNS label of at most 49 characters.");
      if (!body || typeof body !== "object") return this.gerr(res, 400, "Service is required.");
      if (body.name) return this.gerr(res, 400, "service.name must be empty on create; pass serviceId instead.");
      const violations = this.validateService(region, body);
      if (violations.length) {
        return this.gerr(res, 400, "The request has errors.", [{ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: violations }]);
      }
      const name = `${parent}/services/${id}`;
      if (this.services.has(name)) return this.gerr(res, 409, `Resource '${id}' already exists.`);
      const quota = this.quotaExceeded(region, body);
      if (q.get("validateOnly") === "true") {
        if (quota) return this.gerr(res, 429, `Quota exceeded for total allowable GPU instances (nvidia_l4_gpu_allocation_no_zonal_redundancy) in region ${region}.`);
        return this.send(res, 200, { name: `${parent}/operations/validate`, done: true, response: body });
      }
      const svc = { ...body, name, uid: randomBytes(8).toString("hex"), generation: "1", reconciling: true, etag: `"${randomBytes(4).toString("hex")}"`,
        terminalCondition: { type: "Ready", state: "CONDITION_RECONCILING" }, uri: `https://${id}-${randomBytes(5).toString("hex")}-${region.replace(/[^a-z]/g, "").slice(0, 2)}.a.run.app` };
      this.services.set(name, svc);
      this.servicePolicies.set(name, { etag: "BwA=", bindings: [] });
      const opError = quota ? { code: 8, message: `Quota exceeded for GPU instances in region ${region}: requested ${body.template?.scaling?.maxInstanceCount}, limit ${this.gpuQuota[region] ?? 0}.` } : undefined;
      return this.send(res, 200, this.newOperation(project, region, svc, {
        error: opError,
        onDone: () => {
          svc.reconciling = false;
          svc.terminalCondition = opError
            ? { type: "Ready", state: "CONDITION_FAILED", message: opError.message }
            : { type: "Ready", state: "CONDITION_SUCCEEDED" };
          if (!opError) svc.latestReadyRevision = `${name}/revisions/${svc.name.split("/").pop()}-00001`;
        },
      }));
    }
    m = rest.match(/^services\/([^/:]+)(?::(\w+))?$/);
    if (m) {
      const name = `${parent}/services/${m[1]}`;
      const svc = this.services.get(name);
      const notFound = () => this.gerr(res, 404, `Resource '${m![1]}' of kind 'SERVICE' in region '${region}' in project '${project}' does not exist.`);
      if (m[2] === "getIamPolicy" && method === "GET") return svc ? this.send(res, 200, this.servicePolicies.get(name)) : notFound();
      if (m[2] === "setIamPolicy" && method === "POST") {
        if (!svc) return notFound();
        const cur = this.servicePolicies.get(name)!;
        const policy = body?.policy;
        if (!policy || !Array.isArray(policy.bindings)) return this.gerr(res, 400, "policy is required");
        if (policy.etag && policy.etag !== cur.etag) return this.send(res, 409, { error: { code: 409, status: "ABORTED", message: "There were concurrent policy changes." } });
        const next = { etag: Buffer.from(randomBytes(3)).toString("base64"), bindings: policy.bindings };
        this.servicePolicies.set(name, next);
        return this.send(res, 200, next);
      }
      if (m[2]) return this.gerr(res, 404, `Unknown method ${m[2]}`);
      if (method === "GET") return svc ? this.send(res, 200, svc) : notFound();
      if (method === "DELETE") {
        if (!svc) return notFound();
        this.services.delete(name);
        this.servicePolicies.delete(name);
        return this.send(res, 200, this.newOperation(project, region, svc));
      }
      if (method === "PATCH") {
        if (!svc) return notFound();
        const violations = this.validateService(region, body ?? {});
        if (violations.length) return this.gerr(res, 400, "The request has errors.", [{ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: violations }]);
        Object.assign(svc, body, { name, generation: String(Number(svc.generation) + 1), reconciling: true });
        return this.send(res, 200, this.newOperation(project, region, svc, { onDone: () => { svc.reconciling = false; svc.terminalCondition = { type: "Ready", state: "CONDITION_SUCCEEDED" }; } }));
      }
    }
    m = rest.match(/^operations\/([^/:]+)$/);
    if (m && method === "GET") {
      const op = this.operations.get(`${parent}/operations/${m[1]}`);
      if (!op) return this.gerr(res, 404, `Operation ${m[1]} not found.`);
      if (op.pollsLeft > 0) op.pollsLeft--;
      const done = op.pollsLeft === 0;
      if (done && op.onDone) {
        op.onDone();
        op.onDone = undefined;
      }
      return this.send(res, 200, {
        name: op.name,
        done,
        ...(done ? (op.error ? { error: op.error } : { response: { "@type": "type.googleapis.com/google.cloud.run.v2.Service", ...(op.response as object) } }) : {}),
      });
    }
    return this.gerr(res, 404, `Method not found: ${method} ${rest}`);
  }

  private secretManager(res: ServerResponse, method: string, project: string, id: string | undefined, verb: string | undefined, q: URLSearchParams, body: any): unknown {
    if (!id) {
      if (method === "GET") return this.send(res, 200, { secrets: [...this.secrets.values()].map((s) => ({ name: s.name, labels: s.labels, replication: { automatic: {} } })) });
      if (method === "POST") {
        const secretId = q.get("secretId");
        if (!secretId || !/^[A-Za-z0-9_-]{1,255}$/.test(secretId)) return this.gerr(res, 400, "Invalid secretId.");
        if (!body?.replication) return this.gerr(res, 400, "Secret.replication is required.");
        const name = `projects/${project}/secrets/${secretId}`;
        if (this.secrets.has(name)) return this.gerr(res, 409, `Secret [${name}] already exists.`);
        this.secrets.set(name, { name, labels: body.labels ?? {}, versions: [], policy: { etag: "BwA=", bindings: [] } });
        return this.send(res, 200, { name, labels: body.labels ?? {}, replication: body.replication });
      }
    }
    const name = `projects/${project}/secrets/${id}`;
    const sec = this.secrets.get(name);
    if (!sec) return this.gerr(res, 404, `Secret [${name}] not found.`);
    if (verb === "addVersion" && method === "POST") {
      const data = body?.payload?.data;
      if (typeof data !== "string" || !data) return this.gerr(res, 400, "payload.data is required.");
      sec.versions.push(Buffer.from(data, "base64").toString("utf8"));
      return this.send(res, 200, { name: `${name}/versions/${sec.versions.length}`, state: "ENABLED" });
    }
    if (verb === "getIamPolicy" && method === "GET") return this.send(res, 200, sec.policy);
    if (verb === "setIamPolicy" && method === "POST") {
      if (!body?.policy) return this.gerr(res, 400, "policy is required");
      if (body.policy.etag && body.policy.etag !== sec.policy.etag) return this.send(res, 409, { error: { code: 409, status: "ABORTED", message: "etag mismatch" } });
      sec.policy = { etag: randomBytes(3).toString("base64"), bindings: body.policy.bindings ?? [] };
      return this.send(res, 200, sec.policy);
    }
    if (!verb && method === "GET") return this.send(res, 200, { name, labels: sec.labels });
    if (!verb && method === "DELETE") {
      this.secrets.delete(name);
      return this.send(res, 200, {});
    }
    return this.gerr(res, 404, `Method not found: ${method} ${verb ?? ""}`);
  }
}
