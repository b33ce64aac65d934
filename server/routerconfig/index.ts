import { budgetBlocks } from "../usage/budgets";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { DeploymentComponent } from "@prisma/client";
import { routerSnapshotSchema, type BackendConfig, type DeploymentConfig, type RouterSnapshot } from "../../router-service/src/contract";
import { db, type Tx } from "../db";
import { dataDir } from "../lib/keys";
import { checkOutboundUrlSync, OUTBOUND_POLICIES, OutboundUrlError } from "../lib/outbound-url";
import { getProvider, hasProvider } from "../providers";
import { decryptForTeam } from "../vault";

/**
 * The router snapshot (DESIGN.md §3.1, contract owned by router-service): every live deployment with its
 * backends and every usable API key of every team. Routers poll `GET /api/router/config` with
 * If-None-Match; the ETag changes when the version counter moves or the content does (a key expiring).
 */

export type { RouterSnapshot };

const COUNTER = "router-config";

/** Called in the transaction of every change routers must see (keys, deployments, components). */
export async function bumpRouterConfigVersion(tx: Tx): Promise<number> {
  const rows = await tx.$queryRaw<Array<{ value: bigint }>>`
    INSERT INTO "Counter" (name, value) VALUES (${COUNTER}, 1)
    ON CONFLICT (name) DO UPDATE SET value = "Counter".value + 1
    RETURNING value`;
  return Number(rows[0].value);
}

export async function snapshotVersion(): Promise<number> {
  const c = await db.counter.findUnique({ where: { name: COUNTER } });
  return c ? Number(c.value) : 0;
}

/** Upstream auth headers of a component, sealed by the deployment workflow with this purpose id. */
export function upstreamHeadersPurpose(deploymentId: string, kind: string): string {
  return `deployment-component:${deploymentId}:${kind}`;
}

/** A component's sealed upstream headers, opened: string values only (empty when none are sealed). */
export function openUpstreamHeaders(teamId: string, deploymentId: string, kind: string, cipher: unknown): Record<string, string> {
  if (cipher === null || cipher === undefined) return {};
  const parsed = JSON.parse(decryptForTeam(teamId, upstreamHeadersPurpose(deploymentId, kind), cipher)) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === "string")) as Record<string, string>;
}

const LIVE_COMPONENT = new Set(["creating", "ready", "scaled_to_zero", "draining"]);
const DEFAULT_MAX_INFLIGHT_PER_REPLICA = 32;

interface StoredSpecish {
  serverlessScaling?: { maxWorkers?: number; concurrency?: number; idleTimeoutS?: number };
}

/**
 * Providers whose endpoint URL is whatever a tenant-controlled server answered (SkyServe: the team's own SkyPilot
 * API server). Their endpoints are checked when deployed (DNS included); here, again without DNS, so a row
 * written before that check (or by any other path) never makes the routers, which run in the operator's
 * network, send requests to a private or loopback address. The name's DNS stays the tenant's, so their backends
 * are also `publicOnly`: the router checks the address of every connection it opens to them (DNS rebinding),
 * against its own `TUNA_ALLOW_PRIVATE_URLS`. The built-in `local` providers are on loopback by design and
 * managed providers' endpoints are theirs, not a tenant's: neither is in this set.
 */
const TENANT_SERVER_ENDPOINTS = new Set(["skyserve"]);

/** Throws (the component is left out and logged) when a tenant-server endpoint points somewhere internal. */
function assertRoutableEndpoint(c: DeploymentComponent, url: string): void {
  if (!TENANT_SERVER_ENDPOINTS.has(c.provider)) return;
  try {
    checkOutboundUrlSync(url, OUTBOUND_POLICIES.serviceEndpoint);
  } catch (e) {
    if (e instanceof OutboundUrlError) throw new Error(`refused endpoint of provider ${c.provider}: ${e.message}`);
    throw e;
  }
}

function backendOf(teamId: string, deploymentId: string, servedModelName: string, c: DeploymentComponent, spec: StoredSpecish): BackendConfig | null {
  if (!c.endpointUrl || !LIVE_COMPONENT.has(c.status) || (c.kind !== "serverless" && c.kind !== "spot")) return null;
  assertRoutableEndpoint(c, c.endpointUrl);
  const opened = openUpstreamHeaders(teamId, deploymentId, c.kind, c.upstreamHeadersCipher);
  const headers = Object.keys(opened).length > 0 ? opened : undefined;
  const concurrency = spec.serverlessScaling?.concurrency ?? 0;
  // How long routers keep idle connections to this provider's endpoints (the router's default when unset).
  const idleMs = hasProvider(c.provider) ? getProvider(c.provider).routerConnectionIdleMs : undefined;
  const connectionIdle = idleMs ? { connectionIdleMs: idleMs } : {};
  // Engines serve only the served model name; clients may also say the slug, which the router rewrites.
  const upstreamModel = servedModelName;
  const publicOnly = TENANT_SERVER_ENDPOINTS.has(c.provider) ? { publicOnly: true } : {};
  if (c.kind === "serverless") {
    const workers = spec.serverlessScaling?.maxWorkers ?? 0;
    return {
      id: c.id,
      kind: "serverless",
      url: c.endpointUrl,
      ...(headers ? { headers } : {}),
      ...(workers > 0 && concurrency > 0 ? { maxInflight: workers * concurrency } : {}),
      ...(c.status === "draining" ? { draining: true } : {}),
      ...connectionIdle,
      ...publicOnly,
      upstreamModel,
    };
  }
  return {
    id: c.id,
    kind: "spot",
    url: c.endpointUrl,
    ...(headers ? { headers } : {}),
    // Not ready = cold: the router serves from serverless meanwhile.
    replicas: c.status === "ready" ? Math.max(0, c.replicasReady ?? 1) : 0,
    maxInflightPerReplica: concurrency > 0 ? concurrency : DEFAULT_MAX_INFLIGHT_PER_REPLICA,
    ...(c.status === "draining" ? { draining: true } : {}),
    ...connectionIdle,
    ...publicOnly,
    upstreamModel,
  };
}

const POLICY: Record<DeploymentConfig["mode"], DeploymentConfig["routing"]["policy"]> = {
  hybrid: "spot-first",
  serverless: "serverless-only",
  spot: "spot-only",
};

export async function buildRouterSnapshot(now: Date = new Date()): Promise<RouterSnapshot> {
  // Version first: a change committed while we read shows up again under a higher version next poll.
  const version = await snapshotVersion();
  const [deployments, keys, blocks] = await Promise.all([
    db.deployment.findMany({
      // Direct (serverless-only) deployments also hand out the provider URL, but stay reachable through the router.
      where: { status: { in: ["active", "degraded"] } },
      include: { components: { orderBy: { kind: "asc" } } },
      orderBy: { id: "asc" },
    }),
    db.apiKey.findMany({
      where: { revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
      orderBy: { id: "asc" },
    }),
    // Budgets at 100%: the router refuses these keys/deployments with a message naming the budget.
    budgetBlocks(now),
  ]);
  const out: DeploymentConfig[] = [];
  for (const d of deployments) {
    const spec = (d.spec ?? {}) as StoredSpecish;
    const backends: BackendConfig[] = [];
    for (const c of d.components) {
      try {
        const b = backendOf(d.teamId, d.id, d.servedModelName, c, spec);
        if (b) backends.push(b);
      } catch (e) {
        // One unreadable component must not take every team's routing down; it is left out and logged.
        console.error(`[routerconfig] component ${c.id} of deployment ${d.id} left out: ${(e as Error).message}`);
      }
    }
    if (backends.length === 0) continue;
    out.push({
      id: d.id,
      teamId: d.teamId,
      slug: d.slug,
      models: [...new Set([d.slug, d.servedModelName])],
      mode: d.mode,
      backends,
      routing: {
        policy: POLICY[d.mode],
        ...(spec.serverlessScaling?.idleTimeoutS ? { idleTimeoutS: spec.serverlessScaling.idleTimeoutS } : {}),
      },
      ...(blocks.deployments.has(d.id) ? { blocked: blocks.deployments.get(d.id) } : {}),
    });
  }
  const snapshot = {
    version,
    deployments: out,
    apiKeys: keys.map((k) => ({
      id: k.id,
      hash: k.hash,
      teamId: k.teamId,
      deployments: k.deploymentIds.length ? [...k.deploymentIds] : ("*" as const),
      limits: { rpm: k.rpm, tpm: k.tpm, maxConcurrent: k.maxConcurrent },
      expiresAt: k.expiresAt ? k.expiresAt.toISOString() : null,
      ...(blocks.apiKeys.has(k.id) ? { blocked: blocks.apiKeys.get(k.id) } : {}),
    })),
  };
  return routerSnapshotSchema.parse(snapshot);
}

// ------------------------------------------------------------------------------------------- token

let cachedToken: { sig: string; token: string } | null = null;

/** TUNA_ROUTER_TOKEN, or on the embedded default the token generated once into `<data dir>/router.token`. */
export function routerToken(): string {
  const fromEnv = process.env.TUNA_ROUTER_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = path.join(dataDir(), "router.token");
  if (cachedToken?.sig === file) return cachedToken.token;
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    try {
      writeFileSync(file, `rt_${randomBytes(24).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    console.warn(`[tuna] TUNA_ROUTER_TOKEN is not set: routers must use the token in ${file}`);
  }
  chmodSync(file, 0o600);
  const token = readFileSync(file, "utf8").trim();
  cachedToken = { sig: file, token };
  return token;
}

/** Constant-time check of `Authorization: Bearer <router token>`. */
export function routerTokenValid(authorizationHeader: string | null | undefined): boolean {
  if (!authorizationHeader) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader);
  if (!m) return false;
  const a = createHash("sha256").update(m[1]).digest();
  const b = createHash("sha256").update(routerToken()).digest();
  return timingSafeEqual(a, b);
}

// ------------------------------------------------------------------------------------------- handler

/** Polls from many routers share one build for this long (content still changes within a second). */
const BUILD_CACHE_MS = 1000;
let built: { version: number; at: number; body: string; etag: string } | null = null;

async function currentBody(): Promise<{ body: string; etag: string }> {
  const version = await snapshotVersion();
  const now = Date.now();
  if (built && built.version === version && now - built.at < BUILD_CACHE_MS) return built;
  const snapshot = await buildRouterSnapshot(new Date(now));
  const body = JSON.stringify(snapshot);
  const etag = `"v${snapshot.version}-${createHash("sha256").update(body).digest("hex").slice(0, 16)}"`;
  built = { version: snapshot.version, at: now, body, etag };
  return built;
}

function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag || t.trim() === "*");
}

/** `GET /api/router/config` as a fetch-API handler (the app mounts it at app/api/router/config/route.ts). */
export async function handleRouterConfigRequest(req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response(JSON.stringify({ error: "method not allowed" }), { status: 405, headers: { allow: "GET", "content-type": "application/json" } });
  }
  if (!routerTokenValid(req.headers.get("authorization"))) {
    return new Response(JSON.stringify({ error: "router token required" }), {
      status: 401,
      headers: { "content-type": "application/json", "www-authenticate": 'Bearer realm="tuna-router"' },
    });
  }
  const { body, etag } = await currentBody();
  const headers = { etag, "cache-control": "no-store", "content-type": "application/json" };
  if (etagMatches(req.headers.get("if-none-match"), etag)) return new Response(null, { status: 304, headers });
  return new Response(req.method === "HEAD" ? null : body, { status: 200, headers });
}

// ------------------------------------------------------------------------------------------- last used

const KEY_USED_GRANULARITY_MS = 60_000;
const lastWritten = new Map<string, number>();

/**
 * Called by the usage ingest with the keys seen in a batch: at most one write per key per minute, one
 * statement for the whole batch, never moving lastUsedAt backwards.
 */
export async function recordKeysUsed(keyIds: string[], at: Date = new Date()): Promise<number> {
  const t = at.getTime();
  const due = [...new Set(keyIds)].filter((id) => t - (lastWritten.get(id) ?? 0) >= KEY_USED_GRANULARITY_MS);
  if (due.length === 0) return 0;
  const r = await db.apiKey.updateMany({
    where: { id: { in: due }, OR: [{ lastUsedAt: null }, { lastUsedAt: { lte: new Date(t - KEY_USED_GRANULARITY_MS) } }] },
    data: { lastUsedAt: at },
  });
  for (const id of due) lastWritten.set(id, t);
  if (lastWritten.size > 100_000) lastWritten.clear();
  return r.count;
}
