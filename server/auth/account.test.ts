import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { TRPCError } from "@trpc/server";
import { getServerSession } from "next-auth";
import { encode } from "next-auth/jwt";
import { ZodError } from "zod";
import { useTestDatabase } from "../test/db";
import { COOKIE, SECRET, callerWithSession, signIn, signedInAs } from "../test/sessions";
import { callerFor, makeTeam, makeUser } from "../test/fixtures";
import { type SessionUser } from "../trpc";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { authOptions } from "./options";
import { checkCredentials } from "./service";
import { THROTTLE } from "./throttle";
import { RESET_LINK_INVALID, createPasswordResetLink, resetLinkUsable } from "./reset";
import { renewedSessionCookie } from "./session";

await useTestDatabase();

let n = 0;
/** Signs up through the API (a password, a personal team) and joins one more team. */
async function newAccount(password = "the-first-password") {
  const email = `acct-${++n}@example.test`;
  const { teamId } = await callerFor(null).auth.signUp({ name: `Acct ${n}`, email, password });
  const row = await db.user.findUniqueOrThrow({ where: { email } });
  const user: SessionUser = { id: row.id, email, name: row.name };
  const other = await makeTeam([{ user: await makeUser("owner"), role: "admin" }, { user, role: "viewer" }], "Other");
  return { user, email, password, teams: [teamId, other.id] };
}

async function versionOf(userId: string) {
  return (await db.user.findUniqueOrThrow({ where: { id: userId }, select: { sessionVersion: true } })).sessionVersion;
}

async function accountFailures(email: string) {
  const row = await db.authThrottle.findUnique({ where: { key: `acct:${email}` } });
  return row?.failures ?? 0;
}

async function auditActions(teamId: string, userId: string) {
  const rows = await db.auditLog.findMany({ where: { teamId, actorId: userId, action: { startsWith: "auth." } }, orderBy: { seq: "asc" } });
  return rows.map((r) => [r.action, r.targetType, r.targetId]);
}

function reasonOf(e: unknown): string | undefined {
  return e instanceof TRPCError && e.cause instanceof DomainError ? e.cause.reason : undefined;
}

describe("session revocation", () => {
  test("a session is signed out once the account's session version is not the one it signed in at", async () => {
    const a = await newAccount();
    const cookie = await signIn(a.email, a.password);
    assert.equal(await signedInAs(cookie), a.user.id);
    await db.user.update({ where: { id: a.user.id }, data: { sessionVersion: { increment: 1 } } });
    assert.equal(await signedInAs(cookie), null, "the old version's session is no session");
    const again = await signIn(a.email, a.password);
    assert.equal(await signedInAs(again), a.user.id, "signing in again gives a session at the new version");
  });

  test("a session from before versions existed counts as version 0; a deleted user's session is signed out", async () => {
    const a = await newAccount();
    const legacy = await encode({ token: { sub: a.user.id, email: a.email, uid: a.user.id }, secret: SECRET });
    assert.equal(await signedInAs(legacy), a.user.id);
    await db.user.update({ where: { id: a.user.id }, data: { sessionVersion: 1 } });
    assert.equal(await signedInAs(legacy), null);
    const b = await newAccount();
    const cookie = await signIn(b.email, b.password);
    await db.user.delete({ where: { id: b.user.id } });
    assert.equal(await signedInAs(cookie), null);
  });

  test("a renewed cookie keeps its browser signed in at the new version; a copy of the old one stays out", async () => {
    const a = await newAccount();
    const cookie = await signIn(a.email, a.password);
    await db.user.update({ where: { id: a.user.id }, data: { sessionVersion: 1 } });
    const renewed = await renewedSessionCookie(cookie, a.user.id, 1);
    assert.ok(renewed);
    assert.deepEqual([renewed.name, renewed.options.httpOnly, renewed.options.sameSite], [COOKIE, true, "lax"]);
    assert.equal(await signedInAs(renewed.value), a.user.id);
    assert.equal(await signedInAs(cookie), null);
    // Only a session of that very user, current until this bump, is renewed.
    assert.equal(await renewedSessionCookie(cookie, "someone-else", 1), null);
    assert.equal(await renewedSessionCookie(cookie, a.user.id, 2), null, "revoked by an earlier bump");
    assert.equal(await renewedSessionCookie("not-a-token", a.user.id, 1), null);
    assert.equal(await renewedSessionCookie(undefined, a.user.id, 1), null);
  });
});

describe("change password", () => {
  test("a wrong current password is refused for that field, changes nothing and counts as a failed sign-in", async () => {
    const a = await newAccount();
    const err = await callerFor(a.user).me.changePassword({ currentPassword: "not-the-password", newPassword: "a-new-password", confirmPassword: "a-new-password" }).catch((e: unknown) => e);
    assert.ok(err instanceof TRPCError);
    assert.deepEqual([err.code, reasonOf(err), err.message], ["BAD_REQUEST", "wrong_password", "Your current password is not correct."]);
    assert.equal((await checkCredentials(a.email, a.password, "10.9.0.1")).ok, true);
    assert.equal((await checkCredentials(a.email, "a-new-password", "10.9.0.1")).ok, false);
    assert.equal(await versionOf(a.user.id), 0);
    assert.equal(await accountFailures(a.email), 2, "the wrong current password and the wrong sign-in above");
  });

  test("wrong current passwords lock the account like failed sign-ins: then even the right one is refused, here and at sign-in", async () => {
    const a = await newAccount();
    const me = callerFor(a.user).me;
    for (let i = 0; i < THROTTLE.account.maxFailures; i++) {
      const e = await me.changePassword({ currentPassword: `guess-${i}`, newPassword: "a-new-password", confirmPassword: "a-new-password" }).catch((x: unknown) => x);
      assert.equal(reasonOf(e), "wrong_password");
    }
    const locked = await me.changePassword({ currentPassword: a.password, newPassword: "a-new-password", confirmPassword: "a-new-password" }).catch((x: unknown) => x);
    assert.ok(locked instanceof TRPCError);
    assert.deepEqual([locked.code, reasonOf(locked)], ["TOO_MANY_REQUESTS", "locked"]);
    assert.deepEqual(await checkCredentials(a.email, a.password, "10.9.0.2"), { ok: false, reason: "locked" });
    assert.equal(await versionOf(a.user.id), 0);
  });

  test("a new password of the wrong length, or two that differ, are field errors with sign-up's rules; nothing changes", async () => {
    const a = await newAccount();
    const me = callerFor(a.user).me;
    const cases = [
      [{ newPassword: "short", confirmPassword: "short" }, "newPassword"],
      [{ newPassword: "x".repeat(201), confirmPassword: "x".repeat(201) }, "newPassword"],
      [{ newPassword: "a-new-password", confirmPassword: "a-new-passw0rd" }, "confirmPassword"],
    ] as const;
    for (const [input, field] of cases) {
      await assert.rejects(
        me.changePassword({ currentPassword: a.password, ...input }),
        (e: unknown) => e instanceof TRPCError && e.code === "BAD_REQUEST" && e.cause instanceof ZodError && e.cause.issues.some((i) => i.path[0] === field),
        field,
      );
    }
    assert.equal((await checkCredentials(a.email, a.password, "10.9.0.3")).ok, true);
    assert.equal(await versionOf(a.user.id), 0);
    assert.equal(await accountFailures(a.email), 0, "refused input is no guess");
  });

  test("success: the old password stops working and the new one works, other sessions end, this one is renewed, every team's log says so", async () => {
    const a = await newAccount();
    const here = await signIn(a.email, a.password);
    const elsewhere = await signIn(a.email, a.password);
    const renewed: { value?: string } = {};
    const r = await callerWithSession(a.user, here, renewed).me.changePassword({ currentPassword: a.password, newPassword: "the-second-password", confirmPassword: "the-second-password" });
    assert.deepEqual(r, { signedIn: true });
    assert.equal(await versionOf(a.user.id), 1);
    assert.deepEqual(await checkCredentials(a.email, a.password, "10.9.0.4"), { ok: false, reason: "invalid" });
    assert.equal((await checkCredentials(a.email, "the-second-password", "10.9.0.4")).ok, true);
    assert.equal(await signedInAs(elsewhere), null, "the other browser is signed out");
    assert.equal(await signedInAs(here), null, "so is this browser's old cookie");
    assert.equal(await signedInAs(renewed.value!), a.user.id, "this browser's renewed cookie is signed in");
    for (const teamId of a.teams) assert.deepEqual(await auditActions(teamId, a.user.id), [["auth.password_changed", "user", a.user.id]]);
    const logged = JSON.stringify(await db.auditLog.findMany({ where: { actorId: a.user.id } }));
    assert.ok(!logged.includes("the-second-password") && !logged.includes(a.password), "no password in the audit log");
  });

  test("without a way to renew (not over HTTP), this session is signed out too and the answer says so", async () => {
    const a = await newAccount();
    const r = await callerFor(a.user).me.changePassword({ currentPassword: a.password, newPassword: "the-second-password", confirmPassword: "the-second-password" });
    assert.deepEqual(r, { signedIn: false });
    assert.equal(await versionOf(a.user.id), 1);
  });

  test("an account without a password (GitHub/Google) is told so; nothing is counted against its email", async () => {
    const oauth = await makeUser("oauth");
    assert.deepEqual(await callerFor(oauth).me.account(), { hasPassword: false });
    const e = await callerFor(oauth).me.changePassword({ currentPassword: "anything-at-all", newPassword: "a-new-password", confirmPassword: "a-new-password" }).catch((x: unknown) => x);
    assert.ok(e instanceof TRPCError);
    assert.deepEqual([e.code, reasonOf(e)], ["PRECONDITION_FAILED", "no_password"]);
    assert.match(e.message, /GitHub or Google/);
    assert.equal(await accountFailures(oauth.email), 0);
    const a = await newAccount();
    assert.deepEqual(await callerFor(a.user).me.account(), { hasPassword: true });
  });
});

describe("sign out everywhere else", () => {
  test("every other session ends, this one is renewed, the password is unchanged and every team's log says so", async () => {
    const a = await newAccount();
    const here = await signIn(a.email, a.password);
    const elsewhere = await signIn(a.email, a.password);
    const renewed: { value?: string } = {};
    assert.deepEqual(await callerWithSession(a.user, here, renewed).me.signOutOtherSessions({ currentPassword: a.password }), { signedIn: true });
    assert.equal(await signedInAs(elsewhere), null);
    assert.equal(await signedInAs(renewed.value!), a.user.id);
    assert.equal((await checkCredentials(a.email, a.password, "10.9.0.5")).ok, true);
    for (const teamId of a.teams) assert.deepEqual(await auditActions(teamId, a.user.id), [["auth.sessions_revoked", "user", a.user.id]]);
    // A request of the revoked session that got past the sign-in check just before the bump cannot renew itself.
    assert.deepEqual(await callerWithSession(a.user, elsewhere, {}).me.signOutOtherSessions({ currentPassword: a.password }), { signedIn: false });
  });
});

describe("a copied session cookie", () => {
  test("cannot sign the owner out without the password (an account without one can), and a wrong one counts as a failed sign-in", async () => {
    const a = await newAccount();
    const owner = await signIn(a.email, a.password);
    const copy = await signIn(a.email, a.password);
    for (const input of [undefined, {}, { currentPassword: "not-the-password" }]) {
      const e = await callerWithSession(a.user, copy, {}).me.signOutOtherSessions(input).catch((x: unknown) => x);
      assert.deepEqual([e instanceof TRPCError && e.code, reasonOf(e)], ["BAD_REQUEST", "wrong_password"], JSON.stringify(input));
    }
    assert.equal(await accountFailures(a.email), 1, "only the wrong password was an attempt");
    assert.equal(await signedInAs(owner), a.user.id);
    for (const teamId of a.teams) assert.deepEqual(await auditActions(teamId, a.user.id), []);
    // GitHub/Google: nothing to ask for.
    const oauth = await makeUser("oauth-others");
    assert.deepEqual(await callerFor(oauth).me.signOutOtherSessions(), { signedIn: false });
  });

  test("revoked, it is no token to next-auth at all: no OAuth account can be linked with it, and the session route clears it", async () => {
    const a = await newAccount();
    const stolen = await signIn(a.email, a.password);
    const options = authOptions();
    const decode = (token: string) => options.jwt!.decode!({ token, secret: SECRET });
    assert.equal((await decode(stolen))?.uid, a.user.id);
    await callerFor(a.user).me.changePassword({ currentPassword: a.password, newPassword: "a-changed-password", confirmPassword: "a-changed-password" });
    // The OAuth callback (next-auth core/lib/callback-handler.js) decodes the cookie with options.jwt.decode and
    // links the provider account to the user it names: a revoked cookie now names nobody.
    assert.equal(await decode(stolen), null);
    const cleared: string[] = [];
    const res = { getHeader() {}, setHeader(name: string, value: string[] | string) { if (name.toLowerCase() === "set-cookie") cleared.push(...[value].flat()); }, setCookie() {} };
    const s = await getServerSession({ headers: {}, cookies: { [COOKIE]: stolen } } as never, res as never, options);
    assert.equal(s, null);
    assert.ok(cleared.some((c) => c.startsWith(`${COOKIE}=;`) || /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c)), `cookie cleared: ${cleared.join(" | ")}`);
  });

  test("a password change racing a reset link never loses the owner's reset: a reset that succeeds is the password in force", async () => {
    for (let i = 0; i < 6; i++) {
      const a = await newAccount();
      const thief = callerWithSession(a.user, await signIn(a.email, a.password), {});
      const token = new URL((await createPasswordResetLink(a.email, "http://localhost:3000")).link).searchParams.get("token")!;
      const [changed, reset] = await Promise.allSettled([
        thief.me.changePassword({ currentPassword: a.password, newPassword: "thief-chosen-pw", confirmPassword: "thief-chosen-pw" }),
        callerFor(null).auth.resetPassword({ token, password: "owner-reset-pw", confirmPassword: "owner-reset-pw" }),
      ]);
      assert.ok(changed.status === "rejected" || reset.status === "rejected", `trial ${i}: not both`);
      const ownerWorks = (await checkCredentials(a.email, "owner-reset-pw", "10.78.0.1")).ok;
      assert.equal(ownerWorks, reset.status === "fulfilled", `trial ${i}: the reset's answer is the truth`);
      assert.equal((await checkCredentials(a.email, "thief-chosen-pw", "10.78.0.2")).ok, changed.status === "fulfilled", `trial ${i}`);
    }
  });

  test("a GitHub/Google account linked to a user is in the log of each of the user's teams", async () => {
    const a = await newAccount();
    const events = authOptions().events!;
    await events.linkAccount!({ user: { id: a.user.id, email: a.email }, account: { provider: "github", providerAccountId: "gh-1", type: "oauth", userId: a.user.id }, profile: { id: a.user.id } } as never);
    for (const teamId of a.teams) {
      const rows = await db.auditLog.findMany({ where: { teamId, action: "auth.account_linked" } });
      assert.deepEqual(rows.map((r) => [r.targetId, r.metadata]), [[a.user.id, { provider: "github" }]]);
    }
  });

  test("a reset link issued before a password change cannot undo it", async () => {
    const a = await newAccount();
    const token = new URL((await createPasswordResetLink(a.email, "http://localhost:3000")).link).searchParams.get("token")!;
    await callerFor(a.user).me.changePassword({ currentPassword: a.password, newPassword: "a-newer-password", confirmPassword: "a-newer-password" });
    assert.equal(await resetLinkUsable(token), false);
  });
});

describe("operator reset link", () => {
  const reset = (token: string, password = "a-reset-password") => callerFor(null).auth.resetPassword({ token, password, confirmPassword: password });
  const tokenOf = (link: string) => new URL(link).searchParams.get("token")!;
  async function invalid(p: Promise<unknown>) {
    const e = await p.catch((x: unknown) => x);
    assert.ok(e instanceof TRPCError, String(e));
    assert.deepEqual([e.code, e.message], ["PRECONDITION_FAILED", RESET_LINK_INVALID]);
  }

  test("the link carries 32 random bytes for an hour; only their SHA-256 is stored", async () => {
    const a = await newAccount();
    const before = Date.now();
    const { link, expiresAt } = await createPasswordResetLink(` ${a.email.toUpperCase()} `, "https://tuna.example.com");
    assert.match(link, /^https:\/\/tuna\.example\.com\/reset-password\?token=[\w-]{43}$/);
    const token = tokenOf(link);
    assert.equal(Buffer.from(token, "base64url").length, 32);
    assert.ok(Math.abs(expiresAt.getTime() - (before + 3600_000)) < 5_000);
    const rows = await db.passwordResetToken.findMany({ where: { userId: a.user.id } });
    assert.equal(rows.length, 1);
    assert.equal(rows[0].tokenHash, createHash("sha256").update(token).digest("hex"));
    assert.ok(!JSON.stringify(rows).includes(token), "the token itself is stored nowhere");
    assert.equal(await resetLinkUsable(token), true);
    await assert.rejects(createPasswordResetLink("nobody@example.test", "http://localhost:3000"), (e: unknown) => e instanceof DomainError && e.code === "NOT_FOUND");
  });

  test("a link sets the password once: the old password and every session stop working, a second use is refused, each team's log says so", async () => {
    const a = await newAccount();
    const session = await signIn(a.email, a.password);
    const token = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link);
    await reset(token);
    assert.deepEqual(await checkCredentials(a.email, a.password, "10.9.1.1"), { ok: false, reason: "invalid" });
    assert.equal((await checkCredentials(a.email, "a-reset-password", "10.9.1.1")).ok, true);
    assert.equal(await signedInAs(session), null);
    assert.equal(await versionOf(a.user.id), 1);
    assert.equal(await resetLinkUsable(token), false);
    await invalid(reset(token, "a-third-password"));
    assert.equal((await checkCredentials(a.email, "a-reset-password", "10.9.1.1")).ok, true, "the refused second use changed nothing");
    for (const teamId of a.teams) assert.deepEqual(await auditActions(teamId, a.user.id), [["auth.password_reset", "user", a.user.id]]);
  });

  test("expired, used and unknown links all get the same message and change nothing", async () => {
    const a = await newAccount();
    const expired = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000", new Date(Date.now() - 61 * 60_000))).link);
    assert.equal(await resetLinkUsable(expired), false);
    await invalid(reset(expired));
    await invalid(reset("x".repeat(43)));
    assert.equal(await resetLinkUsable("x".repeat(43)), false);
    // Setting a password with one link uses up the account's other links too.
    const first = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link);
    const second = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link);
    await reset(second);
    await invalid(reset(first, "a-third-password"));
    assert.equal((await checkCredentials(a.email, "a-reset-password", "10.9.1.2")).ok, true);
    assert.equal(await versionOf(a.user.id), 1);
  });

  test("two tabs submitting one link at once: exactly one sets its password", async () => {
    const a = await newAccount();
    const token = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link);
    const passwords = ["tab-one-password", "tab-two-password", "tab-three-password", "tab-four-password"];
    const results = await Promise.allSettled(passwords.map((p) => reset(token, p)));
    const won = passwords.filter((_, i) => results[i].status === "fulfilled");
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status === "rejected") await invalid(Promise.reject(r.reason));
    for (const p of passwords) assert.equal((await checkCredentials(a.email, p, "10.9.1.3")).ok, p === won[0], p);
    assert.equal(await versionOf(a.user.id), 1);
  });

  test("a reset lifts the account's sign-in lock, so the owner can sign in at once", async () => {
    const a = await newAccount();
    for (let i = 0; i < THROTTLE.account.maxFailures; i++) await checkCredentials(a.email, `guess-${i}`, `10.9.2.${i}`);
    assert.deepEqual(await checkCredentials(a.email, a.password, "10.9.2.100"), { ok: false, reason: "locked" });
    await reset(tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link));
    assert.equal((await checkCredentials(a.email, "a-reset-password", "10.9.2.101")).ok, true);
  });

  test("the new password follows sign-up's rules and must be typed twice alike", async () => {
    const a = await newAccount();
    const token = tokenOf((await createPasswordResetLink(a.email, "http://localhost:3000")).link);
    for (const [input, field] of [[{ password: "short", confirmPassword: "short" }, "password"], [{ password: "long-enough-1", confirmPassword: "long-enough-2" }, "confirmPassword"]] as const) {
      await assert.rejects(
        callerFor(null).auth.resetPassword({ token, ...input }),
        (e: unknown) => e instanceof TRPCError && e.cause instanceof ZodError && e.cause.issues.some((i) => i.path[0] === field),
      );
    }
    assert.equal(await resetLinkUsable(token), true, "a refused attempt does not use the link up");
  });
});
