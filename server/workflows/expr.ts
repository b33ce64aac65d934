/**
 * The small subset of Inngest's CEL expressions the local runner evaluates: clauses joined by `&&`, each
 * `<operand> == <operand>` or `!=`, operands being `event.…` / `async.…` paths or literals. That covers
 * `waitForEvent({ if })` and concurrency keys as Tuna writes them; anything else is rejected loudly.
 */
export class UnsupportedExpressionError extends Error {}

type Scope = Record<string, unknown>;

function operand(raw: string, scope: Scope): unknown {
  const s = raw.trim();
  if (/^'.*'$/.test(s) || /^".*"$/.test(s)) return s.slice(1, -1);
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  if (s === "true") return true;
  if (s === "false") return false;
  if (s === "null") return null;
  if (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(s)) {
    let v: unknown = scope;
    for (const part of s.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
    return v;
  }
  throw new UnsupportedExpressionError(`unsupported operand ${JSON.stringify(s)}`);
}

export function evaluateValue(expr: string, scope: Scope): unknown {
  return operand(expr, scope);
}

export function evaluateCondition(expr: string, scope: Scope): boolean {
  return expr.split("&&").every((clause) => {
    const m = /^(.*?)(==|!=)(.*)$/.exec(clause);
    if (!m) throw new UnsupportedExpressionError(`unsupported clause ${JSON.stringify(clause.trim())}`);
    const a = operand(m[1]!, scope);
    const b = operand(m[3]!, scope);
    return m[2] === "==" ? a === b : a !== b;
  });
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "500ms", "10s", "1h30m", "7d", a number of ms, or an ISO date (→ ms from `now`). */
export function durationMs(value: unknown, now = Date.now()): number {
  if (typeof value === "number") return value;
  const s = String(value).trim();
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
  if (parts.length && parts.map((p) => p[0]).join("") === s) return parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
  const at = Date.parse(s);
  if (!Number.isNaN(at)) return at - now;
  throw new UnsupportedExpressionError(`cannot read duration ${JSON.stringify(s)}`);
}

// ------------------------------------------------------------------------------------------------ cron

function field(spec: string, min: number, max: number): Set<number> {
  const out = new Set<number>();
  for (const part of spec.split(",")) {
    const [range, stepRaw] = part.split("/");
    const step = stepRaw ? Number(stepRaw) : 1;
    let lo = min;
    let hi = max;
    if (range && range !== "*") {
      const [a, b] = range.split("-");
      lo = Number(a);
      hi = b !== undefined ? Number(b) : stepRaw ? max : lo;
    }
    if (![lo, hi, step].every(Number.isInteger) || step < 1) throw new UnsupportedExpressionError(`bad cron field ${JSON.stringify(spec)}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** A 5-field cron schedule (UTC; an optional "TZ=…" prefix is not supported). */
export function parseCron(expr: string): (d: Date) => boolean {
  const f = expr.trim().split(/\s+/);
  if (f.length !== 5) throw new UnsupportedExpressionError(`cron needs 5 fields: ${JSON.stringify(expr)}`);
  const [mi, ho, dom, mo, dow] = [field(f[0]!, 0, 59), field(f[1]!, 0, 23), field(f[2]!, 1, 31), field(f[3]!, 1, 12), field(f[4]!, 0, 7)];
  if (dow.has(7)) dow.add(0);
  const domAny = f[2] === "*";
  const dowAny = f[4] === "*";
  return (d) => {
    if (!mi.has(d.getUTCMinutes()) || !ho.has(d.getUTCHours()) || !mo.has(d.getUTCMonth() + 1)) return false;
    const domOk = dom.has(d.getUTCDate());
    const dowOk = dow.has(d.getUTCDay());
    return domAny || dowAny ? domOk && dowOk : domOk || dowOk;
  };
}

/** The latest minute ≤ now the schedule fires at (looking back at most 8 days), or null. */
export function latestCronSlot(expr: string, now = Date.now()): number | null {
  const matches = parseCron(expr);
  let t = Math.floor(now / 60_000) * 60_000;
  for (let i = 0; i < 8 * 24 * 60; i++, t -= 60_000) if (matches(new Date(t))) return t;
  return null;
}
