import { PrismaAdapter } from "@next-auth/prisma-adapter";
import type { PrismaClient } from "@prisma/client";
import type { Adapter, AdapterAccount, AdapterUser } from "next-auth/adapters";
import { normalizeEmail } from "./email";

/** OAuth token fields the provider returns at sign-in. The app never calls the provider's API afterwards. */
const TOKEN_FIELDS = ["access_token", "refresh_token", "id_token"] as const;


function withNormalizedEmail<T extends { email?: string | null }>(user: T): T {
  return typeof user.email === "string" ? { ...user, email: normalizeEmail(user.email) } : user;
}

/**
 * The Prisma adapter, except that:
 * - linking an OAuth account stores none of the provider's tokens (those columns stay null): sign-in needs only
 *   the provider and account id, and a token kept in the database is one a database leak hands over. next-auth
 *   v4 writes Account rows only in linkAccount.
 * - emails are normalised (normalizeEmail) when a user is created or updated from a provider's profile and when
 *   next-auth looks a user up by email. Otherwise a GitHub user "Alice@Example.com" could neither use a password
 *   reset link nor be told that alice@example.com already signs in with a password (next-auth's
 *   OAuthAccountNotLinked check looks the profile's email up as given): a second account would be made.
 */
export function tunaAdapter(prisma: PrismaClient): Adapter {
  const base = PrismaAdapter(prisma);
  return {
    ...base,
    createUser: (user: Omit<AdapterUser, "id">) => base.createUser!(withNormalizedEmail(user)),
    getUserByEmail: (email: string) => base.getUserByEmail!(normalizeEmail(email)),
    updateUser: (user: Partial<AdapterUser> & Pick<AdapterUser, "id">) => base.updateUser!(withNormalizedEmail(user)),
    linkAccount: (account: AdapterAccount) => {
      const kept = { ...account };
      for (const f of TOKEN_FIELDS) delete kept[f];
      return base.linkAccount!(kept) as ReturnType<NonNullable<Adapter["linkAccount"]>>;
    },
  };
}
