// Minimal `--flag value` / `--flag=value` parser: the CLIs have few flags and we avoid a dependency.
// A flag outside `known` or a bare word is an error: a typo must not be ignored silently.
export function parseArgs(argv: string[], known: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const allowed = new Set(known);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(a)}: options are --name value`);
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (!allowed.has(name)) throw new Error(`unknown option --${name}; known: ${known.map((k) => `--${k}`).join(", ")}`);
    if (eq > 0) {
      out[name] = a.slice(eq + 1);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      out[name] = argv[++i];
    } else {
      out[name] = "true";
    }
  }
  return out;
}

export function numArg(args: Record<string, string>, name: string, fallback?: number): number | undefined {
  const v = args[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * A whole-number option from `--name`, else from the environment variable `env`, else `fallback`. Anything
 * that is not a whole number of at least `min` is an error naming where it came from: a setting that
 * silently became NaN or negative would switch a protection off.
 */
export function intOption(args: Record<string, string>, name: string, o: { env?: string; fallback?: number; min: number; max?: number }): number | undefined {
  const fromFlag = args[name];
  const fromEnv = o.env ? process.env[o.env] : undefined;
  const raw = fromFlag ?? (fromEnv === "" ? undefined : fromEnv);
  if (raw === undefined) return o.fallback;
  const n = Number(raw);
  const where = fromFlag !== undefined ? `--${name}` : (o.env as string);
  const range = o.max === undefined ? `≥ ${o.min}` : `${o.min}–${o.max}`;
  if (!Number.isInteger(n) || n < o.min || (o.max !== undefined && n > o.max)) throw new Error(`${where} must be a whole number ${range}, got ${JSON.stringify(raw)}`);
  return n;
}
