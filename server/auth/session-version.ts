import { randomBytes } from "node:crypto";
import { db, type Tx } from "../db";
import { appendAudit, type AuditActor, type AuditEntry } from "../audit";
import type { SessionUserInfo } from "./session";

/**
 * Sessions are JWTs that live 7 days and are stored nowhere, so they are revoked by version: each carries the
 * `User.sessionVersion` it was signed in at (claim `sv`), and a session whose version is not the user's current
 * one is no session. Raising the version signs out every session of the user at once; the request that raised
 * it may give its own browser a session at the new version (session.ts `renewSession`).
 */

/** The version a session signed in now carries: the one read with the password it was checked against, or the adapter's user row (OAuth). */
export async function signInVersion(user: { id: string; sessionVersion?: unknown }): Promise<number> {
  if (typeof user.sessionVersion === "number") return user.sessionVersion;
  const row = await db.user.findUnique({ where: { id: user.id }, select: { sessionVersion: true } });
  return row?.sessionVersion ?? 0;
}

/**
 * The user a session's claims name, read fresh, or null when the session was revoked (its version is no longer the
 * user's, or it was signed out: its `sid` is in RevokedSession) or the user is gone. One statement by primary key.
 * A session from before versions existed carries none: it counts as 0, the version every account started at. One
 * from before session ids existed carries no `sid`: only a version bump can end it.
 */
export async function activeSessionUser(claims: Record<string, unknown>): Promise<SessionUserInfo | null> {
  if (typeof claims.uid !== "string") return null;
  const version = typeof claims.sv === "number" ? claims.sv : 0;
  const sid = typeof claims.sid === "string" ? claims.sid : null;
  const [user] = await db.$queryRaw<Array<{ id: string; email: string | null; name: string | null; sessionVersion: number; signedOut: boolean }>>`
    SELECT "id", "email", "name", "sessionVersion",
      (${sid}::text IS NOT NULL AND EXISTS (SELECT 1 FROM "RevokedSession" WHERE "sid" = ${sid}::text)) AS "signedOut"
    FROM "User" WHERE "id" = ${claims.uid}`;
  if (!user?.email || user.sessionVersion !== version || user.signedOut) return null;
  return { id: user.id, email: user.email, name: user.name };
}

/** A new session's id (claim `sid`): what signing out records, so that copies of that one cookie stop working. */
export function newSessionId(): string {
  return randomBytes(16).toString("base64url");
}

/**
 * Signing out of this browser (next-auth's signOut event, with the session's decoded claims): the session's id is
 * recorded as revoked, so a copy of the cookie taken before is no session either. Kept until no copy can still be
 * within its lifetime: a copy in use was renewed at most up to now, so it expires within `maxAgeS` from now.
 * Sessions without an id (issued before ids existed) cannot be ended one by one and are left to expire.
 */
export async function revokeSession(claims: Record<string, unknown> | null | undefined, maxAgeS: number, now = new Date()): Promise<boolean> {
  if (!claims || typeof claims.sid !== "string" || typeof claims.uid !== "string") return false;
  const { sid, uid } = claims;
  const expiresAt = new Date(now.getTime() + maxAgeS * 1000);
  await db.$transaction(async (tx) => {
    await tx.$executeRaw`
      INSERT INTO "RevokedSession" ("sid", "userId", "expiresAt") SELECT ${sid}, "id", ${expiresAt} FROM "User" WHERE "id" = ${uid}
      ON CONFLICT ("sid") DO NOTHING`;
    // Bounded per user (sign-in is open to anyone with an account, and a sign-in/sign-out loop adds a row each
    // time): past the cap, one version bump ends every session those rows name, and they are no longer needed.
    if ((await tx.revokedSession.count({ where: { userId: uid } })) > MAX_REVOKED_PER_USER) {
      await bumpSessionVersion(tx, uid);
      await tx.revokedSession.deleteMany({ where: { userId: uid } });
    }
  });
  return true;
}

/** Revoked sessions kept per user before they are folded into one version bump (revokeSession). */
export const MAX_REVOKED_PER_USER = 100;

/**
 * Forgets what can no longer matter (for a cron): revoked sessions a day past every copy's lifetime (the day covers
 * a renewal racing the sign-out by the length of one request), reset links a day past their hour.
 */
export async function pruneAuth(now: Date = new Date()): Promise<{ revokedSessions: number; resetLinks: number }> {
  const dayAgo = new Date(now.getTime() - 86_400_000);
  const revokedSessions = await db.$executeRaw`DELETE FROM "RevokedSession" WHERE "expiresAt" < ${dayAgo}`;
  const resetLinks = await db.$executeRaw`DELETE FROM "PasswordResetToken" WHERE "expiresAt" < ${dayAgo}`;
  return { revokedSessions, resetLinks };
}

/** Signs out every session of the user (in the caller's transaction); returns the new version. */
export async function bumpSessionVersion(tx: Tx, userId: string, data: { passwordHash?: string } = {}): Promise<number> {
  const u = await tx.user.update({ where: { id: userId }, data: { ...data, sessionVersion: { increment: 1 } }, select: { sessionVersion: true } });
  return u.sessionVersion;
}

/**
 * A change to the user's own account, recorded in the log of every team they belong to: the log is per team,
 * and each team's admins should see that a member's password or sessions changed. Teams in id order, so two
 * such writes take the per-team audit locks in the same order and cannot deadlock.
 */
export async function auditInEveryTeam(tx: Tx, userId: string, actor: AuditActor, entry: AuditEntry): Promise<void> {
  const teams = await tx.membership.findMany({ where: { userId }, select: { teamId: true }, orderBy: { teamId: "asc" } });
  for (const { teamId } of teams) await appendAudit(tx, teamId, actor, { targetType: "user", targetId: userId, ...entry });
}
