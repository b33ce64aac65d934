/**
 * A key's expiry as the calendar day a person picks in `<input type="date">` and the instant stored.
 * Both directions use the browser's own time zone, so the day shown is the day saved: reading the day
 * back in UTC (toISOString) moved a key's expiry a day later on every save west of UTC.
 */

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * The end of `day` (YYYY-MM-DD) in the local time zone; null (no expiry) when the input is empty. Text
 * that is not a real day gives an invalid Date (see isInvalidExpiry) rather than a silent "never":
 * new Date() would roll 2026-02-31 over into March, and superjson sends an invalid Date as null.
 */
export function expiryFromDateInput(day: string): Date | null {
  const text = day.trim();
  if (!text) return null;
  const m = DAY.exec(text);
  if (!m) return new Date(Number.NaN);
  const [year, month, date] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const end = new Date(year, month - 1, date, 23, 59, 59);
  if (end.getFullYear() !== year || end.getMonth() !== month - 1 || end.getDate() !== date) return new Date(Number.NaN);
  return end;
}

/** The local calendar day of an expiry, as a date input's value (YYYY-MM-DD); "" for none. */
export function dateInputValueOfExpiry(expiresAt: Date | string | null | undefined): string {
  if (!expiresAt) return "";
  const d = new Date(expiresAt);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export const INVALID_EXPIRY = "Choose a day from the calendar (YYYY-MM-DD).";

export function isInvalidExpiry(expiresAt: Date | null): boolean {
  return expiresAt !== null && Number.isNaN(expiresAt.getTime());
}
