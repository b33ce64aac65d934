// Chooses the ordered backends to try for one request. Pure apart from kicking spot warm-up when traffic
// goes elsewhere (so a scale-to-zero spot fleet sees demand).
import type { BackendRuntime } from "./backend.js";
import type { DeploymentRuntime } from "./config.js";

export interface RequestShape {
  promptTokens: number;
  maxTokens: number | undefined;
}

export type Choice =
  | { ok: true; candidates: BackendRuntime[] }
  | { ok: false; reason: "capacity" | "unavailable" };

/** At most one failover: a request reaches at most two backends. */
const MAX_ATTEMPTS = 2;

export function chooseBackends(dep: DeploymentRuntime, shape: RequestShape, random: () => number = Math.random): Choice {
  const { routing } = dep.cfg;
  const policy = routing.policy;
  const eligible = dep.backends.filter((b) =>
    policy === "serverless-only" ? b.kind === "serverless" : policy === "spot-only" ? b.kind === "spot" : true,
  );

  let preferred: "spot" | "serverless" | undefined = policy === "spot-first" ? "spot" : undefined;
  for (const rule of routing.rules ?? []) {
    const w = rule.when;
    const promptHit = w.promptTokensAbove === undefined || shape.promptTokens > w.promptTokensAbove;
    const maxHit = w.maxTokensAbove === undefined || (shape.maxTokens ?? 0) > w.maxTokensAbove;
    if (promptHit && maxHit && (w.promptTokensAbove !== undefined || w.maxTokensAbove !== undefined)) {
      preferred = rule.prefer;
      break;
    }
  }

  let usable = eligible.filter((b) => b.available() && b.hasCapacity());
  // Panic mode: when ejection has removed every otherwise-ready backend, trying one beats a certain 503
  // (a single serverless backend that had a bad minute must not be locked out until probes pass).
  if (usable.length === 0) usable = eligible.filter((b) => b.ejected && b.availableIgnoringHealth() && b.hasCapacity());
  let ordered: BackendRuntime[];
  if (policy === "weighted" && !preferred) {
    ordered = weightedOrder(usable, routing.weights ?? {}, random);
  } else {
    // Stable: within a kind, config order; least-loaded first would reorder canaries unpredictably.
    ordered = preferred ? [...usable.filter((b) => b.kind === preferred), ...usable.filter((b) => b.kind !== preferred)] : usable;
  }

  // Spot is wanted but cold: start warming so it takes over once ready.
  if (policy !== "serverless-only" && (ordered.length === 0 || ordered[0].kind !== "spot"))
    for (const b of eligible) if (b.kind === "spot" && b.lifecycle === "cold") b.enterWarming("traffic on serverless");

  if (ordered.length === 0) {
    const anyAvailable = eligible.some((b) => b.available());
    return { ok: false, reason: anyAvailable ? "capacity" : "unavailable" };
  }
  return { ok: true, candidates: ordered.slice(0, MAX_ATTEMPTS) };
}

function weightedOrder(backends: BackendRuntime[], weights: Record<string, number>, random: () => number): BackendRuntime[] {
  const pool = backends.map((b) => ({ b, w: weights[b.id] ?? 0 }));
  const total = pool.reduce((s, p) => s + p.w, 0);
  if (total <= 0) return backends;
  const target = random() * total;
  let idx = pool.length - 1;
  let acc = 0;
  for (let i = 0; i < pool.length; i++) {
    acc += pool[i].w;
    if (target < acc) {
      idx = i;
      break;
    }
  }
  const first = pool[idx];
  // Fallbacks: remaining backends by weight (zero-weight backends still serve as failover targets).
  const rest = pool.filter((_, i) => i !== idx).sort((a, c) => c.w - a.w);
  return [first.b, ...rest.map((p) => p.b)];
}
