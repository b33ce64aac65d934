import { createHmac, randomBytes } from "node:crypto";
import http from "node:http";
import type { Prisma } from "@prisma/client";
import type { InngestFunction } from "inngest";
import { serve } from "inngest/next";
import { db } from "../db";
import { inngest } from "./client";
import { durationMs, evaluateCondition, evaluateValue, latestCronSlot } from "./expr";
import { envInt } from "../lib/env";

/**
 * The local runner: a small, single-machine executor that speaks Inngest's Open Source SDK Spec to the SDK's
 * own `serve` handler, so the same functions run here as on Inngest Cloud or a self-hosted Inngest.
 *
 *   event → WorkflowEvent row → WorkflowRun row per triggered function (and waiting runs resumed)
 *   poll: claim one due run (FOR UPDATE SKIP LOCKED + lease in lockedUntil) → POST the event and the
 *   memoised steps → 206 with ops (StepRun / StepPlanned / StepError / StepFailed / Sleep / WaitForEvent)
 *   or 200 with the result → persist each step's result as soon as it exists → repeat.
 *
 * Step results are written to PostgreSQL one by one, so a killed process resumes its runs without
 * repeating a step that finished. It is used only when no Inngest server is configured (see README.md).
 */

type AnyFunction = InngestFunction.Any;

interface Memo {
  type: "data" | "error";
  data?: unknown;
  error?: unknown;
}

interface Op {
  id: string;
  op: string;
  name?: string;
  displayName?: string;
  opts?: Record<string, unknown> | null;
  data?: unknown;
  error?: unknown;
}

interface Pending {
  waits: Array<{ stepId: string; event: string; if?: string; timeoutAt: number }>;
  sleeps: Array<{ stepId: string; until: number }>;
}

interface RunRow {
  id: string;
  functionId: string;
  event: Prisma.JsonValue;
  status: string;
  steps: Prisma.JsonValue;
  attempt: number;
  waitingFor: Prisma.JsonValue;
  createdAt: Date;
}

export interface LocalRunnerOptions {
  /** Functions to run (default: `functions` from ./functions). */
  functions?: AnyFunction[];
  /** Poll interval when idle (default 500 ms). */
  pollMs?: number;
  /** Lease on a claimed run; renewed while a step runs (default 30 s). */
  leaseMs?: number;
  /** First retry delay; doubles per attempt up to 5 min (default 1 s; TUNA_RUNNER_BACKOFF_MS). */
  backoffBaseMs?: number;
  /** Runs executed at once by this process (default 4). */
  parallel?: number;
  /** Fire cron triggers (default true). */
  cron?: boolean;
  log?: (msg: string) => void;
}

const APP_ID = "tuna";
const DEFAULT_RETRIES = 3;

// ------------------------------------------------------------------------------------------ registry

interface Registry {
  fns: AnyFunction[];
  byId: Map<string, AnyFunction>;
  handler: (req: Request) => Promise<Response>;
  signingKey: string;
}

let registry: Registry | null = null;
let functionsOverride: AnyFunction[] | null = null;

async function getRegistry(): Promise<Registry> {
  if (registry) return registry;
  const fns = functionsOverride ?? (await import("./functions")).functions;
  assertSupported(fns);
  // The serve handler verifies signatures in cloud mode; without a configured key this process signs its
  // own requests with an ephemeral key only it knows (so the public /api/inngest route stays closed).
  if (!inngest.signingKey) inngest.setEnvVars({ INNGEST_SIGNING_KEY: `signkey-local-${randomBytes(32).toString("hex")}` });
  await ensureLocalEventApi();
  const h = serve({ client: inngest, functions: fns }) as unknown as { POST: (req: Request, ctx?: unknown) => Promise<Response> };
  registry = {
    fns,
    byId: new Map(fns.map((f) => [f.id(APP_ID), f])),
    handler: (req) => h.POST(req, {}),
    signingKey: inngest.signingKey!,
  };
  return registry;
}

/** Tests: run a different set of functions (resets the registry). */
export function setLocalFunctions(fns: AnyFunction[] | null): void {
  functionsOverride = fns;
  registry = null;
}

type RateLimit = { limit: number; period: string; key?: string };
type FnOpts = { triggers?: Array<{ event?: unknown; cron?: string; if?: string; expression?: string }>; retries?: number; rateLimit?: RateLimit };
const optsOf = (fn: AnyFunction) => (fn as unknown as { opts: FnOpts }).opts;

/** Flow control Inngest offers that this runner does not implement: refused at start, never silently ignored. */
const UNSUPPORTED_OPTIONS = ["debounce", "throttle", "batchEvents", "priority", "cancelOn", "idempotency", "singleton", "timeouts", "onFailure"];

function assertSupported(fns: AnyFunction[]): void {
  for (const fn of fns) {
    const opts = optsOf(fn) as Record<string, unknown>;
    const used = UNSUPPORTED_OPTIONS.filter((o) => opts[o] !== undefined);
    if (used.length) throw new Error(`function ${fn.id(APP_ID)} uses ${used.join(", ")}, which the local workflow runner does not implement`);
    const rl = opts.rateLimit as RateLimit | undefined;
    if (rl) durationMs(rl.period); // throws on a period it cannot read
  }
}

function triggerEventName(t: { event?: unknown }): string | null {
  if (typeof t.event === "string") return t.event;
  if (t.event && typeof t.event === "object" && typeof (t.event as { name?: unknown }).name === "string") return (t.event as { name: string }).name;
  return null;
}

// ------------------------------------------------------------------------------------------ event API

let eventApi: Promise<void> | null = null;

/**
 * `step.sendEvent` (and `inngest.send`) post to Inngest's Event API, `POST <base>/e/<event key>`. Without
 * an Inngest server this process serves that endpoint on loopback with a random key only it knows, and
 * points the client at it, so functions send events the Inngest way and they land in the local runner.
 */
function ensureLocalEventApi(): Promise<void> {
  if (process.env.INNGEST_EVENT_KEY || process.env.INNGEST_BASE_URL) return Promise.resolve();
  eventApi ??= new Promise<void>((resolve, reject) => {
    const key = randomBytes(16).toString("hex");
    const srv = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        if (req.method !== "POST" || req.url !== `/e/${key}`) {
          res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ status: 401, error: "Event key not found" }));
          return;
        }
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
          const list = (Array.isArray(parsed) ? parsed : [parsed]) as Array<{ name?: unknown; data?: unknown }>;
          const ids: string[] = [];
          for (const e of list) {
            if (typeof e.name !== "string" || !e.name) throw new Error("event name is required");
            ids.push((await deliverLocalEvent(e.name, (e.data ?? {}) as Record<string, unknown>)).eventId);
          }
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ids, status: 200 }));
        } catch (err) {
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ status: 400, error: (err as Error).message }));
        }
      });
    });
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      srv.unref();
      const { port } = srv.address() as { port: number };
      inngest.setEnvVars({ INNGEST_EVENT_KEY: key, INNGEST_EVENT_API_BASE_URL: `http://127.0.0.1:${port}/` });
      resolve();
    });
  });
  return eventApi;
}

// ------------------------------------------------------------------------------------------ signing

/** RFC 8785-style canonical JSON (sorted keys), what the SDK hashes when it verifies a signature. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? "null" : canonical(x))).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(",")}}`;
}

function sign(body: unknown, key: string): string {
  const ts = Math.round(Date.now() / 1000).toString();
  const s = createHmac("sha256", key.replace(/^signkey-[\w]+-/, "")).update(canonical(body) + ts).digest("hex");
  return `t=${ts}&s=${s}`;
}

// ------------------------------------------------------------------------------------------ events

function newEvent(name: string, data: Record<string, unknown>, id: string) {
  return { name, data, id, ts: Date.now() };
}

/**
 * Accepts an event (sendEvent's local path): stores it, starts a run of every function it triggers and
 * resumes runs waiting for it. Then nudges the runner loop if one is running in this process.
 */
export async function deliverLocalEvent(name: string, data: Record<string, unknown>): Promise<{ eventId: string; runIds: string[] }> {
  const reg = await getRegistry();
  const row = await db.workflowEvent.create({ data: { name, data: data as Prisma.InputJsonValue } });
  const event = newEvent(name, data, row.id);
  const runIds: string[] = [];
  for (const fn of reg.fns) {
    for (const t of optsOf(fn).triggers ?? []) {
      if (triggerEventName(t) !== name) continue;
      const cond = t.if ?? t.expression;
      if (cond && !safeCondition(cond, { event })) continue;
      const runId = await startRun(fn, event);
      if (runId) runIds.push(runId);
      break;
    }
  }
  await resumeWaiting(event);
  wake();
  return { eventId: row.id, runIds };
}

/** The rate-limit key's value for an event ("" without a key; null when the key does not evaluate). */
function rateKeyOf(rl: RateLimit, event: unknown): string | null {
  if (!rl.key) return "";
  try {
    const v = evaluateValue(rl.key, { event });
    return v === undefined || v === null ? null : String(v);
  } catch {
    return null;
  }
}

type Tx = Pick<typeof db, "workflowRun">;

/**
 * Starts a run of `fn` for `event`, or none when Inngest's `rateLimit` says so: at most `limit` runs per key
 * value within `period`; an event over the limit starts no run (it is skipped, not queued). Counted over this
 * function's runs created within the period, so it holds across restarts; the count and the new run share a
 * transaction under an advisory lock per function, so concurrent deliveries (other processes included) are
 * counted one after another and never both pass.
 */
async function startRun(fn: AnyFunction, event: ReturnType<typeof newEvent>): Promise<string | null> {
  const functionId = fn.id(APP_ID);
  const rl = optsOf(fn).rateLimit;
  const value = rl ? rateKeyOf(rl, event) : null;
  if (!rl || value === null) return createRun(db, functionId, event);
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`tuna-local-runner-rate:${functionId}`}, 0))`;
    const recent = await tx.workflowRun.findMany({
      where: { functionId, createdAt: { gte: new Date(Date.now() - durationMs(rl.period)) } },
      select: { event: true },
    });
    const same = recent.filter((r) => rateKeyOf(rl, (r.event as { event?: unknown } | null)?.event) === value).length;
    return same >= rl.limit ? null : createRun(tx, functionId, event);
  });
}

async function createRun(tx: Tx, functionId: string, event: ReturnType<typeof newEvent>): Promise<string> {
  const run = await tx.workflowRun.create({
    data: { functionId, event: { event, events: [event] } as unknown as Prisma.InputJsonValue, status: "running" },
  });
  return run.id;
}

function safeCondition(expr: string, scope: Record<string, unknown>): boolean {
  try {
    return evaluateCondition(expr, scope);
  } catch (err) {
    log(`cannot evaluate ${JSON.stringify(expr)}: ${(err as Error).message}`);
    return false;
  }
}

function matchingWait(pending: Pending, runEvent: unknown, ev: { name: string }): Pending["waits"][number] | undefined {
  return pending.waits.find((w) => w.event === ev.name && (!w.if || safeCondition(w.if, { event: runEvent, async: ev })));
}

/** Resumes runs waiting for `event` (the first matching wait of each run gets the event as its result). */
async function resumeWaiting(event: ReturnType<typeof newEvent>): Promise<void> {
  await db.$transaction(async (tx) => {
    const waiting = await tx.$queryRaw<RunRow[]>`
      SELECT id, "functionId", event, status, steps, attempt, "waitingFor", "createdAt" FROM "WorkflowRun"
      WHERE status = 'waiting' AND "waitingFor" IS NOT NULL FOR UPDATE`;
    for (const run of waiting) {
      const pending = run.waitingFor as unknown as Pending;
      const w = matchingWait(pending, (run.event as { event: unknown }).event, event);
      if (!w) continue;
      await tx.$executeRaw`
        UPDATE "WorkflowRun" SET steps = steps || ${JSON.stringify({ [w.stepId]: { type: "data", data: event } })}::jsonb,
          status = 'running', "waitingFor" = NULL, "runAfter" = now(), "updatedAt" = now()
        WHERE id = ${run.id}`;
    }
  });
}

// ------------------------------------------------------------------------------------------ execution

let logger: (msg: string) => void = (m) => console.log(`[workflows] ${m}`);
const log = (m: string) => logger(m);

function backoff(attempt: number, base: number): number {
  return Math.min(300_000, base * 2 ** Math.max(0, attempt - 1));
}

async function memoise(runId: string, stepId: string, memo: Memo): Promise<void> {
  await db.$executeRaw`
    UPDATE "WorkflowRun" SET steps = steps || ${JSON.stringify({ [stepId]: memo })}::jsonb, "updatedAt" = now() WHERE id = ${runId}`;
}

async function setRun(runId: string, data: Prisma.WorkflowRunUpdateInput): Promise<void> {
  await db.workflowRun.update({ where: { id: runId }, data: { ...data, lockedUntil: null } });
}

async function callHandler(reg: Registry, run: RunRow, steps: Record<string, Memo>, stepId: string, maxAttempts: number) {
  const { event, events } = run.event as { event: unknown; events: unknown[] };
  const body = {
    event,
    events,
    steps,
    ctx: {
      run_id: run.id,
      attempt: run.attempt,
      max_attempts: maxAttempts,
      disable_immediate_execution: false,
      use_api: false,
      stack: { stack: Object.keys(steps), current: Object.keys(steps).length },
    },
    version: 2,
  };
  const url = `http://127.0.0.1/api/inngest?fnId=${encodeURIComponent(run.functionId)}&stepId=${encodeURIComponent(stepId)}`;
  const res = await reg.handler(
    new Request(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-inngest-signature": sign(body, reg.signingKey), "x-inngest-req-version": "2" },
      body: JSON.stringify(body),
    }),
  );
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: res.status, noRetry: res.headers.get("x-inngest-no-retry") === "true", body: parsed };
}

interface TickContext {
  reg: Registry;
  run: RunRow;
  steps: Record<string, Memo>;
  maxAttempts: number;
  backoffBaseMs: number;
}

/** Applies one step result op; returns "retry" when the step must run again later. */
async function applyStepOp(c: TickContext, op: Op): Promise<"ok" | "retry"> {
  if (op.op === "StepRun" || op.op === "Step") {
    c.steps[op.id] = { type: "data", data: op.data ?? null };
    await memoise(c.run.id, op.id, c.steps[op.id]!);
    return "ok";
  }
  if (op.op === "StepFailed") {
    c.steps[op.id] = { type: "error", error: op.error ?? null };
    await memoise(c.run.id, op.id, c.steps[op.id]!);
    return "ok";
  }
  if (op.op === "StepError") {
    log(`${c.run.functionId} ${c.run.id}: step ${op.displayName ?? op.id} failed (attempt ${c.run.attempt + 1}/${c.maxAttempts}): ${errMessage(op.error)}`);
    return "retry";
  }
  throw new Error(`unsupported op ${op.op}`);
}

function errMessage(e: unknown): string {
  return e && typeof e === "object" && "message" in e ? String((e as { message: unknown }).message) : JSON.stringify(e);
}

async function executeRun(run: RunRow, opts: Required<Pick<LocalRunnerOptions, "backoffBaseMs">>): Promise<void> {
  const reg = await getRegistry();
  const fn = reg.byId.get(run.functionId);
  if (!fn) {
    await setRun(run.id, { status: "failed", error: `function ${run.functionId} is not registered in this app` });
    return;
  }
  const maxAttempts = (optsOf(fn).retries ?? DEFAULT_RETRIES) + 1;
  const steps = { ...((run.steps ?? {}) as unknown as Record<string, Memo>) };
  const c: TickContext = { reg, run, steps, maxAttempts, backoffBaseMs: opts.backoffBaseMs };

  // Sleeps and waits that are due resolve to null (a timed-out waitForEvent returns null).
  if (run.waitingFor) {
    const pending = run.waitingFor as unknown as Pending;
    const now = Date.now();
    for (const s of pending.sleeps) if (s.until <= now) steps[s.stepId] = { type: "data", data: null };
    for (const w of pending.waits) if (w.timeoutAt <= now) steps[w.stepId] = { type: "data", data: null };
    await db.$executeRaw`
      UPDATE "WorkflowRun" SET steps = ${JSON.stringify(steps)}::jsonb, "waitingFor" = NULL, status = 'running' WHERE id = ${run.id}`;
  }

  let res: Awaited<ReturnType<typeof callHandler>>;
  try {
    res = await callHandler(reg, run, steps, "step", maxAttempts);
  } catch (err) {
    return retryRun(c, `handler threw: ${(err as Error).message}`, false);
  }

  if (res.status === 200) {
    await setRun(run.id, { status: "completed", result: (res.body ?? null) as Prisma.InputJsonValue, attempt: 0, error: null });
    return;
  }
  if (res.status !== 206 || !Array.isArray(res.body)) {
    return retryRun(c, `function error (HTTP ${res.status}): ${errMessage(res.body)}`, res.noRetry);
  }

  const ops = res.body as Op[];
  const runnable = ops.filter((o) => o.op === "StepRun" || o.op === "Step" || o.op === "StepError" || o.op === "StepFailed");
  const planned = ops.filter((o) => o.op === "StepPlanned");
  const unsupported = ops.filter((o) => !["StepRun", "Step", "StepError", "StepFailed", "StepPlanned", "Sleep", "WaitForEvent"].includes(o.op));
  if (unsupported.length) {
    await setRun(run.id, { status: "failed", error: `the local runner does not support ${unsupported.map((o) => o.op).join(", ")}` });
    return;
  }

  if (runnable.length || planned.length) {
    let retry = false;
    for (const op of runnable) if ((await applyStepOp(c, op)) === "retry") retry = true;
    // Planned steps (Promise.all of step.run) run concurrently, each in its own request; each result is
    // stored the moment it arrives.
    const results = await Promise.all(
      planned.map(async (p) => {
        try {
          const r = await callHandler(reg, run, steps, p.id, maxAttempts);
          if (r.status !== 206 || !Array.isArray(r.body)) return "retry" as const;
          let out: "ok" | "retry" = "ok";
          for (const op of r.body as Op[]) if ((await applyStepOp(c, op)) === "retry") out = "retry";
          return out;
        } catch (err) {
          log(`${run.functionId} ${run.id}: planned step ${p.displayName ?? p.id} threw: ${(err as Error).message}`);
          return "retry" as const;
        }
      }),
    );
    if (results.includes("retry")) retry = true;
    if (retry) return retryRun(c, "a step failed", false, true);
    await setRun(run.id, { status: "running", attempt: 0, runAfter: new Date() });
    return;
  }

  // Only sleeps and waits left: park the run until the earliest of them.
  const now = Date.now();
  const pending: Pending = { waits: [], sleeps: [] };
  for (const op of ops) {
    if (op.op === "Sleep") pending.sleeps.push({ stepId: op.id, until: now + durationMs(op.name ?? op.opts?.duration ?? 0, now) });
    if (op.op === "WaitForEvent") {
      const o = op.opts ?? {};
      pending.waits.push({
        stepId: op.id,
        event: String(op.name ?? o.event),
        ...(typeof o.if === "string" ? { if: o.if } : {}),
        timeoutAt: now + durationMs(o.timeout ?? "1d", now),
      });
    }
  }
  // An event that arrived after the run started (e.g. an approval faster than the run) counts too.
  for (const w of pending.waits) {
    const candidates = await db.workflowEvent.findMany({ where: { name: w.event, createdAt: { gte: run.createdAt } }, orderBy: { createdAt: "asc" }, take: 100 });
    const runEvent = (run.event as { event: unknown }).event;
    const hit = candidates.find((e) => !w.if || safeCondition(w.if, { event: runEvent, async: newEvent(e.name, e.data as Record<string, unknown>, e.id) }));
    if (hit) {
      await memoise(run.id, w.stepId, { type: "data", data: newEvent(hit.name, hit.data as Record<string, unknown>, hit.id) });
      await setRun(run.id, { status: "running", attempt: 0, runAfter: new Date() });
      return;
    }
  }
  const wakeAt = Math.min(...pending.sleeps.map((s) => s.until), ...pending.waits.map((w) => w.timeoutAt));
  await setRun(run.id, {
    status: pending.waits.length ? "waiting" : "sleeping",
    waitingFor: pending as unknown as Prisma.InputJsonValue,
    runAfter: new Date(wakeAt),
    attempt: 0,
  });
}

async function retryRun(c: TickContext, why: string, noRetry: boolean, stepLevel = false): Promise<void> {
  const attempt = c.run.attempt + 1;
  if (noRetry || attempt >= c.maxAttempts) {
    log(`${c.run.functionId} ${c.run.id}: failed: ${why}`);
    await setRun(c.run.id, { status: "failed", error: why.slice(0, 4000), attempt });
    return;
  }
  const delay = backoff(attempt, c.backoffBaseMs);
  log(`${c.run.functionId} ${c.run.id}: ${stepLevel ? "step" : "run"} retry ${attempt}/${c.maxAttempts - 1} in ${delay} ms (${why})`);
  await setRun(c.run.id, { status: "running", attempt, runAfter: new Date(Date.now() + delay) });
}

// ------------------------------------------------------------------------------------------ claiming

type Concurrency = { limit: number; key?: string; scope?: "fn" | "env" | "account" };

function concurrencyOf(fn: AnyFunction | undefined): Concurrency[] {
  const c = (fn as unknown as { opts?: { concurrency?: number | Concurrency | Concurrency[] } } | undefined)?.opts?.concurrency;
  if (c === undefined) return [];
  if (typeof c === "number") return [{ limit: c }];
  return Array.isArray(c) ? c : [c];
}

/** The concurrency groups a run belongs to ("fn:<id>:<key>" or "account:<key expr>:<value>"), with limits. */
function groupsOf(reg: Registry, functionId: string, event: unknown): Array<{ group: string; limit: number }> {
  const out: Array<{ group: string; limit: number }> = [];
  for (const c of concurrencyOf(reg.byId.get(functionId))) {
    let value = "";
    if (c.key) {
      try {
        const v = evaluateValue(c.key, { event });
        if (v === undefined || v === null) continue;
        value = String(v);
      } catch {
        continue;
      }
    }
    const scope = c.scope ?? "fn";
    out.push({ group: scope === "fn" ? `fn:${functionId}:${value}` : `${scope}:${c.key ?? ""}:${value}`, limit: c.limit });
  }
  return out;
}

/**
 * Claims the first due run whose concurrency groups have room (a run counts against its groups while it
 * executes a step, as on Inngest). Claims are serialised with an advisory lock so two processes see the same
 * counts; FOR UPDATE SKIP LOCKED keeps them off each other's rows.
 */
async function claimRun(leaseMs: number): Promise<RunRow | null> {
  const reg = await getRegistry();
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended('tuna-local-runner-claim', 0))`;
    const due = await tx.$queryRaw<RunRow[]>`
      SELECT id, "functionId", event, status, steps, attempt, "waitingFor", "createdAt" FROM "WorkflowRun"
      WHERE status IN ('running', 'sleeping', 'waiting') AND "runAfter" <= now()
        AND ("lockedUntil" IS NULL OR "lockedUntil" < now())
      ORDER BY "runAfter" ASC
      LIMIT 25
      FOR UPDATE SKIP LOCKED`;
    if (due.length === 0) return null;
    let busy: Map<string, number> | null = null;
    for (const run of due) {
      const groups = groupsOf(reg, run.functionId, (run.event as { event?: unknown }).event);
      if (groups.length) {
        if (!busy) {
          busy = new Map();
          const executing = await tx.$queryRaw<Array<{ functionId: string; event: Prisma.JsonValue }>>`
            SELECT "functionId", event FROM "WorkflowRun" WHERE "lockedUntil" > now() AND status IN ('running', 'sleeping', 'waiting')`;
          for (const e of executing) {
            for (const g of groupsOf(reg, e.functionId, (e.event as { event?: unknown }).event)) busy.set(g.group, (busy.get(g.group) ?? 0) + 1);
          }
        }
        if (groups.some((g) => (busy!.get(g.group) ?? 0) >= g.limit)) continue;
      }
      await tx.$executeRaw`
        UPDATE "WorkflowRun" SET "lockedUntil" = now() + (${leaseMs}::int * interval '1 millisecond'), "updatedAt" = now() WHERE id = ${run.id}`;
      return run;
    }
    return null;
  });
}

async function runClaimed(run: RunRow, leaseMs: number, backoffBaseMs: number): Promise<void> {
  // Renew the lease while a long step (a provider deploy) runs, so no other process takes the run.
  const renew = setInterval(() => {
    db.$executeRaw`UPDATE "WorkflowRun" SET "lockedUntil" = now() + (${leaseMs}::int * interval '1 millisecond') WHERE id = ${run.id}`.catch(() => {});
  }, Math.max(250, Math.floor(leaseMs / 3)));
  try {
    await executeRun(run, { backoffBaseMs });
  } catch (err) {
    log(`${run.functionId} ${run.id}: runner error: ${(err as Error).stack ?? err}`);
    await db.workflowRun
      .update({ where: { id: run.id }, data: { lockedUntil: null, runAfter: new Date(Date.now() + backoffBaseMs) } })
      .catch(() => {});
  } finally {
    clearInterval(renew);
  }
}

const cronChecked = new Map<string, number>();

/** Starts at most one run per cron slot across every process (the Counter row is the claim). */
async function fireCrons(): Promise<void> {
  const reg = await getRegistry();
  const minute = Math.floor(Date.now() / 60_000);
  for (const fn of reg.fns) {
    for (const t of optsOf(fn).triggers ?? []) {
      if (!t.cron) continue;
      const key = `cron:${fn.id(APP_ID)}:${t.cron}`;
      if (cronChecked.get(key) === minute) continue;
      cronChecked.set(key, minute);
      const slot = latestCronSlot(t.cron);
      if (slot === null) continue;
      const claimed = await db.$queryRaw<Array<{ value: bigint }>>`
        INSERT INTO "Counter" (name, value) VALUES (${key}, ${BigInt(slot)})
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value WHERE "Counter".value < EXCLUDED.value
        RETURNING value`;
      if (claimed.length) {
        const ev = await db.workflowEvent.create({ data: { name: "inngest/scheduled.timer", data: { cron: t.cron } } });
        await createRun(db, fn.id(APP_ID), newEvent("inngest/scheduled.timer", { cron: t.cron }, ev.id));
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ loop

export interface LocalRunnerHandle {
  stop(): Promise<void>;
}

let active: { wake: () => void } | null = null;

function wake(): void {
  active?.wake();
}

/**
 * Starts the polling loop in this process. Safe to call in several processes against one database: a run is
 * claimed by one of them at a time. Returns a handle whose `stop()` waits for in-flight steps.
 */
export function startLocalRunner(opts: LocalRunnerOptions = {}): LocalRunnerHandle {
  if (opts.functions) setLocalFunctions(opts.functions);
  if (opts.log) logger = opts.log;
  const pollMs = opts.pollMs ?? 500;
  const leaseMs = opts.leaseMs ?? 30_000;
  const backoffBaseMs = opts.backoffBaseMs ?? envInt("TUNA_RUNNER_BACKOFF_MS", 1000, 0);
  const parallel = opts.parallel ?? 4;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let nudge: (() => void) | null = null;

  const loop = async () => {
    while (!stopped) {
      try {
        if (opts.cron !== false) await fireCrons();
        while (!stopped && inFlight.size < parallel) {
          const run = await claimRun(leaseMs);
          if (!run) break;
          const p = runClaimed(run, leaseMs, backoffBaseMs).finally(() => {
            inFlight.delete(p);
            nudge?.();
          });
          inFlight.add(p);
        }
      } catch (err) {
        if (!stopped) log(`poll failed: ${(err as Error).message}`);
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        nudge = () => {
          clearTimeout(t);
          resolve();
        };
      });
      nudge = null;
    }
  };
  const done = loop();
  const handle = { wake: () => nudge?.() };
  active = handle;
  return {
    async stop() {
      stopped = true;
      nudge?.();
      await done;
      await Promise.allSettled([...inFlight]);
      if (active === handle) active = null;
    },
  };
}

/**
 * Tests and scripts: runs due work in this process until every run is completed, failed, or waiting for an
 * event (sleeps are waited out), or `timeoutMs` passes.
 */
export async function drainLocalRunner(opts: { timeoutMs?: number; backoffBaseMs?: number; leaseMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const leaseMs = opts.leaseMs ?? 30_000;
  const backoffBaseMs = opts.backoffBaseMs ?? envInt("TUNA_RUNNER_BACKOFF_MS", 1000, 0);
  for (;;) {
    const run = await claimRun(leaseMs);
    if (run) {
      await runClaimed(run, leaseMs, backoffBaseMs);
      continue;
    }
    const next = await db.workflowRun.findFirst({
      where: { status: { in: ["running", "sleeping"] } },
      orderBy: { runAfter: "asc" },
      select: { runAfter: true },
    });
    if (!next) return;
    if (Date.now() > deadline) throw new Error("drainLocalRunner: timed out with runs still due");
    await new Promise((r) => setTimeout(r, Math.min(250, Math.max(10, next.runAfter.getTime() - Date.now()))));
  }
}
