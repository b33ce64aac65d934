/**
 * A whole number from the environment variable `name` (unset or empty: `fallback`). Anything that is not a
 * whole number from `min` to `max` throws, naming the variable: a setting that silently became NaN would
 * disable what it sizes (a pool of NaN connections, a NaN backoff, a NaN port).
 */
export function envInt(name: string, fallback: number, min: number, max?: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || (max !== undefined && n > max))
    throw new Error(`${name} must be a whole number ${max === undefined ? `≥ ${min}` : `${min}–${max}`}, got ${JSON.stringify(raw)}`);
  return n;
}
