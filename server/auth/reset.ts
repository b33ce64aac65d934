import { randomBytes } from "node:crypto";
import { z } from "zod";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { hashToken } from "../teams/service";
import { normalizeEmail } from "./email";
import { hashPassword } from "./password";
import { newPasswordSchema, type RequestMeta } from "./service";
import { auditInEveryTeam, bumpSessionVersion } from "./session-version";
import { clearAccountLimit } from "./throttle";

/**
 * Forgotten passwords, without a mail server: the operator runs `npm run reset-password -- <email>`, which
 * prints a link to hand to the user. The link sets a new password once, within an hour. Only the token's
 * SHA-256 is stored; the token itself exists only in the printed link.
 */
export const RESET_LINK_TTL_MS = 60 * 60_000;

/** The one answer for an unknown, expired or used link: which of the three it is helps nobody but a guesser. */
export const RESET_LINK_INVALID = "This link has expired or was already used; ask your operator for a new one.";

export const resetPasswordInput = z
  .object({
    token: z.string().min(1).max(200),
    password: newPasswordSchema,
    confirmPassword: z.string(),
  })
  .refine((i) => i.password === i.confirmPassword, { message: "Type the same new password twice", path: ["confirmPassword"] });

/**
 * A reset link for the account with `email` (for the operator's script). `baseUrl` is the dashboard's public
 * address (NEXTAUTH_URL). An unknown email is an error the operator sees: they run the script, not a stranger.
 */
export async function createPasswordResetLink(emailRaw: string, baseUrl: string, now = new Date()): Promise<{ link: string; expiresAt: Date }> {
  const email = normalizeEmail(emailRaw);
  const user = await db.user.findUnique({ where: { email }, select: { id: true } });
  if (!user) throw new DomainError("NOT_FOUND", `There is no account with the email ${email}.`, { reason: "no_such_account" });
  const token = randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + RESET_LINK_TTL_MS);
  await db.passwordResetToken.create({ data: { userId: user.id, tokenHash: hashToken(token), expiresAt, createdAt: now } });
  const url = new URL("/reset-password", baseUrl);
  url.searchParams.set("token", token);
  return { link: url.toString(), expiresAt };
}

/** Whether the link can still be used (the reset page shows its form only then). */
export async function resetLinkUsable(token: string, now = new Date()): Promise<boolean> {
  if (!token) return false;
  const t = await db.passwordResetToken.findUnique({ where: { tokenHash: hashToken(token) }, select: { usedAt: true, expiresAt: true } });
  return !!t && t.usedAt === null && t.expiresAt > now;
}

/**
 * Sets the new password with a reset link and consumes it. One conditional update consumes the token, so of
 * two tabs submitting the same link exactly one wins; the other gets RESET_LINK_INVALID. The account's other
 * unused links are consumed too, every session of the account is signed out, and its sign-in lock is lifted.
 */
export async function resetPassword(input: z.infer<typeof resetPasswordInput>, meta: RequestMeta = {}, now = new Date()): Promise<{ userId: string }> {
  // Checked before the (deliberately slow) hashing, so a junk link costs no scrypt run; checked again below.
  if (!(await resetLinkUsable(input.token, now))) throw linkInvalid();
  const passwordHash = await hashPassword(input.password);
  const tokenHash = hashToken(input.token);
  return db.$transaction(async (tx) => {
    const consumed = await tx.passwordResetToken.updateMany({ where: { tokenHash, usedAt: null, expiresAt: { gt: now } }, data: { usedAt: now } });
    if (consumed.count !== 1) throw linkInvalid();
    const { userId, user } = await tx.passwordResetToken.findUniqueOrThrow({ where: { tokenHash }, select: { userId: true, user: { select: { email: true } } } });
    await tx.passwordResetToken.updateMany({ where: { userId, usedAt: null }, data: { usedAt: now } });
    await bumpSessionVersion(tx, userId, { passwordHash });
    if (user.email) await clearAccountLimit(user.email, tx);
    const actor = { userId, label: user.email ?? userId, ip: meta.ip, userAgent: meta.userAgent };
    await auditInEveryTeam(tx, userId, actor, { action: "auth.password_reset", metadata: { via: "operator_link" } });
    return { userId };
  });
}

function linkInvalid() {
  return new DomainError("PRECONDITION_FAILED", RESET_LINK_INVALID, { reason: "reset_link_invalid" });
}
