import { z } from "zod";
import { db, type Tx } from "../db";
import type { AuditActor } from "../audit";
import { DomainError, notFound } from "../lib/errors";
import { MAX_PASSWORD_LENGTH, hashPassword } from "./password";
import { checkCredentials, newPasswordSchema } from "./service";
import { auditInEveryTeam, bumpSessionVersion } from "./session-version";

type Actor = AuditActor & { userId: string };

export const changePasswordInput = z
  .object({
    currentPassword: z.string().min(1, "Enter your current password").max(MAX_PASSWORD_LENGTH, "This is not your current password"),
    newPassword: newPasswordSchema,
    confirmPassword: z.string(),
  })
  .refine((i) => i.newPassword === i.confirmPassword, { message: "Type the same new password twice", path: ["confirmPassword"] });

/** Said to a user whose account has no password: they sign in through GitHub or Google. */
export const NO_PASSWORD =
  "Your account signs in with GitHub or Google and has no password. To set one, ask your Tuna operator for a password reset link.";

/** What the Password card needs to know about the signed-in user's account. */
export async function accountSecurity(userId: string): Promise<{ hasPassword: boolean }> {
  const user = await db.user.findUnique({ where: { id: userId }, select: { passwordHash: true } });
  if (!user) throw notFound("Account");
  return { hasPassword: user.passwordHash !== null };
}

/**
 * Sets a new password after checking the current one, and signs out every session of the account. The check
 * is a sign-in attempt (checkCredentials): it counts against the account's and the IP's sign-in limits, so a
 * stolen session cannot be used to guess the password faster than the sign-in page allows, and a locked
 * account says so. Returns the new session version (for renewing this browser's session).
 */
export async function changePassword(actor: Actor, input: z.infer<typeof changePasswordInput>): Promise<{ sessionVersion: number }> {
  const version = await checkCurrentPassword(actor, input.currentPassword);
  const passwordHash = await hashPassword(input.newPassword);
  return db.$transaction(async (tx) => {
    // Only over the account as it was checked: a reset link used (or another change made) meanwhile wins, rather
    // than both succeeding and the later write silently replacing the password the owner was told is set.
    const sessionVersion = await bumpSessionVersionIf(tx, actor.userId, version, { passwordHash });
    // A reset link issued before the change must not undo it.
    await tx.passwordResetToken.updateMany({ where: { userId: actor.userId, usedAt: null }, data: { usedAt: new Date() } });
    await auditInEveryTeam(tx, actor.userId, actor, { action: "auth.password_changed" });
    return { sessionVersion };
  });
}

export const signOutOtherSessionsInput = z.object({
  /** Required when the account has a password: a copied session cookie alone must not sign the owner out. */
  currentPassword: z.string().max(MAX_PASSWORD_LENGTH, "This is not your current password").optional(),
});

/**
 * "Sign out everywhere else": every session of the account ends; the caller renews its own. With a password on the
 * account it must be given, as for a change: otherwise a stolen cookie could sign the owner out and keep itself
 * in, again after every sign-in of the owner. An account without one (GitHub/Google) has nothing to ask for.
 */
export async function signOutOtherSessions(actor: Actor, input: z.infer<typeof signOutOtherSessionsInput> = {}): Promise<{ sessionVersion: number }> {
  const user = await db.user.findUnique({ where: { id: actor.userId }, select: { passwordHash: true } });
  if (!user) throw notFound("Account");
  const version = user.passwordHash ? await checkCurrentPassword(actor, input.currentPassword ?? "") : null;
  return db.$transaction(async (tx) => {
    const sessionVersion = version === null ? await bumpSessionVersion(tx, actor.userId) : await bumpSessionVersionIf(tx, actor.userId, version);
    await auditInEveryTeam(tx, actor.userId, actor, { action: "auth.sessions_revoked" });
    return { sessionVersion };
  });
}

/**
 * Checks the account's current password as a sign-in attempt (checkCredentials): it counts against the account's
 * and the IP's sign-in limits, so a stolen session cannot guess it faster than the sign-in page allows, and a
 * locked account says so. Returns the session version read with the password.
 */
async function checkCurrentPassword(actor: Actor, currentPassword: string): Promise<number> {
  const user = await db.user.findUnique({ where: { id: actor.userId }, select: { email: true, passwordHash: true } });
  if (!user?.email) throw notFound("Account");
  // Not an attempt: there is no password to guess, and counting it would lock the account's email for nothing.
  if (!user.passwordHash) throw new DomainError("PRECONDITION_FAILED", NO_PASSWORD, { reason: "no_password" });
  if (!currentPassword) throw new DomainError("BAD_REQUEST", "Enter your current password.", { reason: "wrong_password" });
  const check = await checkCredentials(user.email, currentPassword, actor.ip ?? null);
  if (!check.ok && check.reason === "locked") {
    throw new DomainError("TOO_MANY_REQUESTS", "Too many failed attempts. Wait 15 minutes and try again.", { reason: "locked" });
  }
  if (!check.ok || check.user.id !== actor.userId) {
    throw new DomainError("BAD_REQUEST", "Your current password is not correct.", { reason: "wrong_password" });
  }
  return check.user.sessionVersion;
}

/** bumpSessionVersion, only while the version is still `expected`; a CONFLICT otherwise (nothing written). */
async function bumpSessionVersionIf(tx: Tx, userId: string, expected: number, data: { passwordHash?: string } = {}): Promise<number> {
  const moved = await tx.user.updateMany({ where: { id: userId, sessionVersion: expected }, data: { ...data, sessionVersion: { increment: 1 } } });
  if (moved.count !== 1) {
    throw new DomainError("CONFLICT", "Your password or sessions changed while this was being saved (a reset link, or another browser). Sign in again and retry.", { reason: "account_changed" });
  }
  return expected + 1;
}
