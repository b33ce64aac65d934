/** Money in computed results is integer micro-dollars (1 USD = 1_000_000). Catalog inputs are USD floats. */
export const MICROS_PER_USD = 1_000_000;

export function usdToMicros(usd: number): number {
  if (!Number.isFinite(usd)) throw new RangeError(`not a price: ${usd}`);
  return Math.round(usd * MICROS_PER_USD);
}

/**
 * "$1.12", "$0.216", "$12.00": at least two decimals, at most four (rounded half away from zero),
 * computed on integers so no float noise reaches the UI.
 */
export function formatMicros(micros: number): string {
  if (!Number.isInteger(micros)) throw new RangeError(`micro-dollars must be an integer, got ${micros}`);
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const tenThousandths = Math.floor((abs + 50) / 100); // round to 4 decimals
  const dollars = Math.floor(tenThousandths / 10_000);
  let frac = String(tenThousandths % 10_000).padStart(4, "0");
  while (frac.length > 2 && frac.endsWith("0")) frac = frac.slice(0, -1);
  return `${sign}$${dollars}.${frac}`;
}

export function formatMicrosPerHour(micros: number): string {
  return `${formatMicros(micros)}/h`;
}
