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
 * The user a session's claims name, read fresh (one lookup by primary key), or null when the session was
 * revoked (its version is no longer the user's) or the user is gone. A session from before versions existed
 * carries none: it counts as 0, the version every account started at.
 */
export async function activeSessionUser(claims: Record<string, unknown>): Promise<SessionUserInfo | null> {
  if (typeof claims.uid !== "string") return null;
  const version = typeof claims.sv === "number" ? claims.sv : 0;
  const user = await db.user.findUnique({ where: { id: claims.uid }, select: { id: true, email: true, name: true, sessionVersion: true } });
  if (!user?.email || user.sessionVersion !== version) return null;
  return { id: user.id, email: user.email, name: user.name };
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
