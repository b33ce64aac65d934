// Wire contracts owned by the router: the config snapshot it consumes and the usage report it produces.
// The control plane imports this file, so it must stay free of node-only imports (zod only).
import { z } from "zod";

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), { message: "backend url must be http(s)" });

const positiveInt = z.number().int().positive();

export const blockedSchema = z
  .object({ code: z.literal("budget_exceeded"), message: z.string() })
  .nullable()
  .optional();

export const backendSchema = z.object({
  /** Sent to clients in `x-tuna-backend` and used as a metric label: printable ASCII, no spaces. */
  id: z.string().regex(/^[\x21-\x7e]{1,200}$/, "a backend id is 1-200 printable ASCII characters without spaces (it is sent in x-tuna-backend)"),
  kind: z.enum(["serverless", "spot"]),
  url: httpUrl,
  /** Upstream headers added to every request to this backend (e.g. provider auth). Never logged. */
  headers: z.record(z.string(), z.string()).optional(),
  /** Capacity of a serverless backend (in-flight requests); absent = unbounded. */
  maxInflight: positiveInt.optional(),
  /** Spot: ready replicas; capacity = replicas × maxInflightPerReplica. */
  replicas: z.number().int().nonnegative().optional(),
  maxInflightPerReplica: positiveInt.optional(),
  /** Preemption notice: a draining backend receives no new requests. */
  draining: z.boolean().optional(),
  /** Model name the upstream serves, when it differs from what clients send. */
  upstreamModel: z.string().optional(),
  /**
   * How long an idle keep-alive connection to this backend is kept for the next request (ms; default 4000,
   * below the 5 s of uvicorn/vLLM). Set it below the backend front end's own idle timeout; a response's
   * `Keep-Alive: timeout=N` header still shortens it to N − 1 s.
   */
  connectionIdleMs: positiveInt.max(600_000).optional(),
  /**
   * The URL's host is chosen by a tenant (a SkyServe endpoint answered by the team's own SkyPilot API server):
   * every new connection resolves it, is refused when any of its addresses is internal (loopback, private,
   * link-local, CGNAT, multicast, reserved) unless the router's `TUNA_ALLOW_PRIVATE_URLS` allows it, and goes
   * to the address that was checked. Default false: the URL is the operator's or a provider's own.
   */
  publicOnly: z.boolean().optional(),
});

export const routingRuleSchema = z.object({
  when: z.object({
    /** Estimated prompt tokens (ceil(chars/4)) strictly above this value. */
    promptTokensAbove: z.number().int().nonnegative().optional(),
    /** Requested max_tokens strictly above this value. */
    maxTokensAbove: z.number().int().nonnegative().optional(),
  }),
  prefer: z.enum(["spot", "serverless"]),
});

export const routingSchema = z.object({
  policy: z.enum(["spot-first", "serverless-only", "spot-only", "weighted"]),
  warmupPokeIntervalS: z.number().positive().optional(),
  idleTimeoutS: z.number().positive().optional(),
  warmupTimeoutS: z.number().positive().optional(),
  /** Request-aware rules, first match wins; they override the policy's backend preference. */
  rules: z.array(routingRuleSchema).optional(),
  /** Weighted split (canary) by backend id, used by policy "weighted". */
  weights: z.record(z.string(), z.number().nonnegative()).optional(),
  /** Streams: time to response headers before the request fails over (ms). */
  firstByteTimeoutMs: positiveInt.optional(),
  /**
   * Non-streaming requests: time to the response (ms), which engines send only once the whole answer is
   * generated; at least firstByteTimeoutMs.
   */
  responseTimeoutMs: positiveInt.optional(),
  /**
   * After the answer committed (its first byte went to the client): the longest a relayed body may go without an
   * upstream byte before the router cuts it as a frozen backend (ms; default 120000, max 3600000). Time the
   * upstream is paused because the client reads slowly does not count. Small buffered JSON answers never need it.
   */
  streamIdleTimeoutMs: positiveInt.max(3_600_000).optional(),
  connectTimeoutMs: positiveInt.optional(),
  /** Consecutive failures (connect error, 5xx, timeout) that eject a backend. */
  ejectAfterFailures: positiveInt.optional(),
  /** Active health checks of an ejected backend, and successes in a row needed to fail back. */
  healthCheckIntervalMs: positiveInt.optional(),
  failbackSuccesses: positiveInt.optional(),
  /** An ejected backend stays out at least this long, so a flapping backend cannot bounce in and out. */
  minEjectMs: z.number().int().nonnegative().optional(),
});

export const deploymentSchema = z.object({
  id: z.string().min(1),
  teamId: z.string().min(1),
  slug: z.string().regex(/^[a-zA-Z0-9._-]+$/),
  models: z.array(z.string().min(1)).min(1),
  mode: z.enum(["hybrid", "serverless", "spot"]),
  backends: z.array(backendSchema).min(1),
  routing: routingSchema,
  /** Per-deployment caps, applied across all keys. */
  limits: z
    .object({
      maxInflight: positiveInt.optional(),
      rpm: positiveInt.optional(),
      tpm: positiveInt.optional(),
    })
    .optional(),
  blocked: blockedSchema,
});

export const apiKeySchema = z.object({
  id: z.string().min(1),
  hash: z.string().regex(/^[0-9a-f]{64}$/i, "sha256 hex"),
  teamId: z.string().min(1),
  deployments: z.union([z.literal("*"), z.array(z.string())]),
  limits: z.object({
    rpm: positiveInt.nullable().optional(),
    tpm: positiveInt.nullable().optional(),
    maxConcurrent: positiveInt.nullable().optional(),
  }),
  expiresAt: z.string().datetime({ offset: true }).nullable().optional(),
  revoked: z.boolean().optional(),
  blocked: blockedSchema,
});

const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Framing and hop-by-hop headers: the router writes these for each request; a backend's config must not. */
const ROUTER_OWNED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect"]);

export const routerSnapshotSchema = z
  .object({
    version: z.number().int().nonnegative(),
    deployments: z.array(deploymentSchema),
    apiKeys: z.array(apiKeySchema),
  })
  .superRefine((snap, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const ids = new Set<string>();
    for (const [i, d] of snap.deployments.entries()) {
      if (ids.has(d.id)) issue(["deployments", i, "id"], "duplicate id");
      ids.add(d.id);
      const bids = new Set<string>();
      for (const [j, b] of d.backends.entries()) {
        if (bids.has(b.id)) issue(["deployments", i, "backends", j, "id"], "duplicate backend id");
        bids.add(b.id);
        for (const name of Object.keys(b.headers ?? {})) {
          if (!HEADER_TOKEN.test(name)) issue(["deployments", i, "backends", j, "headers", name], "not a valid header name");
          else if (ROUTER_OWNED_HEADERS.has(name.toLowerCase())) issue(["deployments", i, "backends", j, "headers", name], "set by the router itself");
        }
      }
      for (const w of Object.keys(d.routing.weights ?? {})) if (!bids.has(w)) issue(["deployments", i, "routing", "weights", w], "no backend with this id");
    }
    // Keys share rate-limit state by id and are found by hash: two entries for either would be ambiguous.
    const keyIds = new Set<string>();
    const hashes = new Set<string>();
    for (const [i, k] of snap.apiKeys.entries()) {
      if (keyIds.has(k.id)) issue(["apiKeys", i, "id"], "duplicate key id");
      if (hashes.has(k.hash.toLowerCase())) issue(["apiKeys", i, "hash"], "duplicate key hash");
      keyIds.add(k.id);
      hashes.add(k.hash.toLowerCase());
    }
  });


export type RouterSnapshot = z.infer<typeof routerSnapshotSchema>;
export type DeploymentConfig = z.infer<typeof deploymentSchema>;
export type BackendConfig = z.infer<typeof backendSchema>;
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;
export type RoutingConfig = z.infer<typeof routingSchema>;

const histogramSchema = z.object({
  /** Upper bounds (ms), ascending; counts has one more slot for +Inf. */
  bounds: z.array(z.number()),
  counts: z.array(z.number().int().nonnegative()),
});

export const backendStateSchema = z.enum(["cold", "warming", "ready", "draining", "ejected"]);

/** Longest `reason` of a backend state event, in UTF-16 code units. */
export const STATE_REASON_MAX_CHARS = 200;

// Control characters (NUL cannot be stored in a PostgreSQL text, the others have no place in a line of text) and,
// matched by code point, surrogate halves without their other half (not valid text: PostgreSQL refuses them in JSON).
const UNSAFE_IN_REASON = /[\p{Cc}\p{Cs}]/gu;

/**
 * A state event's reason as it may be stored and shown: cut to `STATE_REASON_MAX_CHARS` (never between the halves
 * of a surrogate pair), control characters and lone surrogate halves replaced. The router cleans before sending,
 * and the contract cleans what an older or foreign router sent rather than refusing the report: a diagnostic
 * must never cost a usage report.
 */
export function cleanStateReason(reason: string): string {
  let r = reason;
  if (r.length > STATE_REASON_MAX_CHARS) {
    const last = r.charCodeAt(STATE_REASON_MAX_CHARS - 1);
    r = r.slice(0, last >= 0xd800 && last <= 0xdbff ? STATE_REASON_MAX_CHARS - 1 : STATE_REASON_MAX_CHARS);
  }
  return r.replace(UNSAFE_IN_REASON, "\ufffd");
}

export const usageReportSchema = z.object({
  routerId: z.string().min(1),
  batchId: z.string().uuid(),
  periodStart: z.string().datetime({ offset: true }),
  periodEnd: z.string().datetime({ offset: true }),
  configVersion: z.number().int().nonnegative(),
  entries: z.array(
    z.object({
      keyId: z.string(),
      deploymentId: z.string(),
      backendId: z.string(),
      backendKind: z.enum(["serverless", "spot"]),
      requests: z.number().int().nonnegative(),
      errors: z.number().int().nonnegative(),
      inputTokens: z.number().int().nonnegative(),
      outputTokens: z.number().int().nonnegative(),
      latencyMs: histogramSchema,
      ttftMs: histogramSchema,
      busyMs: z.number().nonnegative(),
    }),
  ),
  events: z.array(
    z.object({
      type: z.literal("backend_state"),
      deploymentId: z.string(),
      backendId: z.string(),
      state: backendStateSchema,
      at: z.string().datetime({ offset: true }),
      /**
       * Why the router's view changed, built only from fixed words, counts, timeouts and failure kinds (never a
       * URL, header or body): "ejected: 3 consecutive failures (connect)", "idle: no requests for 60 s",
       * "replicas=0", "health checks passed"... Optional (older routers may send none); cut to 200 characters
       * and cleaned (`cleanStateReason`), never refused.
       */
      reason: z.string().overwrite(cleanStateReason).optional(),
    }),
  ),
});

export type UsageReport = z.infer<typeof usageReportSchema>;
export type UsageEntry = UsageReport["entries"][number];
export type BackendStateEvent = UsageReport["events"][number];
export type BackendState = z.infer<typeof backendStateSchema>;
