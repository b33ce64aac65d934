/** Client-side formatting of server values (money is integer micro-dollars, 1 USD = 1_000_000). */

export function formatUsd(micros: number | null | undefined, opts: { perHour?: boolean } = {}): string {
  if (micros === null || micros === undefined || !Number.isFinite(micros)) return "—";
  // At least two decimals, at most four ("$0.00", "$0.216", "$12.50"), like the server's formatMicros.
  const abs = Math.round(Math.abs(micros) / 100) / 10_000;
  let s = abs.toFixed(4);
  while (s.endsWith("0") && s.length - s.indexOf(".") > 3) s = s.slice(0, -1);
  const out = `${micros < 0 && abs !== 0 ? "-" : ""}$${s}`;
  return opts.perHour ? `${out}/h` : out;
}

export function usdToMicros(usd: number): number {
  return Math.round(usd * 1_000_000);
}

export function formatDate(d: Date | string | null | undefined): string {
  if (!d) return "—";
  return new Date(d).toLocaleString();
}

export function relativeTime(d: Date | string | null | undefined, now = Date.now()): string {
  if (!d) return "never";
  const ms = new Date(d).getTime() - now;
  const abs = Math.abs(ms);
  const units: Array<[Intl.RelativeTimeFormatUnit, number]> = [
    ["day", 86_400_000],
    ["hour", 3_600_000],
    ["minute", 60_000],
    ["second", 1000],
  ];
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of units) if (abs >= size || unit === "second") return rtf.format(Math.round(ms / size), unit);
  return "now";
}
