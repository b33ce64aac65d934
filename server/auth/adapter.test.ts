import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AdapterAccount } from "next-auth/adapters";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { authOptions } from "./options";

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
