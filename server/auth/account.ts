import { z } from "zod";
import { db } from "../db";
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
  const user = await db.user.findUnique({ where: { id: actor.userId }, select: { email: true, passwordHash: true } });
  if (!user?.email) throw notFound("Account");
  // Not an attempt: there is no password to guess, and counting it would lock the account's email for nothing.
  if (!user.passwordHash) throw new DomainError("PRECONDITION_FAILED", NO_PASSWORD, { reason: "no_password" });
  const check = await checkCredentials(user.email, input.currentPassword, actor.ip ?? null);
  if (!check.ok && check.reason === "locked") {
    throw new DomainError("TOO_MANY_REQUESTS", "Too many failed attempts. Wait 15 minutes and try again.", { reason: "locked" });
  }
  if (!check.ok || check.user.id !== actor.userId) {
    throw new DomainError("BAD_REQUEST", "Your current password is not correct.", { reason: "wrong_password" });
  }
  const passwordHash = await hashPassword(input.newPassword);
  return db.$transaction(async (tx) => {
    const sessionVersion = await bumpSessionVersion(tx, actor.userId, { passwordHash });
    await auditInEveryTeam(tx, actor.userId, actor, { action: "auth.password_changed" });
    return { sessionVersion };
  });
}

/** "Sign out everywhere else": every session of the account ends; the caller renews its own. */
export async function signOutOtherSessions(actor: Actor): Promise<{ sessionVersion: number }> {
  return db.$transaction(async (tx) => {
    const sessionVersion = await bumpSessionVersion(tx, actor.userId);
    await auditInEveryTeam(tx, actor.userId, actor, { action: "auth.sessions_revoked" });
    return { sessionVersion };
  });
}
