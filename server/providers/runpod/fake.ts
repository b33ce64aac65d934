/**
 * Test-only fake of RunPod's REST v2 management API and the runtime `/health` route (provider-apis.md §2).
 * Follows the documented contract: Bearer auth, `{ "error": "..." }` bodies, required fields and the
 * documented invalid combinations, 409 on name collision, DELETE → 204. State lives in memory.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { FakeHttpServer, INVALID_JSON, parseJsonBody, type RecordedRequest as FullRequest, readIncoming, sendJson } from "../base/fake-server";

export type RecordedRequest = Omit<FullRequest, "raw">;

export interface FakeGpu {
  id: string;
  displayName: string;
  memoryInGb: number;
  pool: string;
  maxCount: number;
  securePrice: number;
  availability: string;
  dataCenters: Array<{ id: string; availability: string }>;
}

export interface FakeEndpoint {
  id: string;
  name: string;
  [k: string]: unknown;
}

const ALLOWED_FIELDS = new Set([
  "name", "type", "scaling", "gpu", "cpu", "workers", "templateId", "image", "args", "disk", "ports", "env",
  "registry", "dataCenterIds", "networkVolumes", "flashboot", "timeout",
]);

export const DEFAULT_FAKE_GPUS: FakeGpu[] = [
  { id: "NVIDIA L4", displayName: "L4", memoryInGb: 24, pool: "AMPERE_24", maxCount: 8, securePrice: 0.69, availability: "HIGH", dataCenters: [{ id: "US-TX-3", availability: "HIGH" }, { id: "EU-RO-1", availability: "LOW" }] },
  { id: "NVIDIA RTX A5000", displayName: "RTX A5000", memoryInGb: 24, pool: "AMPERE_24", maxCount: 8, securePrice: 0.58, availability: "MEDIUM", dataCenters: [{ id: "US-TX-3", availability: "MEDIUM" }] },
  { id: "NVIDIA A100-SXM4-80GB", displayName: "A100 SXM", memoryInGb: 80, pool: "AMPERE_80", maxCount: 8, securePrice: 1.19, availability: "LOW", dataCenters: [{ id: "US-KS-2", availability: "LOW" }] },
  { id: "NVIDIA H100 80GB HBM3", displayName: "H100 SXM", memoryInGb: 80, pool: "ADA_80_PRO", maxCount: 8, securePrice: 2.99, availability: "NONE", dataCenters: [] },
];

export class RunpodFake extends FakeHttpServer<RecordedRequest> {
  readonly endpoints = new Map<string, FakeEndpoint>();
  /** Runtime `/health` worker counts per endpoint id (default: all zero = scaled to zero). */
  readonly workers = new Map<string, Record<string, number>>();
  gpus: FakeGpu[] = structuredClone(DEFAULT_FAKE_GPUS);
  /**
   * Endpoints per page of `GET /v2/serverless`. The list is paginated by an opaque cursor; the parameter and
   * field names (`?cursor=`, `pagination: { nextCursor, hasNextPage }`) are unverified (provider-apis.md §2.1).
   */
  listPageSize = 2;
  private drops: Array<{ method: string; path: RegExp }> = [];

  constructor(readonly apiKey: string) {
    super();
  }

  async start(): Promise<this> {
    this.url = await this.listen();
    return this;
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    this.send(res, 500, { error: String(err) });
  }

  /** Base URLs for `ProviderContext.baseUrls`. */
  get baseUrls(): Record<string, string> {
    return { api: `${this.url}/v2`, runtime: `${this.url}/runtime/v2` };
  }

  /** Process the next matching call, then cut the connection instead of answering (a response lost in transit). */
  dropResponseNext(method: string, path: RegExp): void {
    this.drops.push({ method, path });
  }

  private send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    const req = res.req;
    const drop = this.drops.findIndex((d) => d.method === req.method && d.path.test(new URL(req.url ?? "/", "http://fake").pathname));
    if (drop >= 0) {
      this.drops.splice(drop, 1);
      res.socket?.destroy();
      return;
    }
    sendJson(res, status, body, headers);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const { url: u, method, headers, raw, query } = await readIncoming(req);
    const body = parseJsonBody(raw);
    if (body === INVALID_JSON) return this.send(res, 400, { error: "request body is not valid JSON" });
    this.requests.push({ method, path: u.pathname, query, headers, body });

    const failure = this.takeFailure(method, u.pathname);
    if (failure) {
      return this.send(res, failure.status, failure.body ?? { error: `injected failure ${failure.status}` }, failure.headers);
    }
    if (headers.authorization !== `Bearer ${this.apiKey}`) return this.send(res, 401, { error: "Unauthorized: invalid or missing API key" });

    const p = u.pathname;
    let m: RegExpMatchArray | null = null;
    if (p === "/v2/serverless" && method === "POST") return this.createEndpoint(res, body);
    if (p === "/v2/serverless" && method === "GET") return this.listEndpoints(res, u.searchParams);
    m = p.match(/^\/v2\/serverless\/([^/]+)$/);
    if (m) {
      const ep = this.endpoints.get(m[1]);
      if (!ep) return this.send(res, 404, { error: `endpoint ${m[1]} not found` });
      if (method === "GET") return this.send(res, 200, ep);
      if (method === "DELETE") {
        this.endpoints.delete(ep.id);
        this.workers.delete(ep.id);
        return this.send(res, 204);
      }
      if (method === "PATCH") {
        const b = (body ?? {}) as Record<string, unknown>;
        if ("type" in b) return this.send(res, 400, { error: "type is immutable" });
        const bad = Object.keys(b).filter((k) => !ALLOWED_FIELDS.has(k));
        if (bad.length) return this.send(res, 422, { error: `unknown field(s): ${bad.join(", ")}` });
        Object.assign(ep, b);
        return this.send(res, 200, ep);
      }
    }
    if (p === "/v2/catalog/gpus" && method === "GET") return this.catalog(res, u.searchParams);
    m = p.match(/^\/runtime\/v2\/([^/]+)\/health$/);
    if (m && method === "GET") {
      if (!this.endpoints.has(m[1])) return this.send(res, 404, { error: "endpoint not found" });
      const w = this.workers.get(m[1]) ?? {};
      return this.send(res, 200, {
        jobs: { completed: 0, failed: 0, inProgress: 0, inQueue: 0, retried: 0 },
        workers: { idle: 0, initializing: 0, ready: 0, running: 0, throttled: 0, unhealthy: 0, ...w },
      });
    }
    return this.send(res, 404, { error: "The requested path was not found." });
  }

  private listEndpoints(res: ServerResponse, q: URLSearchParams): unknown {
    const all = [...this.endpoints.values()];
    let start = 0;
    const cursor = q.get("cursor");
    if (cursor !== null) {
      const m = /^ep:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString());
      if (!m || Number(m[1]) < 1) return this.send(res, 422, { error: "cursor is malformed" });
      start = Number(m[1]);
    }
    const endpoints = all.slice(start, start + this.listPageSize);
    const more = start + this.listPageSize < all.length;
    const nextCursor = more ? Buffer.from(`ep:${start + this.listPageSize}`).toString("base64url") : null;
    this.send(res, 200, { endpoints, pagination: { nextCursor, hasNextPage: more } });
  }

  private createEndpoint(res: ServerResponse, body: unknown): unknown {
    if (!body || typeof body !== "object") return this.send(res, 400, { error: "body required" });
    const b = body as Record<string, unknown>;
    const bad = Object.keys(b).filter((k) => !ALLOWED_FIELDS.has(k));
    if (bad.length) return this.send(res, 422, { error: `unknown field(s): ${bad.join(", ")}` });
    for (const f of ["name", "type", "scaling"]) if (b[f] === undefined) return this.send(res, 400, { error: `${f} is required` });
    if (typeof b.name !== "string" || !b.name) return this.send(res, 422, { error: "name must be a string" });
    if (b.type !== "QUEUE" && b.type !== "LOAD_BALANCER") return this.send(res, 422, { error: "type must be QUEUE or LOAD_BALANCER" });
    const scaling = b.scaling as Record<string, unknown>;
    if (scaling?.type === "QUEUE_DELAY") {
      if (b.type !== "QUEUE") return this.send(res, 400, { error: "QUEUE_DELAY scaling is only valid for QUEUE endpoints" });
      if (typeof scaling.queueDelay !== "number" || scaling.queueDelay < 0.5) return this.send(res, 422, { error: "scaling.queueDelay must be >= 0.5" });
    } else if (scaling?.type === "REQUEST_COUNT") {
      if (typeof scaling.requestCount !== "number" || scaling.requestCount < 1) return this.send(res, 422, { error: "scaling.requestCount must be >= 1" });
    } else return this.send(res, 422, { error: "scaling.type must be QUEUE_DELAY or REQUEST_COUNT" });
    const workers = (b.workers ?? {}) as Record<string, unknown>;
    if (workers.idleTimeout !== undefined) {
      if (b.type === "QUEUE" && scaling.type === "REQUEST_COUNT") return this.send(res, 400, { error: "idleTimeout is not supported for QUEUE endpoints with REQUEST_COUNT scaling" });
      if (typeof workers.idleTimeout !== "number" || workers.idleTimeout < 1 || workers.idleTimeout > 3600) return this.send(res, 422, { error: "workers.idleTimeout must be 1-3600" });
    }
    if (typeof workers.min === "number" && typeof workers.max === "number" && workers.min > workers.max) return this.send(res, 400, { error: "workers.min must be <= workers.max" });
    if (b.gpu && b.cpu) return this.send(res, 400, { error: "gpu and cpu are mutually exclusive" });
    if (b.gpu) {
      const g = b.gpu as Record<string, unknown>;
      if (!Array.isArray(g.pools) || g.pools.length === 0) return this.send(res, 422, { error: "gpu.pools must be a non-empty array" });
      const known = new Set(this.gpus.map((x) => x.pool));
      const unknownPool = (g.pools as unknown[]).find((x) => typeof x !== "string" || !known.has(x) && !/^[A-Z]+_\d+(_PRO)?$/.test(x));
      if (unknownPool !== undefined) return this.send(res, 400, { error: `unknown GPU pool ${String(unknownPool)}` });
      if (g.count !== undefined && (!Number.isInteger(g.count) || (g.count as number) < 1)) return this.send(res, 422, { error: "gpu.count must be a positive integer" });
      if (g.allowedCudaVersions !== undefined && g.minCudaVersion !== undefined) return this.send(res, 400, { error: "allowedCudaVersions and minCudaVersion are mutually exclusive" });
    }
    if (b.env !== undefined && (typeof b.env !== "object" || Object.values(b.env as object).some((v) => typeof v !== "string"))) {
      return this.send(res, 422, { error: "env values must be strings" });
    }
    if ([...this.endpoints.values()].some((e) => e.name === b.name)) return this.send(res, 409, { error: `an endpoint named ${b.name} already exists` });
    const id = randomBytes(7).toString("hex");
    const rt = `${this.url}/runtime/v2/${id}`;
    const ep: FakeEndpoint = {
      ...(b as object),
      id,
      name: b.name,
      createdAt: new Date().toISOString(),
      requestUrls: { run: `${rt}/run`, runsync: `${rt}/runsync`, status: `${rt}/status`, stream: `${rt}/stream`, health: `${rt}/health`, openai: `${rt}/openai/v1` },
    };
    this.endpoints.set(id, ep);
    this.send(res, 201, ep);
  }

  private catalog(res: ServerResponse, q: URLSearchParams): unknown {
    const include = q.get("include");
    const product = q.get("product");
    if (include && include !== "AVAILABILITY") return this.send(res, 422, { error: "include must be AVAILABILITY" });
    if (include && !product) return this.send(res, 400, { error: "product is required with include=AVAILABILITY" });
    if (!include && product) return this.send(res, 400, { error: "product is only valid with include=AVAILABILITY" });
    if (product && !["POD", "CLUSTER", "SERVERLESS"].includes(product)) return this.send(res, 422, { error: "product must be POD, CLUSTER or SERVERLESS" });
    const count = Number(q.get("count") ?? "1");
    if (!Number.isInteger(count) || count < 1) return this.send(res, 422, { error: "count must be a positive integer" });
    const items = this.gpus.map((g) => {
      const base = { id: g.id, displayName: g.displayName, memoryInGb: g.memoryInGb, pool: g.pool, maxCount: g.maxCount, securePrice: g.securePrice };
      if (!include) return base;
      const tooMany = count > g.maxCount;
      return { ...base, availability: tooMany ? "NONE" : g.availability, dataCenters: tooMany ? [] : g.dataCenters };
    });
    this.send(res, 200, items);
  }
}
