import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { InngestTestEngine } from "@inngest/test";
import { decode, encode } from "next-auth/jwt";
import { useTestDatabase } from "../test/db";
import { COOKIE, SECRET, signIn, signedInAs } from "../test/sessions";
import { callerFor } from "../test/fixtures";
import { db } from "../db";
import { pruneAuthFunction } from "./functions";
import { SESSION_MAX_AGE_S, authOptions } from "./options";
import { MAX_REVOKED_PER_USER, pruneAuth, revokeSession } from "./session-version";

await useTestDatabase();

/** next-auth's own request handler (core/index.js), which the route app/api/auth/[...nextauth] runs. */
const require = createRequire(import.meta.url);
const { AuthHandler } = require(join(dirname(require.resolve("next-auth")), "core/index.js")) as {
  AuthHandler: (p: { req: unknown; options: unknown }) => Promise<{ status?: number; body?: unknown; cookies?: Array<{ name: string; value: string }>; redirect?: string }>;
};

/** The options as the route passes them (next-auth's Next.js wrapper adds NEXTAUTH_SECRET). */
const routeOptions = () => ({ ...authOptions(), secret: SECRET });

/** The browser's "Sign out" button: next-auth's CSRF token, then POST /api/auth/signout with it and the session cookie. */
async function signOut(cookie: string) {
  const req = { method: "GET", action: "csrf", headers: { host: "localhost:3000" }, cookies: {}, query: {}, body: {} };
  const csrf = await AuthHandler({ req, options: routeOptions() });
  const csrfCookie = csrf.cookies!.find((c) => c.name.endsWith("next-auth.csrf-token"))!;
  const out = await AuthHandler({
    req: { method: "POST", action: "signout", headers: { host: "localhost:3000" }, cookies: { [csrfCookie.name]: csrfCookie.value, [COOKIE]: cookie }, query: {}, body: { csrfToken: (csrf.body as { csrfToken: string }).csrfToken } },
    options: routeOptions(),
  });
  // The browser's cookie is cleared by the answer, as before.
  assert.ok(out.cookies?.some((c) => c.name === COOKIE && c.value === ""), "the session cookie is cleared");
}

let n = 0;
async function newAccount() {
  const email = `signout-${++n}@example.test`;
  const password = "the-first-password";
  await callerFor(null).auth.signUp({ name: `Out ${n}`, email, password });
  const user = await db.user.findUniqueOrThrow({ where: { email } });
  return { user, email, password };
}

describe("signing out ends that session, copies of its cookie included", () => {
  test("after sign-out a copy of the cookie is no session; the user's other browsers stay signed in", async () => {
    const a = await newAccount();
    const laptop = await signIn(a.email, a.password);
    const phone = await signIn(a.email, a.password);
    const copy = laptop; // e.g. taken from the laptop before signing out
    assert.equal(await signedInAs(copy), a.user.id);
    await signOut(laptop);
    assert.equal(await signedInAs(copy), null);
    assert.equal(await signedInAs(phone), a.user.id);
    const sid = (await decode({ token: laptop, secret: SECRET }))!.sid as string;
    const row = await db.revokedSession.findUniqueOrThrow({ where: { sid } });
    assert.equal(row.userId, a.user.id);
    // Kept while any copy could still be alive: a copy in use was renewed up to now at most.
    const left = row.expiresAt.getTime() - Date.now();
    assert.ok(left > (SESSION_MAX_AGE_S - 60) * 1000 && left <= SESSION_MAX_AGE_S * 1000, `kept ${left} ms`);
    // Signing out twice (another tab) is harmless.
    await signOut(phone);
    await signOut(phone);
    assert.equal(await signedInAs(phone), null);
    assert.equal(await db.revokedSession.count({ where: { userId: a.user.id } }), 2);
  });

  test("every sign-in is its own session: signing in again after a sign-out works", async () => {
    const a = await newAccount();
    const first = await signIn(a.email, a.password);
    await signOut(first);
    const second = await signIn(a.email, a.password);
    assert.notEqual((await decode({ token: second, secret: SECRET }))!.sid, (await decode({ token: first, secret: SECRET }))!.sid);
    assert.equal(await signedInAs(second), a.user.id);
  });

  test("a session from before session ids keeps working and signing it out records nothing", async () => {
    const a = await newAccount();
    const old = await encode({ token: { sub: a.user.id, uid: a.user.id, sv: 0, email: a.email, name: null }, secret: SECRET, maxAge: SESSION_MAX_AGE_S });
    assert.equal(await signedInAs(old), a.user.id);
    await signOut(old);
    assert.equal(await db.revokedSession.count({ where: { userId: a.user.id } }), 0);
  });

  test("a user's revoked sessions are bounded: past the cap one version bump ends them all and the rows go", async () => {
    const a = await newAccount();
    const kept = await signIn(a.email, a.password);
    for (let i = 0; i < MAX_REVOKED_PER_USER; i++) await revokeSession({ uid: a.user.id, sid: `loop-${i}` }, SESSION_MAX_AGE_S);
    assert.equal(await db.revokedSession.count({ where: { userId: a.user.id } }), MAX_REVOKED_PER_USER);
    assert.equal(await signedInAs(kept), a.user.id);
    await revokeSession({ uid: a.user.id, sid: "one-more" }, SESSION_MAX_AGE_S);
    assert.equal(await db.revokedSession.count({ where: { userId: a.user.id } }), 0);
    assert.equal(await signedInAs(kept), null, "every session of the user ended with the bump");
    assert.equal(await signedInAs(await signIn(a.email, a.password)), a.user.id, "a new sign-in works");
  });

  test("pruning forgets revoked sessions past their lifetime and reset links a day past theirs", async () => {
    const a = await newAccount();
    const now = new Date();
    const at = (ms: number) => new Date(now.getTime() + ms);
    await db.revokedSession.createMany({
      data: [
        { sid: "gone-1", userId: a.user.id, expiresAt: at(-2 * 86_400_000) },
        { sid: "grace-1", userId: a.user.id, expiresAt: at(-3600_000) },
        { sid: "kept-1", userId: a.user.id, expiresAt: at(3600_000) },
      ],
    });
    await db.passwordResetToken.createMany({
      data: [
        { userId: a.user.id, tokenHash: "h-old", expiresAt: at(-2 * 86_400_000) },
        { userId: a.user.id, tokenHash: "h-recent", expiresAt: at(-3600_000) },
        { userId: a.user.id, tokenHash: "h-live", expiresAt: at(3600_000) },
      ],
    });
    const r = await pruneAuth(now);
    assert.ok(r.revokedSessions >= 1 && r.resetLinks >= 1);
    assert.deepEqual((await db.revokedSession.findMany({ where: { userId: a.user.id }, orderBy: { sid: "asc" } })).map((x) => x.sid), ["grace-1", "kept-1"]);
    assert.deepEqual(
      (await db.passwordResetToken.findMany({ where: { userId: a.user.id }, orderBy: { tokenHash: "asc" } })).map((x) => x.tokenHash),
      ["h-live", "h-recent"],
    );
    // The daily function runs the same.
    await db.revokedSession.create({ data: { sid: "gone-2", userId: a.user.id, expiresAt: at(-2 * 86_400_000) } });
    const t = new InngestTestEngine({ function: pruneAuthFunction });
    const { result } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: {} }] });
    assert.ok(result && typeof result === "object");
    assert.equal(await db.revokedSession.count({ where: { sid: "gone-2" } }), 0);
  });
});
