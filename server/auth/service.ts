import { Prisma } from "@prisma/client";
import { z } from "zod";
import { db } from "../db";
import { appendAudit } from "../audit";
import { DomainError } from "../lib/errors";
import { slugify, uniqueTeamSlug } from "../teams/slug";
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, dummyHash, hashPassword, verifyPassword } from "./password";
import { normalizeEmail } from "./email";
import { auditInEveryTeam } from "./session-version";
import { type Attempt, THROTTLE, attemptFailed, attemptNotMade, attemptSucceeded, claimLockNotice, reserveAttempt } from "./throttle";

/** The rules for a password a user chooses: at sign-up, when changing it, and with a reset link. */
export const newPasswordSchema = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `Use at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_LENGTH, `Use at most ${MAX_PASSWORD_LENGTH} characters`)
  // Spaces are fine inside a passphrase (and kept as typed), but ten of them alone are no password.
  .refine((p) => p.trim() !== "", "Use some letters, digits or symbols, not only spaces");

export const signUpInput = z.object({
  name: z.string().trim().min(1, "Enter your name").max(100),
  email: z.string().trim().toLowerCase().pipe(z.email("Enter a valid email address")),
  password: newPasswordSchema,
});

export interface RequestMeta {
  ip?: string | null;
  userAgent?: string | null;
}

/**
 * Creates the user, their personal team (as admin) and the team's first audit rows, atomically. A taken
 * email is a CONFLICT (reason "email_taken"), also when a concurrent sign-up takes it first.
 */
export async function signUp(input: z.infer<typeof signUpInput>, meta: RequestMeta = {}) {
  const passwordHash = await hashPassword(input.password);
  if (await emailExists(input.email)) throw emailTaken();
  try {
    return await createUserWithPersonalTeam(input, passwordHash, meta);
  } catch (e) {
    // A concurrent sign-up with the same email passed the check above too and created the user first;
    // the unique index refuses ours. Any other unique violation (e.g. a team slug race) stays an error.
    if (e instanceof Prisma.PrismaClientKnownRequestError && e.code === "P2002" && (await emailExists(input.email))) throw emailTaken();
    throw e;
  }
}

// Sign-up must say something here; it says no more than "use sign-in" (the email owner knows).
function emailTaken() {
  return new DomainError("CONFLICT", "An account with this email already exists. Sign in instead.", { reason: "email_taken" });
}

async function emailExists(email: string) {
  return (await db.user.findUnique({ where: { email }, select: { id: true } })) !== null;
}

function createUserWithPersonalTeam(input: z.infer<typeof signUpInput>, passwordHash: string, meta: RequestMeta) {
  return db.$transaction(async (tx) => {
    const user = await tx.user.create({ data: { name: input.name, email: input.email, passwordHash } });
    const teamName = `${input.name.split(/\s+/)[0]}'s team`;
    const team = await tx.team.create({
      data: { name: teamName, slug: await uniqueTeamSlug(tx, slugify(teamName)), personal: true },
    });
    await tx.membership.create({ data: { teamId: team.id, userId: user.id, role: "admin" } });
    const actor = { userId: user.id, label: input.email, ...meta };
    await appendAudit(tx, team.id, actor, { action: "user.signup", targetType: "user", targetId: user.id });
    await appendAudit(tx, team.id, actor, {
      action: "team.create", targetType: "team", targetId: team.id, metadata: { name: team.name, personal: true },
    });
    return { userId: user.id, teamId: team.id };
  });
}

export type CredentialCheck =
  | { ok: true; user: { id: string; email: string; name: string | null; sessionVersion: number } }
  | { ok: false; reason: "invalid" | "locked" };

/**
 * An account was just locked by failed sign-ins (at `maxFailures` within the window): each of the user's teams
 * sees it once per lock (claimLockNotice), since someone may be guessing a member's password. Nothing for an
 * email without an account. Called after a failed or refused attempt; it costs one conditional update.
 */
async function noticeLock(email: string, ip: string | null): Promise<void> {
  const { maxFailures, lockMs } = THROTTLE.account;
  // The claim and the entries commit together: a failed audit write leaves the lock to be noticed by the next attempt.
  await db.$transaction(async (tx) => {
    if (!(await claimLockNotice(email, tx))) return;
    const user = await tx.user.findUnique({ where: { email }, select: { id: true } });
    if (!user) return;
    await auditInEveryTeam(tx, user.id, { userId: null, label: "sign-in", ip }, {
      action: "auth.sign_in_locked",
      metadata: { failedAttempts: maxFailures, lockedMinutes: Math.round(lockMs / 60_000) },
    });
  });
}

/**
 * Checks email + password with brute-force protection per account and per IP. Failures look the same
 * whether or not the account exists (same message, a real scrypt run either way). The attempt is counted
 * before the password is checked, so parallel guesses cannot all slip under the limit (see ./throttle).
 */
export async function checkCredentials(emailRaw: string, password: string, ip: string | null): Promise<CredentialCheck> {
  const email = normalizeEmail(emailRaw);
  if (!email || !password || password.length > MAX_PASSWORD_LENGTH) return { ok: false, reason: "invalid" };
  const attempts: Attempt[] = [];
  const account = await reserveAttempt("account", email);
  if (!account) {
    await noticeLock(email, ip);
    return { ok: false, reason: "locked" };
  }
  attempts.push(account);
  if (ip) {
    const fromIp = await reserveAttempt("ip", ip);
    if (!fromIp) {
      await attemptNotMade(account); // not evaluated: it does not count against the account
      return { ok: false, reason: "locked" };
    }
    attempts.push(fromIp);
  }
  // Should anything below throw, the attempts simply stay counted: a failure, which the window forgives.
  // The session version is read with the hash it goes with: a reset that lands after this check signs this session out too.
  const user = await db.user.findUnique({ where: { email }, select: { id: true, email: true, name: true, passwordHash: true, sessionVersion: true } });
  const valid = await verifyPassword(password, user?.passwordHash ?? (await dummyHash()));
  const ok = valid && !!user?.passwordHash;
  for (const a of attempts) await (ok ? attemptSucceeded(a) : attemptFailed(a));
  if (!ok) await noticeLock(email, ip);
  if (!ok || !user) return { ok: false, reason: "invalid" };
  return { ok: true, user: { id: user.id, email: user.email!, name: user.name, sessionVersion: user.sessionVersion } };
}
