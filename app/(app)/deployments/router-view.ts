/**
 * The routers' view of a deployment's backends (server/usage/router-view.ts) in plain words, for the detail
 * page and the list. The provider's status is refreshed every few minutes; the routers' is seconds old, so when
 * spot dies the router says so first. Kept apart from the components because this module is tested on its own.
 */

export type RouterState = "cold" | "warming" | "ready" | "draining" | "ejected";
export type Tone = "gray" | "amber" | "green" | "red";

export interface RouterViewData {
  liveRouters: number;
  goneRouters: number;
  lastGoneAt: Date | string | null;
  backends: Array<{
    backendId: string;
    kind: "serverless" | "spot" | null;
    state: RouterState;
    since: Date | string;
    /** The router's own terse reason for `state` (null or absent: it sent none); see `routerReasonWords`. */
    reason?: string | null;
    routers: number;
    /** Worst first. */
    states: Array<{ state: RouterState; routers: number; since: Date | string; reason?: string | null }>;
  }>;
}

export interface RouterLine {
  text: string;
  tone: Tone;
  /** The routers took spot out (ejected, draining) while the provider still says it is ready. */
  contradictsProvider: boolean;
}

type Backend = RouterViewData["backends"][number];

const WORST_FIRST: RouterState[] = ["ejected", "draining", "cold", "warming", "ready"];
const TONE: Record<RouterState, Tone> = { ejected: "red", draining: "amber", cold: "gray", warming: "amber", ready: "green" };
const WORDS: Record<RouterState, string> = {
  ejected: "ejected",
  draining: "draining (being reclaimed)",
  cold: "cold",
  warming: "warming",
  ready: "ready",
};

/** A failure kind the router counts towards ejection (router-service: `AttemptFailure`, `recordFailure`), in words. */
const FAILURE_WORDS: Record<string, string> = {
  connect: "could not connect",
  timeout: "no answer in time",
  timeout_before_body: "no answer in time",
  reset: "connection dropped",
  reset_before_body: "connection dropped before the answer",
  bad_response: "malformed response",
  "stream-idle": "stream stalled",
  "mid-stream": "stream cut off",
};

/** Reasons the router sends as fixed words (router-service/src/backend.ts, config.ts, policy.ts), in plain words. */
const REASON_WORDS: Record<string, string> = {
  startup: "router started",
  "readiness probe passed": "readiness check passed",
  "health checks passed": "health checks passed again",
  "replicas=0": "scaled to zero replicas",
  "replicas=0 in config": "scaled to zero replicas",
  "replicas reported": "replicas came up",
  "replicas in config": "replicas came up",
  "traffic on serverless": "woken up by traffic",
  "drain notice reported": "preemption notice",
  "drain notice in config": "preemption notice",
  "drain lifted by report": "drain notice withdrawn",
  "drain lifted in config": "drain notice withdrawn",
  "removed from config": "no longer in the router's config",
  "router stopped": "router stopped",
  "warmup timeout": "warm-up timed out",
  config: "config changed",
  report: "replica report",
};

function failureWords(kind: string): string {
  const status = /^status_(\d{3})$/.exec(kind);
  return status ? `HTTP ${status[1]}` : (FAILURE_WORDS[kind] ?? kind);
}

/** Seconds from a reason ("60", "0.5") as a duration: "60 s", "20 min". */
function seconds(s: string): string {
  const n = Number(s);
  return n >= 120 && n % 60 === 0 ? `${n / 60} min` : `${s} s`;
}

/**
 * The router's reason for a backend's state ("ejected: 3 consecutive failures (connect)", "idle: no requests for
 * 60 s", "replicas=0") in plain words ("3 failed requests in a row, last: could not connect"). Reasons of older
 * routers ("ejected: connect", "idle") read too; one this does not know is shown as the router sent it.
 */
export function routerReasonWords(reason: string): string {
  const ejected = /^ejected: (\d+) consecutive failures \((.+)\)$/.exec(reason);
  // The kind is the last failure's: the ones before it in the row may have failed otherwise.
  if (ejected) return `${ejected[1]} failed requests in a row, last: ${failureWords(ejected[2])}`;
  const olderEjected = /^ejected: (\S+)$/.exec(reason);
  if (olderEjected) return `requests failed, last: ${failureWords(olderEjected[1])}`;
  const idle = /^idle: no requests for (\d+(?:\.\d+)?) s$/.exec(reason);
  if (idle) return `idle, no requests for ${seconds(idle[1])}`;
  const warmup = /^warmup timeout \((\d+(?:\.\d+)?) s\)$/.exec(reason);
  if (warmup) return `warm-up timed out after ${seconds(warmup[1])}`;
  return REASON_WORDS[reason] ?? reason;
}

/** " (reason in words)" after a state, or nothing when the router gave none. */
function because(reason: string | null | undefined): string {
  return reason ? ` (${routerReasonWords(reason)})` : "";
}

/** "14:03" today, "Nov 2, 14:03" on another day, in the viewer's locale and time zone. */
export function shortTime(at: Date | string, now: Date = new Date()): string {
  const d = new Date(at);
  return d.toDateString() === now.toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** The worst-off backend of `kind` (a deployment has one per kind; a static config could have more). */
function worstOf(view: RouterViewData, kind: "spot" | "serverless"): Backend | undefined {
  return view.backends
    .filter((b) => b.kind === kind)
    .sort((x, y) => WORST_FIRST.indexOf(x.state) - WORST_FIRST.indexOf(y.state))[0];
}

/** Where requests go while spot is in `state`, as the router's policy decides (router-service/src/policy.ts). */
function spotConsequence(state: RouterState, spotOnly: boolean, subject: string): string {
  if (state === "ready") return `${subject} go to spot`;
  // A cold spot backend (idle, scaled to zero) is not broken: the next request sent elsewhere starts warming it.
  const wakes = state === "cold" ? "; the next one starts warming it up" : "";
  if (!spotOnly) return `${subject} go to serverless${state === "warming" ? " until it is ready" : ""}${wakes}`;
  // Spot-only: no fallback. An ejected backend is still tried as a last resort; the others are refused.
  return state === "ejected" ? `${subject} may fail until it recovers` : `${subject} are refused until it is ready${wakes}`;
}

/** "ready on 1", "warming on 1, ready on 2": the routers that do not share the worst state. */
function others(b: Backend): string {
  return b.states
    .slice(1)
    .map((s) => `${s.state} on ${s.routers}`)
    .join(", ");
}

/**
 * The line under the spot badge. `providerReady`: the control plane's spot status is ready (the badge says so).
 * Routers that disagree are summed up by the worst state, with how many routers say it and what the rest say.
 */
export function spotRouterLine(view: RouterViewData, opts: { spotOnly: boolean; providerReady: boolean; time?: (at: Date | string) => string }): RouterLine {
  const time = opts.time ?? ((at) => shortTime(at));
  if (view.liveRouters === 0) {
    const text =
      view.goneRouters === 0 || !view.lastGoneAt
        ? "Router: no router has reported yet"
        : `Router: no router is reporting now (the last one stopped at ${time(view.lastGoneAt)})`;
    return { text, tone: "gray", contradictsProvider: false };
  }
  const b = worstOf(view, "spot");
  if (!b) return { text: "Router: no router has reported on spot yet", tone: "gray", contradictsProvider: false };
  const agree = b.states.length === 1;
  const worst = b.states[0];
  let text = `Router: spot ${WORDS[b.state]} since ${time(b.since)}${because(b.reason)}`;
  if (agree) {
    if (b.routers > 1) text += ` on all ${b.routers} routers`;
    text += ` — ${spotConsequence(b.state, opts.spotOnly, "requests")}`;
  } else {
    const subject = worst.routers === 1 ? "requests through that router" : "requests through those routers";
    text += ` on ${worst.routers} of ${b.routers} routers (${others(b)}) — ${spotConsequence(b.state, opts.spotOnly, subject)}`;
  }
  return { text, tone: TONE[b.state], contradictsProvider: opts.providerReady && (b.state === "ejected" || b.state === "draining") };
}

/**
 * The line under the serverless row, only when a router took serverless out (ejected) or it drains: a serverless
 * backend is ready in every router from the start, so the routers only ever have news about it when it fails.
 */
export function serverlessRouterLine(view: RouterViewData, opts: { time?: (at: Date | string) => string } = {}): RouterLine | null {
  const time = opts.time ?? ((at) => shortTime(at));
  const b = worstOf(view, "serverless");
  if (!b || (b.state !== "ejected" && b.state !== "draining")) return null;
  const worst = b.states[0];
  const scope = b.states.length === 1 ? (b.routers > 1 ? ` on all ${b.routers} routers` : "") : ` on ${worst.routers} of ${b.routers} routers (${others(b)})`;
  const why = b.state === "ejected" ? "its requests failed; the router retries it with health checks" : "it is being replaced";
  return { text: `Router: serverless ${b.state} since ${time(b.since)}${because(b.reason)}${scope} — ${why}`, tone: TONE[b.state], contradictsProvider: false };
}

/** The list's marker: only when routers take spot out (ejected, draining), which the list's status cannot show. */
export function listRouterMarker(view: RouterViewData | null, spotOnly: boolean): { text: string; tone: Tone } | null {
  if (!view) return null;
  const b = worstOf(view, "spot");
  if (!b || (b.state !== "ejected" && b.state !== "draining")) return null;
  const scope = b.states.length === 1 ? "" : ` on ${b.states[0].routers} of ${b.routers} routers`;
  return { text: `Router: spot ${b.state}${scope}${spotOnly ? "" : " — serving from serverless"}`, tone: TONE[b.state] };
}
