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
  /** Whether this session may remove it now; when not, `removalBlocked` says why and what to do. */
  removable: boolean;
  removalBlocked: string | null;
}

/** How this session was signed in (JWT claims `via`, the Account id of a GitHub/Google sign-in, and `at`, seconds). */
export interface SignInProof {
  via: string | null;
  at: number | null;
}

/** How long after a GitHub/Google sign-in an account without a password may remove a newer link. */
export const REMOVE_LINK_WINDOW_MS = 15 * 60_000;

type LinkRow = { id: string; provider: string; label: string | null; linkedAt: Date | null };

/** Link order: by link date (links from before dates were kept first), then by id (cuid: creation order). */
function linkedBefore(a: LinkRow, b: LinkRow): boolean {
  const ta = a.linkedAt?.getTime() ?? 0;
  const tb = b.linkedAt?.getTime() ?? 0;
  return ta !== tb ? ta < tb : a.id < b.id;
}

const LAST_METHOD =
  "This is the only way you can sign in: your account has no password and no other GitHub or Google account. Ask your Tuna operator for a password reset link first, or sign in once with another account.";

/**
 * Why this session may not remove `target` now, or null. With a password, the password (asked for at removal) is
 * the proof. Without one, a session cookie alone proves nothing (it may be a copy), and a thief holding one can
 * link their own GitHub account first: so only a fresh sign-in through an *older* link may remove a newer one. The
 * owner's original link is the oldest; a link a thief added is newer, and their own sign-ins come through it.
 */
function removalBlocked(hasPassword: boolean, links: LinkRow[], target: LinkRow, proof: SignInProof | null, now: number): { reason: string; message: string } | null {
  if (hasPassword) return null;
  if (links.length === 1) return { reason: "last_sign_in_method", message: LAST_METHOD };
  const via = links.find((l) => l.id === proof?.via);
  const fresh = proof?.at != null && now - proof.at * 1000 <= REMOVE_LINK_WINDOW_MS;
  if (via && fresh && linkedBefore(via, target)) return null;
  const older = links.filter((l) => linkedBefore(l, target));
  if (!older.length) {
    return {
      reason: "oldest_link",
      message: "This is the first account linked to you. Without a password it can only be removed after the newer ones, or once you have a password (ask your Tuna operator for a reset link).",
    };
  }
  return {
    reason: "sign_in_again",
    message: `Your account has no password, so to remove this link sign out, sign in again with ${older.map(linkName).join(" or ")} (linked before it), and remove it within ${REMOVE_LINK_WINDOW_MS / 60_000} minutes.`,
  };
}

function linkName(l: LinkRow): string {
  const provider = ({ github: "GitHub", google: "Google" } as Record<string, string>)[l.provider] ?? l.provider;
  return l.label ? `${provider} (${l.label})` : `your ${provider} account`;
}

/** What the Sign-in methods card shows: whether the account has a password, and the provider accounts linked to it. */
export async function signInMethods(userId: string, proof: SignInProof | null = null, now = Date.now()): Promise<{ hasPassword: boolean; accounts: LinkedAccount[] }> {
  const user = await db.user.findUnique({
    where: { id: userId },
    select: {
      passwordHash: true,
      accounts: { select: { id: true, provider: true, label: true, linkedAt: true }, orderBy: [{ linkedAt: { sort: "asc", nulls: "first" } }, { id: "asc" }] },
    },
  });
  if (!user) throw notFound("Account");
  const hasPassword = user.passwordHash !== null;
  const accounts = user.accounts.map((a) => {
    const blocked = removalBlocked(hasPassword, user.accounts, a, proof, now);
    return { ...a, removable: !blocked, removalBlocked: blocked?.message ?? null };
  });
  return { hasPassword, accounts };
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
 * account has one, as for sign-out-others. Without one, only a fresh sign-in through an older link may remove a
 * newer one (removalBlocked), and the last way to sign in is never removed.
 */
export async function unlinkAccount(actor: Actor, input: z.infer<typeof unlinkAccountInput>, proof: SignInProof | null = null): Promise<{ sessionVersion: number }> {
  const user = await db.user.findUnique({
    where: { id: actor.userId },
    select: { passwordHash: true, sessionVersion: true, accounts: { select: { id: true, provider: true, label: true, linkedAt: true } } },
  });
  if (!user) throw notFound("Account");
  const account = user.accounts.find((a) => a.id === input.accountId);
  if (!account) throw notFound(LINKED_ACCOUNT_NOT_FOUND);
  const blocked = removalBlocked(user.passwordHash !== null, user.accounts, account, proof, Date.now());
  if (blocked) throw new DomainError("PRECONDITION_FAILED", blocked.message, { reason: blocked.reason });
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
 * Returns the link's id, which the session keeps as the proof of how it signed in (removalBlocked).
 */
export async function refreshAccountLabel(account: { provider: string; providerAccountId: string }, profile: unknown): Promise<string | null> {
  const row = await db.account.findUnique({ where: { provider_providerAccountId: { provider: account.provider, providerAccountId: account.providerAccountId } }, select: { id: true, label: true } });
  if (!row) return null;
  const label = linkAccountLabel(profile);
  if (label && label !== row.label) await db.account.update({ where: { id: row.id }, data: { label } });
  return row.id;
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
