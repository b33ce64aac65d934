/**
 * Test-only fake of Microsoft Entra ID's token endpoint (client credentials) and the ARM routes of
 * Microsoft.App that Tuna uses: managed environments, container apps, Azure-AsyncOperation / Location
 * polling, workload-profile availability, usages, resource groups. Errors use the ARM envelope
 * `{ "error": { "code", "message" } }` (provider-apis.md §4).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { FakeHttpServer, INVALID_JSON, parseJsonBody, type RecordedRequest, readIncoming, sendJson } from "../base/fake-server";

export type { RecordedRequest };

interface FakeOp {
  pollsLeft: number;
  status: "InProgress" | "Succeeded" | "Failed";
  error?: { code: string; message: string };
  onDone: () => void;
}

const API_VERSIONS = new Set(["2024-03-01", "2025-01-01", "2025-07-01"]);
const GPU_TYPES = ["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"];

export class AzureFake extends FakeHttpServer {
  /** Keyed by lower-cased environment name. */
  readonly environments = new Map<string, Record<string, any>>();
  /** Keyed by lower-cased app name. Stored as ARM returns them (secret values stripped). */
  readonly apps = new Map<string, Record<string, any>>();
  /** Secret values the fake received, per app (ARM never returns them). */
  readonly appSecrets = new Map<string, Record<string, string>>();
  /** Regions → workload profile types offered. */
  profileTypes: Record<string, string[]> = { eastus: ["Consumption", ...GPU_TYPES], swedencentral: ["Consumption", ...GPU_TYPES], westus: ["Consumption"] };
  /** GPU replicas allowed per profile type (subscription quota). */
  gpuQuota: Record<string, number> = { "Consumption-GPU-NC8as-T4": 2, "Consumption-GPU-NC24-A100": 0 };
  resourceGroups = new Set<string>();
  /** Polls an async operation needs before it finishes. */
  operationPolls = 2;
  private ops = new Map<string, FakeOp>();
  /** `expires_in` of the tokens the fake issues (Entra ID: about an hour). */
  tokenLifetimeS = 3599;
  /** The fake's clock, for token expiry; tests that fake time point it at theirs. */
  now: () => number = () => Date.now();
  /** Issued tokens → expiry (ms on `now`). */
  private tokens = new Map<string, number>();

  constructor(readonly opts: { tenantId: string; clientId: string; clientSecret: string; subscriptionId: string; resourceGroup: string }) {
    super();
    this.resourceGroups.add(opts.resourceGroup.toLowerCase());
  }

  async start(): Promise<this> {
    this.url = await this.listen();
    return this;
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    this.armErr(res, 500, "InternalServerError", String(err));
  }

  get baseUrls(): Record<string, string> {
    return { login: `${this.url}/login`, arm: this.url };
  }

  isEmpty(): boolean {
    return this.apps.size === 0 && this.environments.size === 0;
  }

  /** Adds an environment someone else made (not tagged by Tuna). */
  addEnvironment(name: string, location: string, profiles: Array<{ name: string; workloadProfileType: string }>, tags: Record<string, string> = {}): void {
    this.environments.set(name.toLowerCase(), {
      id: `${this.prefix()}/managedEnvironments/${name}`,
      name,
      type: "Microsoft.App/managedEnvironments",
      location,
      tags,
      properties: { provisioningState: "Succeeded", workloadProfiles: profiles, defaultDomain: `${randomBytes(4).toString("hex")}.${location}.azurecontainerapps.io` },
    });
  }

  private prefix(): string {
    return `/subscriptions/${this.opts.subscriptionId}/resourceGroups/${this.opts.resourceGroup}/providers/Microsoft.App`;
  }

  private send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    sendJson(res, status, body, headers);
  }

  private armErr(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
    this.send(res, status, { error: { code, message } }, headers);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const { url: u, method, headers, raw, query } = await readIncoming(req);
    const body = headers["content-type"]?.startsWith("application/json") ? parseJsonBody(raw) : undefined;
    if (body === INVALID_JSON) return this.armErr(res, 400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.");
    this.requests.push({ method, path: u.pathname, query, headers, body, raw });
    const failure = this.takeFailure(method, u.pathname);
    if (failure) {
      if (failure.body) return this.send(res, failure.status, failure.body, failure.headers);
      return this.armErr(res, failure.status, failure.status === 429 ? "TooManyRequests" : "InjectedFailure", `injected failure ${failure.status}`, failure.headers);
    }
    let m: RegExpMatchArray | null = null;
    m = u.pathname.match(/^\/login\/([^/]+)\/oauth2\/v2\.0\/token$/);
    if (m && method === "POST") return this.token(res, m[1], raw);

    const auth = headers.authorization ?? "";
    const expiresAt = auth.startsWith("Bearer ") ? this.tokens.get(auth.slice(7)) : undefined;
    if (expiresAt === undefined) {
      return this.armErr(res, 401, "InvalidAuthenticationToken", "The access token is invalid.", { "www-authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"' });
    }
    if (this.now() >= expiresAt) {
      return this.armErr(
        res,
        401,
        "ExpiredAuthenticationToken",
        `The access token expiry UTC time '${new Date(expiresAt).toISOString()}' is earlier than current UTC time '${new Date(this.now()).toISOString()}'.`,
        { "www-authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The access token has expired."' },
      );
    }
    const apiVersion = u.searchParams.get("api-version");
    if (!apiVersion) return this.armErr(res, 400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    const p = u.pathname;
    m = p.match(/^\/subscriptions\/([^/]+)(\/.*)?$/);
    if (!m) return this.armErr(res, 404, "NotFound", `No route for ${p}`);
    if (m[1] !== this.opts.subscriptionId) return this.armErr(res, 404, "SubscriptionNotFound", `The subscription '${m[1]}' could not be found.`);
    const rest = m[2] ?? "";

    m = rest.match(/^\/resourcegroups\/([^/]+)$/i);
    if (m && method === "GET") {
      if (apiVersion !== "2021-04-01") return this.armErr(res, 400, "InvalidApiVersionParameter", `The api-version '${apiVersion}' is invalid.`);
      return this.resourceGroups.has(m[1].toLowerCase())
        ? this.send(res, 200, { id: `/subscriptions/${this.opts.subscriptionId}/resourceGroups/${m[1]}`, name: m[1], location: "eastus", properties: { provisioningState: "Succeeded" } })
        : this.armErr(res, 404, "ResourceGroupNotFound", `Resource group '${m[1]}' could not be found.`);
    }
    if (!API_VERSIONS.has(apiVersion)) return this.armErr(res, 400, "InvalidApiVersionParameter", `The api-version '${apiVersion}' is invalid. The supported versions are '${[...API_VERSIONS].join(",")}'.`);

    m = rest.match(/^\/providers\/Microsoft\.App\/locations\/([^/]+)\/(\w+)(?:\/([^/]+))?$/);
    if (m) {
      const [, loc, kind, id] = m;
      if (kind === "availableManagedEnvironmentsWorkloadProfileTypes" && method === "GET") {
        return this.send(res, 200, { value: (this.profileTypes[loc] ?? []).map((t) => ({ name: t, location: loc, properties: { category: t.includes("GPU") ? "GPU" : "Consumption" } })) });
      }
      if (kind === "usages" && method === "GET") {
        return this.send(res, 200, {
          value: GPU_TYPES.map((t) => ({
            name: { value: t.includes("T4") ? "ManagedEnvironmentConsumptionGpuT4Cores" : "ManagedEnvironmentConsumptionGpuA100Cores", localizedValue: `${t} GPUs` },
            currentValue: this.usedGpus(t),
            limit: this.gpuQuota[t] ?? 0,
            unit: "Count",
          })),
        });
      }
      if ((kind === "managedEnvironmentOperationStatuses" || kind === "containerappOperationStatuses") && id && method === "GET") return this.pollAsync(res, id);
      if ((kind === "managedEnvironmentOperationResults" || kind === "containerappOperationResults") && id && method === "GET") return this.pollLocation(res, id, loc, kind);
    }

    m = rest.match(/^\/resourceGroups\/([^/]+)\/providers\/Microsoft\.App\/(managedEnvironments|containerApps)(?:\/([^/]+))?$/i);
    if (!m) {
      return this.armErr(res, 404, "NotFound", `No route for ${p}`);
    }
    if (!this.resourceGroups.has(m[1].toLowerCase())) return this.armErr(res, 404, "ResourceGroupNotFound", `Resource group '${m[1]}' could not be found.`);
    return m[2] === "managedEnvironments" ? this.environmentRoute(res, method, m[3], body) : this.appRoute(res, method, m[3], body);
  }

  private token(res: ServerResponse, tenant: string, raw: string): unknown {
    const f = new URLSearchParams(raw);
    const err = (status: number, error: string, description: string, code: number) =>
      this.send(res, status, { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: "t", correlation_id: "c" });
    if (tenant !== this.opts.tenantId) return err(400, "invalid_request", `Tenant '${tenant}' not found.`, 90002);
    if (f.get("grant_type") !== "client_credentials") return err(400, "unsupported_grant_type", "The provided grant_type is not supported.", 70003);
    if (f.get("scope") !== "https://management.azure.com/.default") return err(400, "invalid_scope", "The provided scope is not valid.", 70011);
    if (f.get("client_id") !== this.opts.clientId) return err(400, "unauthorized_client", `Application with identifier '${f.get("client_id")}' was not found.`, 700016);
    if (f.get("client_secret") !== this.opts.clientSecret) return err(401, "invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", 7000215);
    const token = `eyJ${randomBytes(24).toString("base64url")}`;
    this.tokens.set(token, this.now() + this.tokenLifetimeS * 1000);
    this.send(res, 200, { token_type: "Bearer", expires_in: this.tokenLifetimeS, ext_expires_in: this.tokenLifetimeS, access_token: token });
  }

  private usedGpus(type: string): number {
    let n = 0;
    for (const app of this.apps.values()) {
      const env = [...this.environments.values()].find((e) => e.id.toLowerCase() === String(app.properties.environmentId).toLowerCase());
      const profile = env?.properties.workloadProfiles.find((w: any) => w.name === app.properties.workloadProfileName);
      if (profile?.workloadProfileType === type && app.properties.provisioningState !== "Failed") n += app.properties.template?.scale?.maxReplicas ?? 1;
    }
    return n;
  }

  private startAsync(location: string, kind: string, op: Omit<FakeOp, "pollsLeft">): Record<string, string> {
    const id = randomBytes(8).toString("hex");
    this.ops.set(id, { ...op, pollsLeft: this.operationPolls });
    const base = `${this.url}/subscriptions/${this.opts.subscriptionId}/providers/Microsoft.App/locations/${location}`;
    return {
      "azure-asyncoperation": `${base}/${kind}OperationStatuses/${id}?api-version=2025-07-01`,
      location: `${base}/${kind}OperationResults/${id}?api-version=2025-07-01`,
      "retry-after": "1",
    };
  }

  private advance(id: string): FakeOp | undefined {
    const op = this.ops.get(id);
    if (!op) return undefined;
    if (op.pollsLeft > 0) op.pollsLeft--;
    if (op.pollsLeft === 0 && op.status === "InProgress") {
      op.status = op.error ? "Failed" : "Succeeded";
      op.onDone();
    }
    return op;
  }

  private pollAsync(res: ServerResponse, id: string): unknown {
    const op = this.advance(id);
    if (!op) return this.armErr(res, 404, "NotFound", `operation ${id} not found`);
    this.send(res, 200, { id, name: id, status: op.status, startTime: new Date().toISOString(), ...(op.error && op.status === "Failed" ? { error: op.error } : {}) }, { "retry-after": "1" });
  }

  private pollLocation(res: ServerResponse, id: string, loc: string, kind: string): unknown {
    const op = this.advance(id);
    if (!op) return this.armErr(res, 404, "NotFound", `operation ${id} not found`);
    if (op.status === "InProgress") return this.send(res, 202, undefined, { location: `${this.url}/subscriptions/${this.opts.subscriptionId}/providers/Microsoft.App/locations/${loc}/${kind}/${id}?api-version=2025-07-01`, "retry-after": "1" });
    if (op.status === "Failed") return this.send(res, 200, { error: op.error });
    this.send(res, 204);
  }

  private environmentRoute(res: ServerResponse, method: string, name: string | undefined, body: any): unknown {
    if (!name) {
      if (method === "GET") return this.send(res, 200, { value: [...this.environments.values()] });
      return this.armErr(res, 405, "MethodNotAllowed", "method not allowed");
    }
    const key = name.toLowerCase();
    const env = this.environments.get(key);
    if (method === "GET") return env ? this.send(res, 200, env) : this.armErr(res, 404, "ResourceNotFound", `The Resource 'Microsoft.App/managedEnvironments/${name}' under resource group '${this.opts.resourceGroup}' was not found.`);
    if (method === "PUT") {
      if (typeof body?.location !== "string") return this.armErr(res, 400, "LocationRequired", "The location property is required for this definition.");
      const profiles = body.properties?.workloadProfiles;
      if (profiles !== undefined) {
        if (!Array.isArray(profiles)) return this.armErr(res, 400, "InvalidRequestContent", "workloadProfiles must be an array");
        const offered = this.profileTypes[body.location] ?? [];
        for (const wp of profiles) {
          if (!wp?.name || !wp?.workloadProfileType) return this.armErr(res, 400, "InvalidRequestContent", "workload profiles need name and workloadProfileType");
          if (!offered.includes(wp.workloadProfileType)) return this.armErr(res, 400, "WorkloadProfileTypeNotSupported", `Workload profile type '${wp.workloadProfileType}' is not supported in location '${body.location}'.`);
        }
      }
      if (env && env.properties.provisioningState !== "Succeeded") return this.armErr(res, 409, "Conflict", "An operation is already in progress on this environment.");
      if (env) {
        // Create-or-update; workload profiles of an existing environment are kept (GPU profiles only at creation).
        env.tags = body.tags ?? env.tags;
        env.properties.provisioningState = "Waiting";
        const headers = this.startAsync(env.location, "managedEnvironment", { status: "InProgress", onDone: () => { env.properties.provisioningState = "Succeeded"; } });
        return this.send(res, 200, env, headers);
      }
      const created = {
        id: `${this.prefix()}/managedEnvironments/${name}`,
        name,
        type: "Microsoft.App/managedEnvironments",
        location: body.location,
        tags: body.tags ?? {},
        properties: { ...body.properties, provisioningState: "InfrastructureSetupInProgress", defaultDomain: `${randomBytes(4).toString("hex")}.${body.location}.azurecontainerapps.io` },
      };
      this.environments.set(key, created);
      const headers = this.startAsync(body.location, "managedEnvironment", { status: "InProgress", onDone: () => { created.properties.provisioningState = "Succeeded"; } });
      return this.send(res, 201, created, headers);
    }
    if (method === "DELETE") {
      if (!env) return this.send(res, 204);
      const users = [...this.apps.values()].filter((a) => String(a.properties.environmentId).toLowerCase() === env.id.toLowerCase());
      if (users.length) return this.armErr(res, 409, "ManagedEnvironmentHasContainerApps", `Environment ${name} still has ${users.length} container app(s).`);
      env.properties.provisioningState = "ScheduledForDelete";
      const headers = this.startAsync(env.location, "managedEnvironment", { status: "InProgress", onDone: () => this.environments.delete(key) });
      return this.send(res, 202, undefined, { location: headers.location, "retry-after": "1" });
    }
    return this.armErr(res, 405, "MethodNotAllowed", "method not allowed");
  }

  private appRoute(res: ServerResponse, method: string, name: string | undefined, body: any): unknown {
    if (!name) {
      if (method === "GET") return this.send(res, 200, { value: [...this.apps.values()] });
      return this.armErr(res, 405, "MethodNotAllowed", "method not allowed");
    }
    const key = name.toLowerCase();
    const app = this.apps.get(key);
    if (method === "GET") return app ? this.send(res, 200, app) : this.armErr(res, 404, "ResourceNotFound", `The Resource 'Microsoft.App/containerApps/${name}' under resource group '${this.opts.resourceGroup}' was not found.`);
    if (method === "DELETE") {
      if (!app) return this.send(res, 204);
      app.properties.provisioningState = "Deleting";
      const headers = this.startAsync(app.location, "containerapp", {
        status: "InProgress",
        onDone: () => {
          this.apps.delete(key);
          this.appSecrets.delete(key);
        },
      });
      return this.send(res, 202, undefined, { location: headers.location, "retry-after": "1" });
    }
    if (method !== "PUT") return this.armErr(res, 405, "MethodNotAllowed", "method not allowed");
    if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(name) || name.includes("--")) {
      return this.armErr(res, 400, "ContainerAppInvalidName", `Invalid ContainerApp name '${name}'. A name must consist of lower case alphanumeric characters or '-', start with a letter, end with an alphanumeric character, cannot have '--', and be at most 32 characters.`);
    }
    if (typeof body?.location !== "string") return this.armErr(res, 400, "LocationRequired", "The location property is required for this definition.");
    const p = body.properties ?? {};
    const envId = p.environmentId ?? p.managedEnvironmentId;
    const env = [...this.environments.values()].find((e) => e.id.toLowerCase() === String(envId ?? "").toLowerCase());
    if (!env) return this.armErr(res, 404, "ParentResourceNotFound", `Managed environment '${envId}' was not found.`);
    if (env.location !== body.location) return this.armErr(res, 400, "InvalidRequestContent", "The container app must be in the environment's location.");
    const profile = env.properties.workloadProfiles?.find((w: any) => w.name === p.workloadProfileName);
    if (p.workloadProfileName && !profile) return this.armErr(res, 400, "WorkloadProfileNotFound", `Workload profile '${p.workloadProfileName}' does not exist in environment '${env.name}'.`);
    const containers = p.template?.containers;
    if (!Array.isArray(containers) || containers.length === 0) return this.armErr(res, 400, "ContainerAppInvalidTemplate", "template.containers must have at least one container.");
    for (const c of containers) if (!c.name || !c.image) return this.armErr(res, 400, "ContainerAppInvalidTemplate", "Each container needs name and image.");
    const secrets: Array<{ name?: string; value?: string; keyVaultUrl?: string }> = p.configuration?.secrets ?? [];
    for (const s of secrets) {
      if (!s.name || !/^[a-z0-9][a-z0-9-.]*$/.test(s.name)) return this.armErr(res, 400, "ContainerAppSecretInvalidName", `Invalid secret name '${s.name}'.`);
      if (s.value === undefined && !s.keyVaultUrl) return this.armErr(res, 400, "ContainerAppSecretValueMissing", `Secret '${s.name}' needs a value or keyVaultUrl.`);
    }
    for (const c of containers) {
      for (const e of c.env ?? []) {
        if (e.secretRef && !secrets.some((s) => s.name === e.secretRef)) return this.armErr(res, 400, "ContainerAppSecretRefNotFound", `Secret '${e.secretRef}' referenced by env '${e.name}' is not defined.`);
      }
    }
    const ingress = p.configuration?.ingress;
    if (ingress && (!Number.isInteger(ingress.targetPort) || ingress.targetPort < 1 || ingress.targetPort > 65535)) return this.armErr(res, 400, "ContainerAppInvalidIngress", "ingress.targetPort must be a port number.");
    const scale = p.template?.scale ?? {};
    if (scale.minReplicas !== undefined && scale.maxReplicas !== undefined && scale.minReplicas > scale.maxReplicas) {
      return this.armErr(res, 400, "ContainerAppInvalidScale", "minReplicas must be less than or equal to maxReplicas.");
    }
    for (const r of scale.rules ?? []) {
      if (r.http && Object.values(r.http.metadata ?? {}).some((v) => typeof v !== "string")) return this.armErr(res, 400, "InvalidRequestContent", "scale rule metadata values must be strings.");
    }
    if (app && app.properties.provisioningState === "InProgress") return this.armErr(res, 409, "Conflict", "An operation is already in progress on this container app.");

    let opError: { code: string; message: string } | undefined;
    if (profile && GPU_TYPES.includes(profile.workloadProfileType)) {
      const want = scale.maxReplicas ?? 10;
      const used = this.usedGpus(profile.workloadProfileType) - (app ? app.properties.template?.scale?.maxReplicas ?? 0 : 0);
      const limit = this.gpuQuota[profile.workloadProfileType] ?? 0;
      if (used + want > limit) opError = { code: "MaxNumberOfGpusExceeded", message: `The subscription quota for ${profile.workloadProfileType} in ${body.location} would be exceeded: ${used + want} > ${limit}.` };
    }
    const stored = structuredClone(body);
    stored.properties.configuration = { ...stored.properties.configuration, secrets: secrets.map((s) => ({ name: s.name })) };
    stored.id = `${this.prefix()}/containerApps/${name}`;
    stored.name = name;
    stored.type = "Microsoft.App/containerApps";
    stored.properties.provisioningState = "InProgress";
    stored.properties.runningStatus = "Progressing";
    stored.properties.environmentId = env.id;
    if (stored.properties.configuration.ingress) stored.properties.configuration.ingress.fqdn = "";
    this.apps.set(key, stored);
    this.appSecrets.set(key, Object.fromEntries(secrets.map((s) => [s.name!, s.value ?? ""])));
    const headers = this.startAsync(body.location, "containerapp", {
      status: "InProgress",
      error: opError,
      onDone: () => {
        stored.properties.provisioningState = opError ? "Failed" : "Succeeded";
        stored.properties.runningStatus = opError ? "Stopped" : "Running";
        if (!opError && stored.properties.configuration.ingress) stored.properties.configuration.ingress.fqdn = `${name}.${env.properties.defaultDomain}`;
        stored.properties.latestRevisionName = `${name}--${randomBytes(3).toString("hex")}`;
      },
    });
    return this.send(res, app ? 200 : 201, stored, headers);
  }
}
