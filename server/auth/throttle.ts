import { db, type Tx } from "../db";

/**
 * Brute-force protection for sign-in, per account and per IP, stored in PostgreSQL so every app instance
 * shares it. At most `maxFailures` attempts are evaluated inside `windowMs`; once they have all failed (or
 * more arrive while they are still being checked) the key is locked for `lockMs`.
 *
 * The limit holds under concurrency: an attempt is counted BEFORE its password is checked (`reserveAttempt`,
 * one statement that counts and decides), so a burst of parallel guesses gets `maxFailures` evaluations and
 * no more. Until it is settled, a counted attempt is a failure. `attemptFailed` keeps it counted (and
 * locks at the limit); `attemptSucceeded` takes back only that one attempt: it never lifts a lock and never
 * erases attempts that other requests have counted. Failures are forgiven by the window expiring, not by a
 * success.
 */
export const THROTTLE = {
  account: { maxFailures: 8, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
  ip: { maxFailures: 40, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
};

type Kind = keyof typeof THROTTLE;

/** A counted attempt, to be settled with attemptFailed or attemptSucceeded (or released with attemptNotMade). */
export interface Attempt {
  kind: Kind;
  key: string;
  /** The window the attempt was counted in (its start, as stored); settling is a no-op once a new window started. */
  window: string;
}

function keyFor(kind: Kind, value: string) {
  return `${kind === "account" ? "acct" : "ip"}:${value.toLowerCase()}`;
}

/**
 * Counts one attempt for `value` and says whether it may be evaluated: null when the key is locked or its
 * window already holds `maxFailures` attempts. A refused attempt over the limit locks the key; attempts
 * refused while it is locked are not counted (the lock ends `lockMs` after it started, whatever they do).
 */
export async function reserveAttempt(kind: Kind, value: string, now = new Date()): Promise<Attempt | null> {
  const cfg = THROTTLE[kind];
  const key = keyFor(kind, value);
  const windowStart = new Date(now.getTime() - cfg.windowMs);
  const lockUntil = new Date(now.getTime() + cfg.lockMs);
  // One statement, so concurrent attempts serialize on the row: each sees the counts of those before it.
  const rows = await db.$queryRaw<Array<{ failures: number; window: string; locked: boolean }>>`
    INSERT INTO "AuthThrottle" AS t ("key", "failures", "windowStart", "lockedUntil")
    VALUES (${key}, 1, ${now}, NULL)
    ON CONFLICT ("key") DO UPDATE SET
      "failures" = CASE
        WHEN t."lockedUntil" > ${now} THEN t."failures"
        WHEN t."windowStart" < ${windowStart} THEN 1
        ELSE t."failures" + 1 END,
      "windowStart" = CASE
        WHEN t."lockedUntil" > ${now} THEN t."windowStart"
        WHEN t."windowStart" < ${windowStart} THEN ${now}
        ELSE t."windowStart" END,
      "lockedUntil" = CASE
        WHEN t."lockedUntil" > ${now} THEN t."lockedUntil"
        WHEN t."windowStart" >= ${windowStart} AND t."failures" + 1 > ${cfg.maxFailures} THEN ${lockUntil}
        ELSE t."lockedUntil" END
    RETURNING "failures", "windowStart"::text AS "window", COALESCE("lockedUntil" > ${now}, false) AS "locked"`;
  const row = rows[0];
  if (!row || row.locked || row.failures > cfg.maxFailures) return null;
  return { kind, key, window: row.window };
}

/** The attempt's password was wrong: it stays counted, and the key locks once the window's count reaches the limit. */
export async function attemptFailed(a: Attempt, now = new Date()): Promise<void> {
  const cfg = THROTTLE[a.kind];
  await db.$executeRaw`
    UPDATE "AuthThrottle" SET "lockedUntil" = ${new Date(now.getTime() + cfg.lockMs)}
    WHERE "key" = ${a.key} AND "windowStart"::text = ${a.window} AND "failures" >= ${cfg.maxFailures}
      AND ("lockedUntil" IS NULL OR "lockedUntil" <= ${now})`;
}

/**
 * The attempt succeeded (or was never evaluated): it no longer counts. Only this one attempt is taken back; a
 * lock, and the attempts of other requests, stay.
 */
export async function attemptSucceeded(a: Attempt): Promise<void> {
  await db.$executeRaw`
    UPDATE "AuthThrottle" SET "failures" = GREATEST("failures" - 1, 0)
    WHERE "key" = ${a.key} AND "windowStart"::text = ${a.window}`;
}

export const attemptNotMade = attemptSucceeded;

/**
 * True for exactly one caller per lock of the account: the one to tell its teams (auth.sign_in_locked). Whoever
 * sees the account locked (a refused attempt, the failure that locked it) asks; a conditional update picks one.
 */
export async function claimLockNotice(email: string, client: Pick<Tx, "$executeRaw"> = db, now = new Date()): Promise<boolean> {
  const claimed = await client.$executeRaw`
    UPDATE "AuthThrottle" SET "lockNoticed" = "lockedUntil"
    WHERE "key" = ${keyFor("account", email)} AND "lockedUntil" > ${now} AND "lockNoticed" IS DISTINCT FROM "lockedUntil"`;
  return claimed > 0;
}

/**
 * Forgets the account's attempts and lifts its lock: for a password reset, after which the guesses counted
 * against the old password say nothing about the new one and the owner must be able to sign in at once. In
 * the caller's transaction, so the reset and the lift commit together. The per-IP limits stay.
 */
export async function clearAccountLimit(email: string, client: Pick<Tx, "$executeRaw"> = db): Promise<void> {
  await client.$executeRaw`DELETE FROM "AuthThrottle" WHERE "key" = ${keyFor("account", email)}`;
}
