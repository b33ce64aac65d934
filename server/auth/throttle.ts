import { db } from "../db";

/**
 * Brute-force protection for sign-in, per account and per IP, stored in PostgreSQL so every app instance
 * shares it. After `maxFailures` failures inside `windowMs` the key is locked for `lockMs`.
 */
export const THROTTLE = {
  account: { maxFailures: 8, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
  ip: { maxFailures: 40, windowMs: 15 * 60_000, lockMs: 15 * 60_000 },
};

type Kind = keyof typeof THROTTLE;

function keyFor(kind: Kind, value: string) {
  return `${kind === "account" ? "acct" : "ip"}:${value.toLowerCase()}`;
}

export async function isLocked(kind: Kind, value: string, now = new Date()): Promise<boolean> {
  const row = await db.authThrottle.findUnique({ where: { key: keyFor(kind, value) } });
  return !!row?.lockedUntil && row.lockedUntil > now;
}

export async function recordFailure(kind: Kind, value: string, now = new Date()): Promise<void> {
  const cfg = THROTTLE[kind];
  const key = keyFor(kind, value);
  const windowStart = new Date(now.getTime() - cfg.windowMs);
  // One statement: reset the window when it has expired, count, and lock at the threshold.
  await db.$executeRaw`
    INSERT INTO "AuthThrottle" ("key", "failures", "windowStart", "lockedUntil")
    VALUES (${key}, 1, ${now}, NULL)
    ON CONFLICT ("key") DO UPDATE SET
      "failures" = CASE WHEN "AuthThrottle"."windowStart" < ${windowStart} THEN 1 ELSE "AuthThrottle"."failures" + 1 END,
      "windowStart" = CASE WHEN "AuthThrottle"."windowStart" < ${windowStart} THEN ${now} ELSE "AuthThrottle"."windowStart" END,
      "lockedUntil" = CASE
        WHEN "AuthThrottle"."windowStart" >= ${windowStart} AND "AuthThrottle"."failures" + 1 >= ${cfg.maxFailures}
        THEN ${new Date(now.getTime() + cfg.lockMs)} ELSE "AuthThrottle"."lockedUntil" END`;
}

export async function clearFailures(kind: Kind, value: string): Promise<void> {
  await db.authThrottle.deleteMany({ where: { key: keyFor(kind, value) } });
}
