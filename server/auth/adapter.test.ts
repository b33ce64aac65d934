import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { AdapterAccount } from "next-auth/adapters";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { authOptions } from "./options";
import { createPasswordResetLink } from "./reset";
import { signUp } from "./service";

await useTestDatabase();

describe("OAuth accounts", () => {
  test("linking an account stores none of the provider's tokens", async () => {
    const adapter = authOptions().adapter!; // the adapter next-auth is configured with
    const user = await adapter.createUser!({ email: "octo@example.test", emailVerified: null, name: "Octo" } as never);
    const account: AdapterAccount = {
      userId: user.id,
      type: "oauth",
      provider: "github",
      providerAccountId: "12345",
      access_token: "gho_secretaccesstoken",
      refresh_token: "ghr_secretrefreshtoken",
      id_token: "eyJhbGciOi.secret.idtoken",
      token_type: "bearer",
      scope: "read:user,user:email",
      expires_at: 1_900_000_000,
    };
    await adapter.linkAccount!(account);
    const row = await db.account.findUniqueOrThrow({ where: { provider_providerAccountId: { provider: "github", providerAccountId: "12345" } } });
    assert.deepEqual(
      { access_token: row.access_token, refresh_token: row.refresh_token, id_token: row.id_token },
      { access_token: null, refresh_token: null, id_token: null },
    );
    // What sign-in needs is kept: the link from the provider's account to the user.
    assert.deepEqual({ userId: row.userId, type: row.type, scope: row.scope }, { userId: user.id, type: "oauth", scope: "read:user,user:email" });
    const linked = await adapter.getUserByAccount!({ provider: "github", providerAccountId: "12345" });
    assert.equal(linked?.id, user.id);
    const raw = JSON.stringify(await db.account.findMany());
    for (const secret of ["gho_secret", "ghr_secret", "secret.idtoken"]) assert.ok(!raw.includes(secret), secret);
  });
});

/** next-auth's own OAuth sign-in step (core/lib/callback-handler.js), with the options Tuna configures. */
const require = createRequire(import.meta.url);
const callbackHandler: (params: unknown) => Promise<{ user: { id: string; email: string | null } }> = require(
  join(dirname(require.resolve("next-auth")), "core/lib/callback-handler.js"),
).default;

function oauthSignIn(profile: { id: string; email: string; name: string }, providerAccountId: string) {
  const options = authOptions();
  return callbackHandler({
    sessionToken: undefined,
    profile,
    account: { provider: "github", type: "oauth", providerAccountId },
    options: { ...options, jwt: { ...options.jwt, secret: "adapter-test-secret" }, provider: { id: "github" }, session: { strategy: "jwt", generateSessionToken: () => "unused" } },
  });
}

describe("emails with capitals from a GitHub/Google profile", () => {
  test("a user made at a first sign-in keeps the email lowercased, and is found by it in any case", async () => {
    const { user } = await oauthSignIn({ id: "gh-501", email: " Octo.Cat@Example.TEST ", name: "Octo Cat" }, "501");
    assert.equal(user.email, "octo.cat@example.test");
    assert.equal((await db.user.findUniqueOrThrow({ where: { id: user.id } })).email, "octo.cat@example.test");
    const adapter = authOptions().adapter!;
    assert.equal((await adapter.getUserByEmail!("OCTO.CAT@example.test"))?.id, user.id);
    await adapter.updateUser!({ id: user.id, email: "Octo.Cat@Example.Org" });
    assert.equal((await db.user.findUniqueOrThrow({ where: { id: user.id } })).email, "octo.cat@example.org");
    // The operator's reset link finds the account (it looks the typed email up lowercased).
    const { link } = await createPasswordResetLink("Octo.Cat@Example.Org", "http://localhost:3000");
    assert.match(link, /token=/);
    // Signing in again with the same GitHub account is the same user.
    assert.equal((await oauthSignIn({ id: "gh-501", email: "Octo.Cat@Example.TEST", name: "Octo Cat" }, "501")).user.id, user.id);
  });

  test("a GitHub account whose email is a password account's in other case is refused, not made a second account", async () => {
    await signUp({ name: "Alice", email: "alice.case@example.test", password: "a-long-password-1" }, {});
    const before = await db.user.count();
    await assert.rejects(oauthSignIn({ id: "gh-502", email: "Alice.Case@Example.test", name: "Alice" }, "502"), (e: Error) => e.name === "AccountNotLinkedError" || /same e-mail/.test(e.message));
    assert.equal(await db.user.count(), before);
    assert.equal(await db.account.count({ where: { provider: "github", providerAccountId: "502" } }), 0);
  });

  test("the migration lowercases stored emails, except where two users differ only by case", async () => {
    const sql = readFileSync(new URL("../../prisma/migrations/20261203000000_lowercase_emails/migration.sql", import.meta.url), "utf8");
    const made = await Promise.all(
      ["Mixed.Case@Example.test", "twin@example.test", "Twin@Example.test", "TWIN2@example.test", "Twin2@example.test", "plain@example.test"].map((email) =>
        db.user.create({ data: { email } }),
      ),
    );
    await db.user.create({ data: { email: null, name: "no email" } });
    await db.$executeRawUnsafe(sql);
    await db.$executeRawUnsafe(sql); // runs twice the same
    const after = await db.user.findMany({ where: { id: { in: made.map((u) => u.id) } }, select: { id: true, email: true } });
    const byId = new Map(after.map((u) => [u.id, u.email]));
    assert.deepEqual(
      made.map((u) => byId.get(u.id)),
      ["mixed.case@example.test", "twin@example.test", "Twin@Example.test", "TWIN2@example.test", "Twin2@example.test", "plain@example.test"],
    );
  });
});
