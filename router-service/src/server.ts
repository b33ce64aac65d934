// The router's HTTP server: request pipeline (protect → auth → resolve → limit → route → proxy → account),
// operational endpoints and graceful shutdown.
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { AddressInfo, Socket } from "node:net";
import { ALLOW_PRIVATE_URLS_ENV, parseAllowlist } from "./address.js";
import { authenticate, keyMayUse } from "./auth.js";
import type { BackendRuntime, StateChange } from "./backend.js";
import { ConfigStore, type DeploymentRuntime } from "./config.js";
import { type ConfigSource, ControlPlaneSource, StaticFileSource } from "./configSync.js";
import { cleanStateReason, type RouterSnapshot } from "./contract.js";
import type { Resolve } from "./egress.js";
import { errors, type RouterErrorSpec, sendError } from "./errors.js";
import { FastRequest, httpDate, installFastPath, type RouterResponse } from "./http1.js";
import { createLogger, type Logger } from "./log.js";
import { labelKey, RouterMetrics } from "./metrics.js";
import { chooseBackends } from "./policy.js";
import {
  type Attempt, attemptUpstream, type ClientHead, StreamIdleWatch, type Usage, upstreamRequestHeaders, usageFromJson, usageFromTail,
  writeWithBackpressure,
} from "./proxy.js";
import { MemoryRateLimiter } from "./ratelimit/memory.js";
import { LimiterUnavailableError, RedisRateLimiter } from "./ratelimit/redis.js";
import { type AcquireResult, has, type LimitSpec, type RateLimiter } from "./ratelimit/types.js";
import type { Exchange } from "./upstream.js";
import { UsageAggregator, UsageReporter } from "./usage.js";

export interface RouterOptions {
  port?: number;
  host?: string;
  /** Static snapshot (programmatic use / tests). */
  config?: RouterSnapshot;
  /** Static snapshot file, watched for changes (polled every configWatchMs). */
  configPath?: string;
  controlPlaneUrl?: string;
  routerToken?: string;
  /** Token for POST /_tuna/backends (replica reports, preemption notices); defaults to routerToken. */
  adminToken?: string;
  /** When set, GET /metrics requires `Authorization: Bearer <metricsToken>`; unset, it is open (warned at start). */
  metricsToken?: string;
  redisUrl?: string;
  rateLimitFailMode?: "open" | "closed";
  /** How long startup waits for the first Redis connection. */
  redisConnectTimeoutMs?: number;
  /** Global in-flight bound; above it the router answers 503 + Retry-After instead of collapsing. */
  maxInflight?: number;
  maxBodyBytes?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  shutdownTimeoutMs?: number;
  /** Directory for the usage spool and the cached config snapshot. */
  stateDir?: string;
  usageFlushMs?: number;
  /** An empty usage report goes out when none did for this long (a heartbeat: the router is alive). */
  usageHeartbeatMs?: number;
  maxSpoolFiles?: number;
  configPollMs?: number;
  configWatchMs?: number;
  routerId?: string;
  logLevel?: string;
  logger?: Logger;
  /** Tokens reserved for TPM when a request sets no max_tokens. */
  defaultReserveTokens?: number;
  /**
   * Internal hosts / addresses / CIDRs that `publicOnly` backends may connect to anyway (the syntax of
   * `TUNA_ALLOW_PRIVATE_URLS`, which main.ts passes; read once at start). Unset: none.
   */
  allowPrivateUrls?: string;
  /** Resolver for `publicOnly` backends' host names (tests); default `dns.lookup` with `all: true`. */
  resolve?: Resolve;
}

export interface RouterHandle {
  port: number;
  url: string;
  metrics: RouterMetrics;
  store: ConfigStore;
  /** Graceful: stop accepting, finish in-flight within the deadline, flush usage. */
  close(): Promise<void>;
  applySnapshot(s: RouterSnapshot): void;
  inflight(): number;
}

const API_PATHS = new Set(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);

interface Ctx {
  start: number;
  deploymentId: string;
  backendId: string;
  status: number;
  /** The backend that answered (or was last tried), for its pre-rendered metric keys. */
  backend?: BackendRuntime;
}

/** Metric series keys of one backend, rendered once instead of per request. */
interface BackendMetricKeys {
  /** `deployment="…",backend="…"` for the latency/TTFT histograms. */
  labels: string;
  /** requests_total keys by status code. */
  byStatus: Map<number, string>;
}

export async function startRouter(opts: RouterOptions): Promise<RouterHandle> {
  const logger = opts.logger ?? createLogger(opts.logLevel);
  const metrics = new RouterMetrics();
  const stateDir = opts.stateDir ?? join(process.cwd(), ".tuna", "router");
  const routerId = opts.routerId ?? persistentRouterId(stateDir, logger);
  // Limit leases must be unique per process, even for two processes given the same router id.
  const leasePrefix = `${routerId}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const maxInflight = opts.maxInflight ?? 4096;
  const maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 30_000;
  const defaultReserve = opts.defaultReserveTokens ?? 256;
  const adminToken = opts.adminToken ?? opts.routerToken;
  const metricsToken = opts.metricsToken || undefined;
  const usage = new UsageAggregator();
  const logDebug = logger.isLevelEnabled("debug");
  let reqSeq = 0;

  const onStateChange = (c: StateChange) => {
    logger.info({ deployment: c.deploymentId, backend: c.backendId, state: c.state, reason: c.reason }, "backend state");
    // The reason is shown on the dashboard: bounded here, so the report (and its spool file) stays within the contract.
    usage.event({ type: "backend_state", deploymentId: c.deploymentId, backendId: c.backendId, state: c.state, at: c.at.toISOString(), reason: cleanStateReason(c.reason) });
  };
  const allowPrivate = parseAllowlist(opts.allowPrivateUrls);
  for (const entry of allowPrivate.invalid) logger.warn({ entry }, `${ALLOW_PRIVATE_URLS_ENV}: ignoring an entry that is not a host name, address or CIDR`);
  // Refusals are counted every time and logged once per backend until it connects again; the log names the host
  // and the address, never the URL (its path or query may carry a token) or the upstream headers.
  const store = new ConfigStore(onStateChange, {
    allow: allowPrivate,
    resolve: opts.resolve,
    onRefused(b, err, first) {
      metrics.upstreamRefused.inc({ deployment: b.deploymentId, backend: b.id });
      if (first)
        logger.warn(
          { deployment: b.deploymentId, backend: b.id, host: err.host, address: err.address, addressClass: err.addressClass },
          `upstream connection refused: the publicOnly backend's host is an internal address (allow it in the router's ${ALLOW_PRIVATE_URLS_ENV} if it is meant to be)`,
        );
    },
    onAllowedAgain(b, host) {
      logger.info({ deployment: b.deploymentId, backend: b.id, host }, "upstream connections allowed again: the publicOnly backend's host passed the address check");
    },
  });
  const applySnapshot = (s: RouterSnapshot) => {
    const prev = store.current?.version;
    store.apply(s);
    metrics.configVersion.set({}, s.version);
    if (prev !== s.version) logger.info({ version: s.version, deployments: s.deployments.length, keys: s.apiKeys.length }, "config applied");
  };

  metrics.backendState.onCollect((g) => {
    for (const b of store.allBackends()) g.set({ deployment: b.deploymentId, backend: b.id, state: b.state() }, 1);
  });
  metrics.inflight.onCollect((g) => {
    for (const b of store.allBackends()) g.set({ deployment: b.deploymentId, backend: b.id }, b.inflight);
  });

  const limiter: RateLimiter = opts.redisUrl
    ? new RedisRateLimiter({ url: opts.redisUrl, failMode: opts.rateLimitFailMode ?? "open", logger, errors: metrics.limiterErrors })
    : new MemoryRateLimiter();

  if (limiter instanceof RedisRateLimiter && !(await limiter.ready(opts.redisConnectTimeoutMs ?? 5000)))
    logger.error({ failMode: opts.rateLimitFailMode ?? "open" }, "redis not reachable at startup; limits follow the fail mode until it is");

  let source: ConfigSource | undefined;
  if (opts.config) applySnapshot(opts.config);
  else if (opts.configPath) source = new StaticFileSource(opts.configPath, logger, metrics, opts.configWatchMs);
  else if (opts.controlPlaneUrl && opts.routerToken)
    source = new ControlPlaneSource({
      url: opts.controlPlaneUrl.replace(/\/+$/, ""), token: opts.routerToken, cachePath: join(stateDir, "config.json"),
      pollMs: opts.configPollMs ?? 2000, logger, metrics,
    });
  else throw new Error("no config: pass --config <file> or set TUNA_CONTROL_PLANE_URL and TUNA_ROUTER_TOKEN");
  if (source) await source.start(applySnapshot);

  const reporter = new UsageReporter({
    url: opts.controlPlaneUrl?.replace(/\/+$/, ""), token: opts.routerToken, spoolDir: join(stateDir, "usage-spool"),
    maxSpoolFiles: opts.maxSpoolFiles ?? 1000, logger, metrics,
  });
  const flushUsage = () => {
    const report = usage.drain(routerId, store.current?.version ?? 0, opts.usageHeartbeatMs ?? 60_000);
    // Without a control plane there is nobody to send to; keep nothing on disk then.
    if (report && opts.controlPlaneUrl) reporter.spool(report);
    return reporter.sendSpool();
  };
  const usageTimer = setInterval(() => void flushUsage(), opts.usageFlushMs ?? 5000);
  usageTimer.unref();
  void reporter.sendSpool(true);

  let globalInflight = 0;
  metrics.globalInflight.onCollect((g) => g.set({}, globalInflight));
  let shuttingDown = false;
  const sockets = new Set<Socket>();

  // ---- per-request pipeline -------------------------------------------------------------------------------

  const keysOf = (b: BackendRuntime): BackendMetricKeys => {
    let k = b.metricKeys as BackendMetricKeys | undefined;
    if (!k) {
      k = { labels: labelKey(metrics.latency.labelNames, { deployment: b.deploymentId, backend: b.id }), byStatus: new Map() };
      b.metricKeys = k;
    }
    return k;
  };
  const record = (ctx: Ctx) => {
    const b = ctx.backend;
    if (!b) {
      metrics.requests.inc({ deployment: ctx.deploymentId, backend: ctx.backendId, status: String(ctx.status) });
      return;
    }
    const keys = keysOf(b);
    let k = keys.byStatus.get(ctx.status);
    if (k === undefined) {
      k = labelKey(metrics.requests.labelNames, { deployment: b.deploymentId, backend: b.id, status: String(ctx.status) });
      keys.byStatus.set(ctx.status, k);
    }
    metrics.requests.incKey(k);
  };
  const fail = (res: RouterResponse, ctx: Ctx, spec: RouterErrorSpec, extra?: Record<string, string>) => {
    ctx.status = spec.status;
    sendError(res, spec, extra);
  };

  async function handleInference(req: IncomingMessage | FastRequest, res: RouterResponse, apiPath: string, slug: string | undefined) {
    const ctx: Ctx = { start: performance.now(), deploymentId: "", backendId: "", status: 0 };
    const cleanups: Array<() => void> = [];
    let clientClosed = false;
    const goneListeners: Array<() => void> = [];
    globalInflight++;
    // Exactly one release point for everything a request holds: the response's close, which fires on
    // success, error and client disconnect alike. This is what keeps counters from leaking.
    res.once("close", () => {
      clientClosed = true;
      for (const fn of goneListeners) fn();
      globalInflight--;
      for (const c of cleanups) {
        try {
          c();
        } catch (err) {
          logger.error({ err: (err as Error).message }, "cleanup failed");
        }
      }
      if (ctx.status === 0) ctx.status = 499; // client went away before any answer
      record(ctx);
      if (logDebug)
        logger.debug({ deployment: ctx.deploymentId, backend: ctx.backendId, status: ctx.status, ms: Math.round(performance.now() - ctx.start) }, "request");
    });

    if (shuttingDown) return fail(res, ctx, errors.shuttingDown());
    if (globalInflight > maxInflight) {
      metrics.limitRejections.inc({ limit: "router_inflight" });
      return fail(res, ctx, errors.overloaded("router"));
    }
    const cfg = store.current;
    if (!cfg) return fail(res, ctx, errors.noBackend());

    const auth = authenticate(req.headers, cfg.keysByHash);
    if (!auth.ok) return fail(res, ctx, auth.reason === "missing" ? errors.missingKey() : errors.invalidKey());
    const key = auth.key;

    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBodyBytes) {
      res.shouldKeepAlive = false;
      return fail(res, ctx, errors.bodyTooLarge(maxBodyBytes), { connection: "close" });
    }
    // The fast path has read the whole body already (within the limit); Node's path streams it in.
    const raw = req instanceof FastRequest ? req.body : await readBody(req, maxBodyBytes);
    if (raw === "aborted") return;
    if (raw === "too_large") {
      res.shouldKeepAlive = false;
      return fail(res, ctx, errors.bodyTooLarge(maxBodyBytes), { connection: "close" });
    }
    let body: Record<string, unknown>;
    try {
      const parsed = JSON.parse(raw.toString("utf8"));
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return fail(res, ctx, errors.badRequest("The request body must be a JSON object."));
      body = parsed as Record<string, unknown>;
    } catch {
      return fail(res, ctx, errors.invalidJson());
    }

    let dep: DeploymentRuntime | undefined;
    let requested: string;
    if (slug !== undefined) {
      requested = slug;
      dep = cfg.byTeamSlug.get(`${key.teamId}\u0000${slug}`);
    } else {
      if (typeof body.model !== "string" || !body.model) return fail(res, ctx, errors.badRequest("You must provide a model parameter.", "model"));
      requested = body.model;
      dep = cfg.byTeamModel.get(`${key.teamId}\u0000${body.model}`);
    }
    // Same answer for "does not exist" and "exists in another team or outside the key's scope".
    if (!dep || !keyMayUse(key, dep.cfg.id, dep.cfg.teamId)) return fail(res, ctx, errors.modelNotFound(requested));
    ctx.deploymentId = dep.cfg.id;
    if (key.blocked) return fail(res, ctx, errors.quota(key.blocked.message));
    if (dep.cfg.blocked) return fail(res, ctx, errors.quota(dep.cfg.blocked.message));

    // As OpenAI: a non-boolean `stream` is refused (lax engines would stream on 1 or "true", unbilled here).
    if (body.stream != null && typeof body.stream !== "boolean") return fail(res, ctx, errors.badRequest("Invalid type for 'stream': expected a boolean.", "stream"));
    const stream = body.stream === true;
    const promptTokens = Math.ceil(promptChars(body) / 4);
    const maxTokens = requestedMaxTokens(body);
    // Engines cap the answer by the larger of the two fields when both are sent, for each of n choices.
    const choices = typeof body.n === "number" && body.n > 1 ? Math.floor(body.n) : 1;
    const reserve = promptTokens + (apiPath === "/v1/embeddings" ? 0 : choices * Math.max(0, maxTokens ?? defaultReserve));

    // ---- limits: key, then deployment (each one atomic check) -----------------------------------------------
    const leaseId = `${leasePrefix}:${++reqSeq}`;
    const keySubject = `key:${key.id}`;
    const keyLimits: LimitSpec = key.limits;
    let keyResult: AcquireResult;
    try {
      keyResult = limiter.acquireSync ? limiter.acquireSync(keySubject, keyLimits, reserve, leaseId) : await limiter.acquire(keySubject, keyLimits, reserve, leaseId);
    } catch (err) {
      if (err instanceof LimiterUnavailableError) {
        // A check that timed out may still run on the store later: give its lease back (ordered after it).
        void limiter.release(keySubject, keyLimits, leaseId);
        return fail(res, ctx, errors.limiterUnavailable());
      }
      throw err;
    }
    const rlHeaders = rateLimitHeaders(keyLimits, keyResult);
    if (!keyResult.ok) {
      metrics.limitRejections.inc({ limit: `key_${keyResult.limit}` });
      const spec = keyResult.tooLarge ? errors.requestTooLarge(keyLimits.tpm ?? 0, reserve) : errors.rateLimited(`key ${keyResult.limit}`, keyResult.retryAfterS);
      return fail(res, ctx, spec, pairsToRecord(rlHeaders));
    }
    const reserved = reserve;
    let settledTokens: number | undefined; // real usage once known
    let refundAll = false;
    // Deployment caps across all keys: RPM/TPM windows and the in-flight cap as a concurrency lease, in one
    // atomic check on the same store as the key's limits (so with Redis the in-flight cap spans all routers).
    const depCaps = dep.cfg.limits;
    const depLimited = has(depCaps?.rpm) || has(depCaps?.tpm) || has(depCaps?.maxInflight);
    const depLimits: LimitSpec = depLimited ? { rpm: depCaps?.rpm, tpm: depCaps?.tpm, maxConcurrent: depCaps?.maxInflight } : NO_LIMITS;
    const depSubject = `dep:${dep.cfg.id}`;
    const keyWindowSec = keyResult.windowSec;
    let depWindowSec: number | undefined;
    let depHeld = false;
    // The TPM reservations are settled exactly once, when the outcome is known: on the response's close (the
    // relay reports real usage before it ends the response), unless that close comes while the handler awaits a
    // limit check or the backend's head; the handler then settles when the await returns (all of it back when
    // no backend answered). The concurrency leases always go back on the close.
    let awaiting = false;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      const delta = refundAll ? -reserved : settledTokens !== undefined ? settledTokens - reserved : 0;
      if (delta === 0) return;
      void limiter.settle(keySubject, keyLimits, delta, keyWindowSec);
      if (depHeld) void limiter.settle(depSubject, depLimits, delta, depWindowSec);
    };
    const giveBack = () => {
      if (!awaiting) settle();
      void limiter.release(keySubject, keyLimits, leaseId);
      if (depHeld) void limiter.release(depSubject, depLimits, leaseId);
    };
    // The client left while the key check was awaited (Redis): its close has passed, give everything back now.
    if (clientClosed) {
      refundAll = true;
      return giveBack();
    }
    cleanups.push(giveBack);
    if (depLimited) {
      let r: AcquireResult;
      awaiting = true;
      try {
        r = limiter.acquireSync ? limiter.acquireSync(depSubject, depLimits, reserve, leaseId) : await limiter.acquire(depSubject, depLimits, reserve, leaseId);
      } catch (err) {
        awaiting = false;
        refundAll = true;
        if (clientClosed) settle();
        if (err instanceof LimiterUnavailableError) {
          void limiter.release(depSubject, depLimits, leaseId);
          return fail(res, ctx, errors.limiterUnavailable());
        }
        throw err;
      }
      awaiting = false;
      if (!r.ok) {
        refundAll = true;
        if (clientClosed) settle();
        if (r.limit === "maxConcurrent") {
          metrics.limitRejections.inc({ limit: "deployment_inflight" });
          return fail(res, ctx, errors.overloaded("deployment"), pairsToRecord(rlHeaders));
        }
        metrics.limitRejections.inc({ limit: `deployment_${r.limit}` });
        const spec = r.tooLarge ? errors.requestTooLarge(depLimits.tpm ?? 0, reserve, "deployment") : errors.rateLimited(`deployment ${r.limit}`, r.retryAfterS);
        return fail(res, ctx, spec, pairsToRecord(rlHeaders));
      }
      depWindowSec = r.windowSec;
      depHeld = true;
      // The client left during the check: the close has passed (the key's lease went back then), so this
      // lease and both reservations go back now.
      if (clientClosed) {
        refundAll = true;
        settle();
        void limiter.release(depSubject, depLimits, leaseId);
        return;
      }
      // Store unreachable and failing open: the in-flight cap still holds per router (it protects the backend).
      if (r.degraded && has(depCaps?.maxInflight) && dep.inflight.n >= depCaps.maxInflight) {
        refundAll = true;
        metrics.limitRejections.inc({ limit: "deployment_inflight" });
        return fail(res, ctx, errors.overloaded("deployment"), pairsToRecord(rlHeaders));
      }
    }
    const depInflight = dep.inflight;
    depInflight.n++;
    cleanups.push(() => {
      depInflight.n--;
    });

    // ---- routing --------------------------------------------------------------------------------------------
    const choice = chooseBackends(dep, { promptTokens, maxTokens });
    if (!choice.ok) {
      refundAll = true;
      metrics.limitRejections.inc({ limit: choice.reason === "capacity" ? "backend_capacity" : "no_backend" });
      return fail(res, ctx, choice.reason === "capacity" ? errors.overloaded("deployment") : errors.noBackend(), pairsToRecord(rlHeaders));
    }

    // The router asks for usage on streams (TPM settlement); the client only sees it if it asked too.
    const clientWantsUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    // On /d/<slug>/… the path picks the deployment: a missing model, or one the deployment does not serve, is
    // replaced by the deployment's own, so a key cannot address anything else the backend may serve.
    const modelOk = typeof body.model === "string" && (slug === undefined || dep.cfg.models.includes(body.model));
    const needsRewrite = (stream && !clientWantsUsage && apiPath !== "/v1/embeddings") || !modelOk;

    // Unique per router and cheap (no entropy per request); a client-supplied id is kept for tracing.
    const requestId = typeof req.headers["x-request-id"] === "string" ? req.headers["x-request-id"] : `${routerId}-${reqSeq}`;

    let lastFailure = "";
    for (let i = 0; i < choice.candidates.length; i++) {
      const b = choice.candidates[i];
      if (i > 0) {
        // A fallback may have filled up or been ejected while the first attempt ran: then it is not tried, and
        // no failover happened. One is counted here, as the next attempt starts, to the backend it goes to
        // (`ctx.backendId` still names the one that failed).
        if (!(b.available() && b.hasCapacity())) break;
        metrics.failovers.inc({ deployment: dep.cfg.id, from: ctx.backendId, to: b.id, reason: lastFailure.startsWith("status") ? "5xx" : lastFailure });
      }
      const attemptStart = performance.now();
      b.inflight++;
      b.noteRequest();
      const hold = new BackendHold(b);
      cleanups.push(() => hold.release());
      ctx.backendId = b.id;
      ctx.backend = b;
      const isLast = i === choice.candidates.length - 1;
      const upstreamModel = b.cfg.upstreamModel;
      const payload = !needsRewrite && (upstreamModel === undefined || upstreamModel === body.model) ? raw : rewriteBody(raw, body, b, dep, stream && apiPath !== "/v1/embeddings", modelOk);
      awaiting = true;
      // Resolves once the answer may go to the client (its first body byte; a small JSON answer: all of it) or
      // the attempt failed with nothing sent: until then a failure still fails over.
      const a = await attemptUpstream(
        b, apiPath, upstreamRequestHeaders(req.headers, b, payload.length, requestId), payload, b.headTimeoutMs(stream), !isLast, rlHeaders,
        clientWantsUsage, () => clientClosed, (fn) => goneListeners.push(fn),
      );
      awaiting = false;
      if (clientClosed) {
        hold.release();
        a.x?.destroy();
        // No answer from a backend: the whole reservation goes back; an answer cut short keeps it (usage unknown).
        refundAll = a.failure !== undefined;
        settle();
        // The request ends here, on this attempt: counted once, as an error, with the backend time it used.
        recordUsageError(b, dep, key.id, attemptStart, ctx.start);
        return;
      }
      const up = a.x as Exchange;
      // `a.failure` is read now, not taken from the resolved value: a connection lost after the attempt committed
      // but before the relay takes over (nothing sent yet) is a failure before the first byte too.
      const failure: string | undefined = a.failure ?? (up.statusCode >= 500 ? `status_${up.statusCode}` : undefined);
      if (failure) {
        b.recordFailure(failure);
        lastFailure = failure;
        if (failure === "bad_response")
          logger.warn({ deployment: dep.cfg.id, backend: b.id, status: up.statusCode }, "upstream response head malformed: failure before the first byte");
        if (!isLast || a.failure !== undefined) {
          // A 5xx head of a candidate with a fallback: its body is read and dropped so the connection is reused;
          // a body that does not end within DISCARD_DEADLINE_MS closes the connection instead (never held forever).
          if (a.failure === undefined) up.discard();
          hold.release();
          // A failed attempt only adds busy time; the request itself is counted once, where it ends.
          recordUsageError(b, dep, key.id, attemptStart, undefined);
          // The next candidate, if any and still able to take it; the failover is counted when it starts.
          continue;
        }
        // Last candidate answered 5xx: pass its answer through (status and body), no more retries.
      } else if (a.whole) {
        // A success is recorded once the answer is whole: here for a buffered one, at its clean end for a relayed
        // one (a stream cut later, or gone idle, is then a failure only, so cut streams add up towards ejection).
        b.recordSuccess();
      }
      relay(res, a, up, b, dep, ctx, key.id, attemptStart, rlHeaders, (u, ok) => {
        if (!ok) refundAll = true;
        else if (u) settledTokens = (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0);
      });
      return;
    }
    // Every attempt failed, or the fallback could no longer take the request: it is counted once, here, on the
    // backend tried last (its busy time is already recorded).
    if (ctx.backend) recordUsageError(ctx.backend, dep, key.id, performance.now(), ctx.start);
    refundAll = true;
    const timedOut = lastFailure === "timeout" || lastFailure === "timeout_before_body";
    ctx.status = timedOut ? 504 : 502;
    const why = timedOut
      ? "timeout before first byte"
      : lastFailure.startsWith("status")
        ? lastFailure.replace("status_", "status ")
        : lastFailure === "reset_before_body"
          ? "connection lost before the response body"
          : lastFailure === "bad_response"
            ? "invalid response head"
            : "connection failed";
    sendError(res, errors.upstream(ctx.status, why), pairsToRecord(rlHeaders));
  }

  /**
   * Usage of a failed attempt: busy time since `busyFrom`; with `requestStart` it also counts the request (one
   * error, latency from requestStart), which happens exactly once per request, where it ends.
   */
  function recordUsageError(b: BackendRuntime, dep: DeploymentRuntime, keyId: string, busyFrom: number, requestStart: number | undefined) {
    const now = performance.now();
    usage.record({
      keyId, deploymentId: dep.cfg.id, backendId: b.id, backendKind: b.kind, error: true, inputTokens: 0, outputTokens: 0,
      latencyMs: now - (requestStart ?? busyFrom), ttftMs: undefined, busyMs: now - busyFrom, countRequest: requestStart !== undefined,
    });
  }

  /**
   * Relays a committed attempt to the client. A body received whole goes out in one write with its head (one
   * syscall instead of three); otherwise the head goes out with the first body chunk and the rest is relayed
   * chunk by chunk with backpressure, SSE event by event.
   */
  function relay(
    res: RouterResponse, a: Attempt, up: Exchange, b: BackendRuntime,
    dep: DeploymentRuntime, ctx: Ctx, keyId: string, attemptStart: number,
    rlHeaders: string[], done: (u: Usage | undefined, ok: boolean) => void,
  ) {
    const status = up.statusCode;
    ctx.status = status;
    // It carries `x-tuna-backend` already (the attempt adds it).
    const { headers, sse } = a.clientHead as ClientHead;
    const ttftMs = a.firstByteAt > 0 ? a.firstByteAt - ctx.start : undefined;
    // SSE: the attempt framed the events up to its commit; the same tap goes on (a second one would see the
    // held bytes again).
    const tap = sse ? a.tap : undefined;
    let finished = false;
    let clientGone = false;
    let u: Usage | undefined;
    // Streamed bodies only (set below): a buffered answer is complete when it commits and arms no timer.
    let idle: StreamIdleWatch | undefined;
    res.once("close", () => {
      idle?.stop();
      clientGone = !finished;
      if (!finished) up.destroy();
      const latencyMs = performance.now() - ctx.start;
      // Cut short: real usage is unknown, so the reservation stands (conservative).
      if (!finished && tap?.usage) u = tap.usage;
      const labels = keysOf(b).labels;
      metrics.latency.observeKey(labels, latencyMs / 1000);
      if (ttftMs !== undefined) metrics.ttft.observeKey(labels, ttftMs / 1000);
      usage.record({
        keyId, deploymentId: dep.cfg.id, backendId: b.id, backendKind: b.kind, error: !finished || status >= 400,
        inputTokens: u?.prompt_tokens ?? 0, outputTokens: u?.completion_tokens ?? 0, latencyMs, ttftMs,
        busyMs: performance.now() - attemptStart,
      });
    });
    if (a.whole) {
      // The attempt committed at the end of its body: all of it is here.
      const whole = a.body();
      if (status < 300) u = usageFromJson(whole);
      if (!tryWriteHead(res, status, headers)) {
        b.recordFailure("bad_response");
        return answerUnsent(res, up, ctx, done, rlHeaders, b.id, "invalid response head");
      }
      finished = true;
      // Settle before the response closes: the request's cleanup (lease release, TPM settle) runs on close.
      done(u, status < 400);
      res.end(whole);
      return;
    }
    if (!tryWriteHead(res, status, headers)) {
      b.recordFailure("bad_response");
      return answerUnsent(res, up, ctx, done, rlHeaders, b.id, "invalid response head");
    }
    // The body for reading `usage`: whole up to COLLECT_MAX, past it only a rolling tail (usage comes last).
    const collected: Buffer[] = [];
    let collectedBytes = 0;
    let tailOnly = false;
    // After the commit: a backend that stops sending mid-body (a frozen spot VM that keeps its TCP connection)
    // would hold the client, the backend's slot and the key's lease forever. Headers are out, so no retry: the
    // client's connection is cut as for a stream lost mid-way.
    const idleMs = b.streamIdleTimeoutMs;
    const w = new StreamIdleWatch(idleMs, () => {
      if (finished || clientGone) return;
      up.destroy();
      b.recordFailure("stream-idle");
      metrics.streamIdleTimeouts.inc({ deployment: dep.cfg.id, backend: b.id });
      logger.warn({ deployment: dep.cfg.id, backend: b.id, idleMs, elapsedMs: Math.round(performance.now() - ctx.start) }, "upstream body idle: stream cut");
      ctx.status = 502;
      res.destroy();
    });
    idle = w;
    // SSE: the events that committed the attempt (the head goes out with them).
    if (a.tapOut) writeWithBackpressure(res, up, a.tapOut, w);
    a.tapOut = undefined;
    a.attach({
      data(chunk: Buffer) {
        w.touch();
        if (tap) {
          const out = tap.push(chunk);
          if (out) writeWithBackpressure(res, up, out, w);
        } else {
          collected.push(chunk);
          collectedBytes += chunk.length;
          if (tailOnly || collectedBytes > COLLECT_MAX) {
            tailOnly = true;
            while (collectedBytes - collected[0].length >= USAGE_TAIL) collectedBytes -= (collected.shift() as Buffer).length;
          }
          writeWithBackpressure(res, up, chunk, w);
        }
      },
      end() {
        w.stop();
        let last: string | undefined;
        if (tap) {
          last = tap.flush() ?? undefined;
          u = tap.usage;
        } else if (status < 300) {
          const whole = collected.length === 1 ? collected[0] : Buffer.concat(collected);
          u = tailOnly ? usageFromTail(whole) : usageFromJson(whole);
        }
        finished = true;
        if (status < 500) b.recordSuccess();
        // Settle before the response closes: the request's cleanup (lease release, TPM settle) runs on close.
        done(u, status < 400);
        res.end(last);
      },
      abort() {
        // Upstream died after bytes reached the client: no retry (the client has a partial answer); cut the
        // client connection so it sees the truncation instead of a clean end. A close caused by the client
        // leaving is not the backend's fault and must not count towards its ejection.
        w.stop();
        if (!finished && !clientGone) {
          b.recordFailure("mid-stream");
          ctx.status = 502;
          res.destroy();
        }
      },
    });
  }

  /** Non-SSE bodies are kept whole up to this for reading `usage`; past it, only the last USAGE_TAIL bytes. */
  const COLLECT_MAX = 4 * 1024 * 1024;
  const USAGE_TAIL = 64 * 1024;

  /**
   * writeHead, false when it throws. A last resort: the parser refuses the upstream lines Node's writeHead would (a
   * head it refuses fails over as `bad_response`), and the router's own pairs are valid by construction.
   */
  function tryWriteHead(res: RouterResponse, status: number, headers: string[]): boolean {
    try {
      res.writeHead(status, headers);
      return true;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, "upstream response head not relayable");
      return false;
    }
  }

  /**
   * The upstream answer cannot be relayed and nothing of it reached the client: the exchange is dropped and the
   * client gets a 502 (refund as for any failed request; the response's close records the one outcome).
   */
  function answerUnsent(res: RouterResponse, up: Exchange, ctx: Ctx, done: (u: Usage | undefined, ok: boolean) => void, rlHeaders: string[], backendId: string, why: string) {
    up.destroy();
    ctx.status = 502;
    done(undefined, false);
    sendError(res, errors.upstream(502, why), { ...pairsToRecord(rlHeaders), "x-tuna-backend": backendId });
  }

  // ---- other endpoints --------------------------------------------------------------------------------------

  function listModels(req: IncomingMessage | FastRequest, res: RouterResponse, slug: string | undefined) {
    const ctx: Ctx = { start: performance.now(), deploymentId: "", backendId: "", status: 200 };
    res.once("close", () => record(ctx));
    const cfg = store.current;
    if (!cfg) return fail(res, ctx, errors.noBackend());
    const auth = authenticate(req.headers, cfg.keysByHash);
    if (!auth.ok) return fail(res, ctx, auth.reason === "missing" ? errors.missingKey() : errors.invalidKey());
    const data: Array<{ id: string; object: "model"; created: number; owned_by: string }> = [];
    for (const d of cfg.deployments.values()) {
      if (!keyMayUse(auth.key, d.cfg.id, d.cfg.teamId)) continue;
      if (slug !== undefined && d.cfg.slug !== slug) continue;
      for (const m of d.cfg.models) data.push({ id: m, object: "model", created: 0, owned_by: d.cfg.teamId });
    }
    if (slug !== undefined && data.length === 0) return fail(res, ctx, errors.modelNotFound(slug));
    sendJson(res, 200, { object: "list", data });
  }

  async function handleAdmin(req: IncomingMessage | FastRequest, res: RouterResponse) {
    const ctx: Ctx = { start: 0, deploymentId: "", backendId: "", status: 200 };
    if (!adminToken || !sameSecret(req.headers.authorization ?? "", `Bearer ${adminToken}`)) return fail(res, ctx, errors.wrongToken());
    const raw = req instanceof FastRequest ? (req.body.length > 64 * 1024 ? "too_large" : req.body) : await readBody(req, 64 * 1024);
    if (typeof raw === "string") return fail(res, ctx, errors.badRequest("body too large"));
    let body: { deploymentId?: unknown; backendId?: unknown; replicas?: unknown; draining?: unknown };
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      return fail(res, ctx, errors.invalidJson());
    }
    const dep = store.current?.deployments.get(String(body.deploymentId));
    const b = dep?.backends.find((x) => x.id === body.backendId);
    if (!b) return fail(res, ctx, errors.notFound("backend"));
    if (body.replicas !== undefined && !(Number.isInteger(body.replicas) && (body.replicas as number) >= 0))
      return fail(res, ctx, errors.badRequest("replicas must be a non-negative integer", "replicas"));
    if (body.draining !== undefined && typeof body.draining !== "boolean") return fail(res, ctx, errors.badRequest("draining must be boolean", "draining"));
    b.report(body.replicas as number | undefined, body.draining as boolean | undefined);
    sendJson(res, 200, { deploymentId: dep?.cfg.id, backendId: b.id, state: b.state(), replicas: b.replicas, inflight: b.inflight });
  }

  function onRequestError(res: RouterResponse, apiPath: string, err: unknown) {
    logger.error({ err: (err as Error)?.message, path: apiPath }, "request failed");
    if (!res.headersSent) sendError(res, errors.upstream(500, "internal error"));
    else res.destroy();
  }

  const route = (req: IncomingMessage | FastRequest, res: RouterResponse) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    let apiPath = path;
    let slug: string | undefined;
    if (path.startsWith("/d/")) {
      const m = /^\/d\/([^/]+)(\/v1\/.*)$/.exec(path);
      if (m) {
        try {
          slug = decodeURIComponent(m[1]);
        } catch {
          // A malformed percent-escape names no deployment.
          return sendError(res, errors.notFound(path));
        }
        apiPath = m[2];
      }
    }
    if (API_PATHS.has(apiPath)) {
      if (req.method !== "POST") return sendError(res, errors.methodNotAllowed());
      return void handleInference(req, res, apiPath, slug).catch((err) => onRequestError(res, apiPath, err));
    }
    if (apiPath === "/v1/models" && req.method === "GET") return listModels(req, res, slug);
    if (slug === undefined) {
      if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
      if (path === "/readyz") {
        const ready = !shuttingDown && store.current !== undefined;
        return sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", configVersion: store.current?.version ?? null });
      }
      if (path === "/metrics" && req.method === "GET") {
        if (metricsToken && !sameSecret(req.headers.authorization ?? "", `Bearer ${metricsToken}`)) {
          if (!(req instanceof FastRequest)) req.resume();
          return sendError(res, errors.wrongToken());
        }
        const text = metrics.render();
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4", "content-length": Buffer.byteLength(text) });
        return res.end(text);
      }
      if (path === "/_tuna/backends" && req.method === "POST") return void handleAdmin(req, res).catch((err) => onRequestError(res, apiPath, err));
    }
    if (!(req instanceof FastRequest)) req.resume();
    sendError(res, errors.notFound(path));
  };

  const headersTimeoutMs = opts.headersTimeoutMs ?? 10_000;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  const keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 5000;
  const server = http.createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      maxHeaderSize: 16 * 1024,
      // Timer resolution for header/request timeouts (slowloris); default 30 s is too coarse.
      connectionsCheckingInterval: 1000,
    },
    route,
  );
  // Common, well-formed requests skip Node's HTTP objects; anything else is handed to `server` as is.
  const front = installFastPath(server, route, {
    maxHeaderBytes: 16 * 1024, maxBodyBytes, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs,
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.destroyed) {
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ndate: ${httpDate()}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, routerId, redis: Boolean(opts.redisUrl), version: store.current?.version }, "router listening");
  const listensOnLoopback = /^(127\.|::1$|localhost$)/.test(opts.host ?? "127.0.0.1");
  if (!metricsToken && !listensOnLoopback) logger.warn("GET /metrics needs no token (per-deployment traffic is readable by anyone who reaches this port): set TUNA_METRICS_TOKEN");

  let closing: Promise<void> | undefined;
  const close = () => {
    if (closing) return closing;
    shuttingDown = true;
    closing = (async () => {
      logger.info({ inflight: globalInflight }, "shutting down");
      source?.stop();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      front.closeIdle();
      const deadline = Date.now() + shutdownTimeoutMs;
      while (globalInflight > 0 && Date.now() < deadline) {
        server.closeIdleConnections();
        front.closeIdle();
        await new Promise((r) => setTimeout(r, 25));
      }
      if (globalInflight > 0) logger.warn({ inflight: globalInflight }, "shutdown deadline reached; cutting remaining requests");
      for (const s of sockets) s.destroy();
      // Cut requests are released (and their usage recorded) by their response's close, which fires after the
      // socket's: wait for it (briefly) so the flush below includes them.
      for (let i = 0; globalInflight > 0 && i < 40; i++) await new Promise((r) => setTimeout(r, 5));
      await closed;
      front.stop();
      clearInterval(usageTimer);
      // Before the last flush, so the closing state events of the backends go out with it.
      store.dispose();
      await flushUsage();
      await reporter.sendSpool(true);
      await limiter.close();
      logger.info("router stopped");
    })();
    return closing;
  };

  return { port, url: `http://127.0.0.1:${port}`, metrics, store, close, applySnapshot, inflight: () => globalInflight };
}

const NO_LIMITS: LimitSpec = {};

/** x-ratelimit-* headers as flat `[name, value, …]` pairs (written as-is by writeHead). */
/** One request's slot on a backend's in-flight count, released exactly once. */
class BackendHold {
  private released = false;
  constructor(private b: BackendRuntime) {}
  release(): void {
    if (!this.released) {
      this.released = true;
      this.b.inflight--;
    }
  }
}

const INCLUDE_USAGE = Buffer.from('"stream_options":{"include_usage":true},');

/** The body sent upstream when it must change: usage requested on streams, backend model name, slug's model. */
function rewriteBody(raw: Buffer, body: Record<string, unknown>, b: BackendRuntime, dep: DeploymentRuntime, askUsage: boolean, modelOk: boolean): Buffer {
  const model = b.cfg.upstreamModel ?? (modelOk ? body.model : dep.cfg.models[0]);
  // Common stream case: only `stream_options` is missing. The body already parsed as a non-empty object (it
  // has a model), so its first "{" opens it: splice the member in instead of re-serialising the whole body.
  if (askUsage && body.stream_options === undefined && model === body.model) {
    const open = raw.indexOf(0x7b);
    return Buffer.concat([raw.subarray(0, open + 1), INCLUDE_USAGE, raw.subarray(open + 1)]);
  }
  const copy: Record<string, unknown> = { ...body, model };
  if (askUsage) copy.stream_options = { ...(body.stream_options as object), include_usage: true };
  return Buffer.from(JSON.stringify(copy));
}

function rateLimitHeaders(limits: LimitSpec, r: AcquireResult): string[] {
  const h: string[] = [];
  if (has(limits.rpm)) {
    h.push("x-ratelimit-limit-requests", String(limits.rpm));
    if (r.requestsRemaining !== undefined) h.push("x-ratelimit-remaining-requests", String(r.requestsRemaining));
    if (r.requestsResetMs !== undefined) h.push("x-ratelimit-reset-requests", fmtDuration(r.requestsResetMs));
  }
  if (has(limits.tpm)) {
    h.push("x-ratelimit-limit-tokens", String(limits.tpm));
    if (r.tokensRemaining !== undefined) h.push("x-ratelimit-remaining-tokens", String(r.tokensRemaining));
    if (r.tokensResetMs !== undefined) h.push("x-ratelimit-reset-tokens", fmtDuration(r.tokensResetMs));
  }
  return h;
}

function pairsToRecord(pairs: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < pairs.length; i += 2) o[pairs[i]] = pairs[i + 1];
  return o;
}

/** OpenAI's duration style: "20ms", "1.5s", "6m0s". */
function fmtDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s * 10) / 10}s`;
  return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
}

function requestedMaxTokens(body: Record<string, unknown>): number | undefined {
  const a = typeof body.max_tokens === "number" ? body.max_tokens : undefined;
  const b = typeof body.max_completion_tokens === "number" ? body.max_completion_tokens : undefined;
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

function promptChars(body: Record<string, unknown>): number {
  let n = 0;
  if (Array.isArray(body.messages)) for (const m of body.messages) n += textChars((m as { content?: unknown })?.content);
  return n + textChars(body.prompt) + textChars(body.input);
}

/** Characters of a string, or of the strings / `text` / `content` parts of an array (recursively). */
function textChars(v: unknown): number {
  if (typeof v === "string") return v.length;
  if (!Array.isArray(v)) return 0;
  let n = 0;
  for (const x of v) n += textChars(typeof x === "object" && x ? ((x as { text?: unknown }).text ?? (x as { content?: unknown }).content) : x);
  return n;
}

/**
 * The router's id in usage reports, kept in `<stateDir>/router-id` so a restarted router (a crash included)
 * continues its own backend-state history instead of leaving the last one open under a vanished id. One state
 * dir per router process (its spool is there too). Unwritable dir: a fresh id for this run, with a warning.
 */
function persistentRouterId(stateDir: string, logger: Logger): string {
  const file = join(stateDir, "router-id");
  try {
    const saved = readFileSync(file, "utf8").trim();
    if (/^[\w.:-]{1,128}$/.test(saved)) return saved;
  } catch {
    /* first start in this state dir */
  }
  const id = `${hostname().replace(/[^\w.-]/g, "_").slice(0, 64)}-${randomUUID().slice(0, 8)}`;
  try {
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(file, `${id}\n`, { mode: 0o600 });
  } catch (err) {
    logger.warn({ err: (err as Error).message, file }, "router id not saved: a restart will report under a new id");
  }
  return id;
}

/** Constant-time comparison of two secrets of any length (compares their digests). */
function sameSecret(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

function sendJson(res: RouterResponse, status: number, body: unknown) {
  const s = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
  res.end(s);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too_large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.pause();
        resolve("too_large");
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!done) {
        done = true;
        resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      }
    });
    req.on("error", () => {
      if (!done) {
        done = true;
        resolve("aborted");
      }
    });
    req.on("close", () => {
      if (!done) {
        done = true;
        resolve("aborted");
      }
    });
  });
}
