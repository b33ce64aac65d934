import { PrismaAdapter } from "@next-auth/prisma-adapter";
import type { PrismaClient } from "@prisma/client";
import type { Adapter, AdapterAccount } from "next-auth/adapters";

/** OAuth token fields the provider returns at sign-in. The app never calls the provider's API afterwards. */
const TOKEN_FIELDS = ["access_token", "refresh_token", "id_token"] as const;

/**
 * The Prisma adapter, except that linking an OAuth account stores none of the provider's tokens (those
 * columns stay null): sign-in needs only the provider and account id, and a token kept in the database is
 * one a database leak hands over. next-auth v4 writes Account rows only in linkAccount.
 */
export function tunaAdapter(prisma: PrismaClient): Adapter {
  const base = PrismaAdapter(prisma);
  return {
    ...base,
    linkAccount: (account: AdapterAccount) => {
      const kept = { ...account };
      for (const f of TOKEN_FIELDS) delete kept[f];
      return base.linkAccount!(kept) as ReturnType<NonNullable<Adapter["linkAccount"]>>;
    },
  };
}
