import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TRPCError } from "@trpc/server";
import { encode } from "next-auth/jwt";
import { useTestDatabase } from "../test/db";
import { SECRET, callerWithSession, sessionUser, signIn, signedInAs } from "../test/sessions";
import { callerFor, makeTeam, makeUser } from "../test/fixtures";
import { type SessionUser } from "../trpc";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { SESSION_MAX_AGE_S, authOptions } from "./options";
import { tunaAdapter } from "./adapter";

await useTestDatabase();

/**
 * A GitHub/Google sign-in of `userId` through `link`, as next-auth's OAuth callback route does it: the jwt callback
 * with the provider account (and a raw profile), then the cookie. `atMs` backdates it.
 */
async function oauthSignIn(userId: string, link: { provider: string; providerAccountId: string }, atMs = Date.now()): Promise<string> {
  const token = await authOptions().callbacks!.jwt!({
    token: { sub: userId }, user: { id: userId }, account: { provider: link.provider, providerAccountId: link.providerAccountId, type: "oauth" }, profile: {}, trigger: "signIn",
  } as never);
  return encode({ token: { ...token, at: Math.floor(atMs / 1000) }, secret: SECRET, maxAge: SESSION_MAX_AGE_S });
}

let n = 0;
/** Signs up through the API (a password, a personal team) and joins one more team. */
async function newAccount(password = "the-first-password") {
  const email = `methods-${++n}@example.test`;
  const { teamId } = await callerFor(null).auth.signUp({ name: `Methods ${n}`, email, password });
  const row = await db.user.findUniqueOrThrow({ where: { email } });
  const user: SessionUser = { id: row.id, email, name: row.name };
  const other = await makeTeam([{ user: await makeUser("owner"), role: "admin" }, { user, role: "viewer" }], "Other");
  return { user, email, password, teams: [teamId, other.id] };
}

/** A linked provider account, as a row (with tokens, which older rows or another adapter could hold). */
async function link(userId: string, provider: "github" | "google", data: { label?: string | null; linkedAt?: Date | null } = {}) {
  return db.account.create({
    data: { userId, type: "oauth", provider, providerAccountId: `${provider}-${++n}`, access_token: "gho_secret-access-token", refresh_token: "secret-refresh-token", id_token: "secret-id-token", ...data },
  });
}

async function versionOf(userId: string) {
  return (await db.user.findUniqueOrThrow({ where: { id: userId }, select: { sessionVersion: true } })).sessionVersion;
}

async function accountFailures(email: string) {
  return (await db.authThrottle.findUnique({ where: { key: `acct:${email}` } }))?.failures ?? 0;
}

async function unlinkAudit(teamId: string, userId: string) {
  const rows = await db.auditLog.findMany({ where: { teamId, action: "auth.account_unlinked" }, orderBy: { seq: "asc" } });
  return rows.map((r) => [r.actorId, r.targetType, r.targetId, r.metadata]);
}

async function failure(p: Promise<unknown>) {
  const e = await p.then(() => assert.fail("expected an error"), (x: unknown) => x);
  assert.ok(e instanceof TRPCError, String(e));
  return { code: e.code, reason: e.cause instanceof DomainError ? e.cause.reason : undefined, message: e.message };
}

describe("listing sign-in methods", () => {
  test("lists the caller's own linked accounts only, oldest first, with no token or provider id", async () => {
    const a = await newAccount();
    const before = await link(a.user.id, "google", { linkedAt: null });
    const gh = await link(a.user.id, "github", { label: "octocat", linkedAt: new Date("2026-03-03T10:00:00Z") });
    const stranger = await makeUser("stranger");
    await link(stranger.id, "github", { label: "someone-else" });

    const r = await callerFor(a.user).me.signInMethods();
    assert.deepEqual(r, {
      hasPassword: true,
      accounts: [
        { id: before.id, provider: "google", label: null, linkedAt: null, removable: true, removalBlocked: null },
        { id: gh.id, provider: "github", label: "octocat", linkedAt: new Date("2026-03-03T10:00:00Z"), removable: true, removalBlocked: null },
      ],
    });
    const sent = JSON.stringify(r);
    for (const secret of ["secret", gh.providerAccountId, before.providerAccountId, "someone-else"]) assert.ok(!sent.includes(secret), secret);

    assert.deepEqual(await callerFor(stranger).me.signInMethods().then((s) => s.accounts.map((x) => x.label)), ["someone-else"]);
    const oauth = await makeUser("oauth-only");
    assert.deepEqual(await callerFor(oauth).me.signInMethods(), { hasPassword: false, accounts: [] });
    await assert.rejects(callerFor(null).me.signInMethods(), (e: unknown) => e instanceof TRPCError && e.code === "UNAUTHORIZED");
  });
});

describe("removing a linked account", () => {
  test("with the right password: the row is gone, every other session is signed out, this one is renewed, each team's log says so", async () => {
    const a = await newAccount();
    const gh = await link(a.user.id, "github", { label: "thief-login" });
    const kept = await link(a.user.id, "google", { label: "me@example.test" });
    const here = await signIn(a.email, a.password);
    const elsewhere = await signIn(a.email, a.password);
    const renewed: { value?: string } = {};

    const r = await callerWithSession(a.user, here, renewed).me.unlinkAccount({ accountId: gh.id, currentPassword: a.password });
    assert.deepEqual(r, { signedIn: true });
    assert.deepEqual((await db.account.findMany({ where: { userId: a.user.id } })).map((x) => x.id), [kept.id]);
    assert.equal(await versionOf(a.user.id), 1);
    assert.equal(await signedInAs(elsewhere), null, "the other browser is signed out");
    assert.equal(await signedInAs(here), null, "so is this browser's old cookie");
    assert.equal(await signedInAs(renewed.value!), a.user.id, "this browser's renewed cookie is signed in");
    for (const teamId of a.teams) assert.deepEqual(await unlinkAudit(teamId, a.user.id), [[a.user.id, "user", a.user.id, { provider: "github" }]]);
    const logged = JSON.stringify(await db.auditLog.findMany({ where: { actorId: a.user.id } }));
    assert.ok(!logged.includes(a.password) && !logged.includes("secret"), "no password or token in the audit log");
    assert.equal(await accountFailures(a.email), 0, "the right password is no failed attempt");
    // Without a way to renew (not over HTTP), this session is signed out too, and the answer says so.
    assert.deepEqual(await callerFor(a.user).me.unlinkAccount({ accountId: kept.id, currentPassword: a.password }), { signedIn: false });
  });

  test("a wrong or missing password is refused: the row stays, nobody is signed out, and a wrong one counts as a failed sign-in", async () => {
    const a = await newAccount();
    const gh = await link(a.user.id, "github");
    const session = await signIn(a.email, a.password);
    const me = callerWithSession(a.user, session).me;
    assert.deepEqual(await failure(me.unlinkAccount({ accountId: gh.id, currentPassword: "not-the-password" })), {
      code: "BAD_REQUEST", reason: "wrong_password", message: "Your current password is not correct.",
    });
    assert.deepEqual(await failure(me.unlinkAccount({ accountId: gh.id })), { code: "BAD_REQUEST", reason: "wrong_password", message: "Enter your current password." });
    assert.equal(await accountFailures(a.email), 1, "the wrong password was an attempt, the missing one was not");
    assert.ok(await db.account.findUnique({ where: { id: gh.id } }));
    assert.equal(await versionOf(a.user.id), 0);
    assert.equal(await signedInAs(session), a.user.id);
    for (const teamId of a.teams) assert.deepEqual(await unlinkAudit(teamId, a.user.id), []);
  });

  test("another user's account id is not found, with the same answer as an unknown id; nothing is removed or counted", async () => {
    const a = await newAccount();
    const b = await newAccount();
    const theirs = await link(b.user.id, "github");
    const unknown = await failure(callerFor(a.user).me.unlinkAccount({ accountId: "no-such-account", currentPassword: a.password }));
    const other = await failure(callerFor(a.user).me.unlinkAccount({ accountId: theirs.id, currentPassword: a.password }));
    assert.deepEqual([other.code, other.message], ["NOT_FOUND", "Sign-in method not found"]);
    assert.deepEqual(other, unknown);
    assert.ok(await db.account.findUnique({ where: { id: theirs.id } }));
    assert.deepEqual([await versionOf(a.user.id), await versionOf(b.user.id)], [0, 0]);
    assert.equal(await accountFailures(a.email), 0);
    // The same call for one of the caller's own links goes through.
    const mine = await link(a.user.id, "github");
    assert.deepEqual(await callerFor(a.user).me.unlinkAccount({ accountId: mine.id, currentPassword: a.password }), { signedIn: false });
    assert.ok(await db.account.findUnique({ where: { id: theirs.id } }), "theirs is still there");
  });

  test("the last way to sign in (no password, one linked account) is refused and kept", async () => {
    const oauth = await makeUser("oauth-last");
    const only = await link(oauth.id, "github");
    const e = await failure(callerFor(oauth).me.unlinkAccount({ accountId: only.id }));
    assert.deepEqual([e.code, e.reason], ["PRECONDITION_FAILED", "last_sign_in_method"]);
    assert.match(e.message, /only way you can sign in/);
    assert.ok(await db.account.findUnique({ where: { id: only.id } }));
    assert.equal(await versionOf(oauth.id), 0);
  });

  test("an account without a password: a fresh sign-in through an older link removes a newer one, no password asked; the first link stays", async () => {
    const oauth = await makeUser("oauth-two");
    const team = await makeTeam([{ user: oauth, role: "admin" }], "OAuth");
    const gh = await link(oauth.id, "github");
    const google = await link(oauth.id, "google");
    const here = await oauthSignIn(oauth.id, gh);
    const elsewhere = await oauthSignIn(oauth.id, google);
    const me = (await sessionUser(here))!;
    assert.deepEqual((await callerWithSession(me, here).me.signInMethods()).accounts.map((x) => [x.id, x.removable]), [[gh.id, false], [google.id, true]]);
    const renewed: { value?: string } = {};
    assert.deepEqual(await callerWithSession(me, here, renewed).me.unlinkAccount({ accountId: google.id }), { signedIn: true });
    assert.deepEqual((await db.account.findMany({ where: { userId: oauth.id } })).map((x) => x.id), [gh.id]);
    assert.equal(await signedInAs(elsewhere), null);
    assert.equal(await signedInAs(renewed.value!), oauth.id);
    assert.deepEqual(await unlinkAudit(team.id, oauth.id), [[oauth.id, "user", oauth.id, { provider: "google" }]]);
    const again = (await sessionUser(renewed.value!))!;
    assert.equal((await failure(callerFor(again).me.unlinkAccount({ accountId: gh.id }))).reason, "last_sign_in_method");
  });

  test("a copied cookie of an account without a password cannot evict the owner's link, even after linking its own GitHub", async () => {
    const owner = await makeUser("oauth-victim");
    const mine = await link(owner.id, "github", { label: "owner" });
    // The owner signed in through their link long ago; the thief holds a copy of that cookie.
    const stolen = await oauthSignIn(owner.id, mine, Date.now() - 3 * 3600_000);
    const thiefUser = (await sessionUser(stolen))!;
    assert.equal((await failure(callerFor(thiefUser).me.unlinkAccount({ accountId: mine.id }))).reason, "last_sign_in_method");
    // The thief signs in with their own GitHub in that browser: next-auth links it, and the session now came through it.
    const theirs = await link(owner.id, "github", { label: "thief" });
    const linked = await oauthSignIn(owner.id, theirs);
    const thief = (await sessionUser(linked))!;
    const e = await failure(callerWithSession(thief, linked).me.unlinkAccount({ accountId: mine.id }));
    assert.deepEqual([e.code, e.reason], ["PRECONDITION_FAILED", "oldest_link"]);
    // The stale copy of the owner's own sign-in is no proof either (older than 15 minutes).
    const stale = await failure(callerFor(thiefUser).me.unlinkAccount({ accountId: theirs.id }));
    assert.deepEqual([stale.reason, /sign in again with GitHub \(owner\)/.test(stale.message)], ["sign_in_again", true]);
    assert.equal(await db.account.count({ where: { userId: owner.id } }), 2);
    // The owner signs in again through their own link and removes the thief's.
    const fresh = await oauthSignIn(owner.id, mine);
    assert.deepEqual(await callerWithSession((await sessionUser(fresh))!, fresh).me.unlinkAccount({ accountId: theirs.id }), { signedIn: true });
    assert.deepEqual((await db.account.findMany({ where: { userId: owner.id } })).map((x) => x.id), [mine.id]);
    assert.equal(await signedInAs(linked), null, "the thief's session is signed out");
  });

  test("two removals racing on one account without a password: one wins, the other is a conflict", async () => {
    for (let i = 0; i < 4; i++) {
      const oauth = await makeUser(`oauth-race-${i}`);
      const links = [await link(oauth.id, "github"), await link(oauth.id, "google"), await link(oauth.id, "github")];
      const cookie = await oauthSignIn(oauth.id, links[0]);
      const me = (await sessionUser(cookie))!;
      const results = await Promise.allSettled(links.slice(1).map((l) => callerFor(me).me.unlinkAccount({ accountId: l.id })));
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, `trial ${i}: ${JSON.stringify(results.map((r) => r.status))}`);
      for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof TRPCError && r.reason.code === "CONFLICT", String(r.reason));
      assert.equal(await db.account.count({ where: { userId: oauth.id } }), 2, `trial ${i}`);
    }
  });
});

describe("linking an account", () => {
  test("the linkAccount event stores what names the provider account, and the row has its link date", async () => {
    const a = await newAccount();
    const adapter = tunaAdapter(db as never);
    const events = authOptions().events!;
    /** What next-auth does at a link: the adapter writes the row, then the event gets the provider's profile. */
    async function linkAs(provider: string, profile: Record<string, unknown>) {
      const account = { provider, providerAccountId: `${provider}-${++n}`, type: "oauth" as const, userId: a.user.id, access_token: "secret" };
      await adapter.linkAccount!(account);
      await events.linkAccount!({ user: { id: a.user.id, email: a.email }, account, profile } as never);
      return db.account.findUniqueOrThrow({ where: { provider_providerAccountId: { provider, providerAccountId: account.providerAccountId } } });
    }
    const started = Date.now();
    // GitHub: next-auth's profile() result ({ id, name: name ?? login, email, image }); a raw profile has the login.
    const gh = await linkAs("github", { id: "583231", name: "The Octocat", email: "octocat@github.example", image: "https://avatars.example/u/583231" });
    assert.equal(gh.label, "octocat@github.example");
    assert.ok(gh.linkedAt && gh.linkedAt.getTime() >= started - 5_000 && gh.linkedAt.getTime() <= Date.now() + 5_000, String(gh.linkedAt));
    assert.equal((await linkAs("github", { id: "1", login: "octocat", name: "The Octocat", email: "octocat@github.example" })).label, "octocat");
    assert.equal((await linkAs("google", { id: "1089", name: "Gina Google", email: "gina@gmail.example" })).label, "gina@gmail.example");
    assert.equal((await linkAs("github", { id: "2", name: "  No Email  ", email: null })).label, "No Email");
    assert.equal((await linkAs("github", { id: "3", email: `${"x".repeat(300)}@example.test` })).label, "x".repeat(200));
    assert.equal((await linkAs("google", { id: "4" })).label, null);
    // Each link is still in every team's log.
    for (const teamId of a.teams) assert.equal(await db.auditLog.count({ where: { teamId, action: "auth.account_linked" } }), 6);
    // The list shows them with their labels.
    const listed = await callerFor(a.user).me.signInMethods();
    assert.deepEqual(listed.accounts.map((x) => String(x.label)).sort(), ["octocat@github.example", "octocat", "gina@gmail.example", "No Email", "x".repeat(200), "null"].sort());
  });

  test("at each GitHub/Google sign-in the jwt callback's raw profile relabels the link: the GitHub login, a renamed one, an unlabelled old link", async () => {
    const a = await newAccount();
    const jwt = authOptions().callbacks!.jwt!;
    /** next-auth's OAuth callback route: the jwt callback with the account and the provider's raw profile. */
    const signInWith = (provider: string, providerAccountId: string, profile: Record<string, unknown>) =>
      jwt({ token: { sub: a.user.id }, user: { id: a.user.id, email: a.email }, account: { provider, providerAccountId, type: "oauth" }, profile, trigger: "signIn" } as never);
    const gh = await db.account.create({ data: { userId: a.user.id, type: "oauth", provider: "github", providerAccountId: "gh-raw-1", label: "octocat@github.example" } });
    const old = await db.account.create({ data: { userId: a.user.id, type: "oauth", provider: "google", providerAccountId: "g-raw-1", label: null, linkedAt: null } });
    const label = async (id: string) => (await db.account.findUniqueOrThrow({ where: { id } })).label;
    await signInWith("github", "gh-raw-1", { id: 1, login: "octocat", name: "The Octocat", email: "octocat@github.example" });
    assert.equal(await label(gh.id), "octocat");
    await signInWith("github", "gh-raw-1", { id: 1, login: "octo-renamed", email: null });
    assert.equal(await label(gh.id), "octo-renamed");
    await signInWith("google", "g-raw-1", { sub: "g-raw-1", email: "gina@gmail.example", name: "Gina" });
    assert.equal(await label(old.id), "gina@gmail.example");
    // A password sign-in (no provider account) and a profile with nothing to show change nothing.
    await jwt({ token: { sub: a.user.id }, user: { id: a.user.id }, account: { provider: "credentials", providerAccountId: a.user.id, type: "credentials" }, trigger: "signIn" } as never);
    await signInWith("github", "gh-raw-1", { id: 1 });
    assert.equal(await label(gh.id), "octo-renamed");
  });

  test("a row inserted without naming the new columns (as an older app would) gets its link date from the database", async () => {
    const a = await newAccount();
    await db.$executeRaw`INSERT INTO "Account" (id, "userId", type, provider, "providerAccountId") VALUES ('sql-row', ${a.user.id}, 'oauth', 'github', 'sql-1')`;
    const row = await db.account.findUniqueOrThrow({ where: { id: "sql-row" } });
    assert.ok(row.linkedAt instanceof Date, "the column's default applies to new rows");
    assert.equal(row.label, null);
  });
});
