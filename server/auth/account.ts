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

/** A GitHub/Google account that signs in as the user, as Settings shows it: never its tokens or provider ids. */
export interface LinkedAccount {
  id: string;
  provider: string;
  /** What names the provider account (its email, or a GitHub login), stored at link time (linkAccountLabel); null for links made before. */
  label: string | null;
  /** Null for links made before this was recorded. */
  linkedAt: Date | null;
}

/** What the Sign-in methods card shows: whether the account has a password, and the provider accounts linked to it. */
export async function signInMethods(userId: string): Promise<{ hasPassword: boolean; accounts: LinkedAccount[] }> {
  const user = await db.user.findUnique({
    where: { id: userId },
    select: {
      passwordHash: true,
      accounts: { select: { id: true, provider: true, label: true, linkedAt: true }, orderBy: [{ linkedAt: { sort: "asc", nulls: "first" } }, { id: "asc" }] },
    },
  });
  if (!user) throw notFound("Account");
  return { hasPassword: user.passwordHash !== null, accounts: user.accounts };
}

/** Said for an id that is not one of the caller's linked accounts, whether it exists or belongs to someone else. */
const LINKED_ACCOUNT_NOT_FOUND = "Sign-in method";

export const unlinkAccountInput = z.object({
  accountId: z.string().min(1).max(64),
  /** Required when the account has a password: a copied session cookie alone must not remove the owner's links. */
  currentPassword: z.string().max(MAX_PASSWORD_LENGTH, "This is not your current password").optional(),
});

/**
 * Removes a GitHub/Google account from the ways of signing in as the caller: a link made with a stolen session
 * survives a password change, so this is how the owner takes it back. Every session of the account ends (one
 * signed in through that link among them); the caller renews its own. The current password is asked for when the
 * account has one, as for sign-out-others. The last way to sign in (no password, one link) is not removed.
 */
export async function unlinkAccount(actor: Actor, input: z.infer<typeof unlinkAccountInput>): Promise<{ sessionVersion: number }> {
  const user = await db.user.findUnique({
    where: { id: actor.userId },
    select: { passwordHash: true, sessionVersion: true, accounts: { select: { id: true, provider: true } } },
  });
  if (!user) throw notFound("Account");
  const account = user.accounts.find((a) => a.id === input.accountId);
  if (!account) throw notFound(LINKED_ACCOUNT_NOT_FOUND);
  if (!user.passwordHash && user.accounts.length === 1) {
    throw new DomainError(
      "PRECONDITION_FAILED",
      "This is the only way you can sign in: your account has no password and no other GitHub or Google account. Ask your Tuna operator for a password reset link first, or sign in once with another account.",
      { reason: "last_sign_in_method" },
    );
  }
  const version = user.passwordHash ? await checkCurrentPassword(actor, input.currentPassword ?? "") : user.sessionVersion;
  return db.$transaction(async (tx) => {
    // Always conditional, also without a password: two removals racing each other (the last two links of an
    // account without a password) must not both pass the check above, and the version read with it says whether
    // anything changed since. The row lock this takes holds the other one back until this commits.
    const sessionVersion = await bumpSessionVersionIf(tx, actor.userId, version);
    const removed = await tx.account.deleteMany({ where: { id: account.id, userId: actor.userId } });
    if (removed.count !== 1) throw notFound(LINKED_ACCOUNT_NOT_FOUND);
    await auditInEveryTeam(tx, actor.userId, actor, { action: "auth.account_unlinked", metadata: { provider: account.provider } });
    return { sessionVersion };
  });
}

/** The longest label kept for a linked account. */
const MAX_LINK_LABEL = 200;

/**
 * What identifies a just-linked provider account to a human, from the profile next-auth hands the linkAccount
 * event: a GitHub login when it is there, else the email (Google's, or the GitHub account's primary one), else the
 * display name. next-auth v4 passes the provider's profile() result there ({ id, name, email, image }), not the
 * raw GitHub profile, so for GitHub this is usually the email.
 */
export function linkAccountLabel(profile: unknown): string | null {
  const p = (profile ?? {}) as Record<string, unknown>;
  for (const v of [p.login, p.email, p.name]) {
    if (typeof v === "string" && v.trim()) return Array.from(v.trim()).slice(0, MAX_LINK_LABEL).join("");
  }
  return null;
}

/**
 * Records that a provider account now signs in as the user (next-auth's linkAccount event, right after the adapter
 * wrote the row): its label, and the link in the log of each of the user's teams, which should see it since such
 * a link outlives any password change or reset.
 */
export async function recordAccountLink(user: { id: string; email?: string | null }, account: { provider: string; providerAccountId: string }, profile: unknown): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.account.updateMany({
      where: { provider: account.provider, providerAccountId: account.providerAccountId, userId: user.id },
      data: { label: linkAccountLabel(profile) },
    });
    await auditInEveryTeam(tx, user.id, { userId: user.id, label: user.email ?? user.id }, { action: "auth.account_linked", metadata: { provider: account.provider } });
  });
}

/**
 * At each GitHub/Google sign-in, with the provider's raw profile (the jwt callback has it; the linkAccount event
 * gets only next-auth's cleaned-up one, without the GitHub login): the link's label becomes the login, or follows a
 * changed email. Links made before labels existed get one at their next sign-in. Writes only when it changed.
 */
export async function refreshAccountLabel(account: { provider: string; providerAccountId: string }, profile: unknown): Promise<void> {
  const label = linkAccountLabel(profile);
  if (!label) return;
  await db.account.updateMany({
    where: { provider: account.provider, providerAccountId: account.providerAccountId, OR: [{ label: null }, { label: { not: label } }] },
    data: { label },
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
