import type { NextAuthOptions, Session } from "next-auth";
import { decode as decodeJwt } from "next-auth/jwt";
import CredentialsModule from "next-auth/providers/credentials";
import GitHubModule from "next-auth/providers/github";
import GoogleModule from "next-auth/providers/google";
import { getPrisma } from "../db";
import { appendAudit } from "../audit";
import { slugify, uniqueTeamSlug } from "../teams/slug";
import { clientIp } from "../lib/client-ip";
import { tunaAdapter } from "./adapter";
import { checkCredentials } from "./service";
import { activeSessionUser, newSessionId, revokeSession, signInVersion } from "./session-version";
import { type SignInProof, recordAccountLink, refreshAccountLabel } from "./account";

/** next-auth's provider modules are CommonJS with a default export: Next's bundler unwraps it, plain Node (tests) does not. */
function cjsDefault<T>(m: T): T {
  return (m as { default?: T }).default ?? m;
}
const CredentialsProvider = cjsDefault(CredentialsModule);
const GitHubProvider = cjsDefault(GitHubModule);
const GoogleProvider = cjsDefault(GoogleModule);

/** OAuth providers exist only when their env vars are set. */
function oauthProviders() {
  const list = [];
  if (process.env.GITHUB_ID && process.env.GITHUB_SECRET) {
    list.push(GitHubProvider({ clientId: process.env.GITHUB_ID, clientSecret: process.env.GITHUB_SECRET }));
  }
  if (process.env.GOOGLE_CLIENT_ID && process.env.GOOGLE_CLIENT_SECRET) {
    list.push(GoogleProvider({ clientId: process.env.GOOGLE_CLIENT_ID, clientSecret: process.env.GOOGLE_CLIENT_SECRET }));
  }
  return list;
}

/** How long a session lives without being used (it is renewed while used). */
export const SESSION_MAX_AGE_S = 7 * 24 * 3600;

export function enabledOAuthProviders(): Array<{ id: string; name: string }> {
  return oauthProviders().map((p) => ({ id: p.id, name: p.name }));
}

export function authOptions(): NextAuthOptions {
  return {
    // The adapter stores OAuth users/accounts (without their tokens); credentials sessions are JWTs (next-auth requires it).
    adapter: tunaAdapter(getPrisma()),
    session: { strategy: "jwt", maxAge: SESSION_MAX_AGE_S },
    jwt: {
      /*
       * Every reading of a session cookie decodes it here, next-auth's own included: the OAuth callback links a
       * provider account to the signed-in user without asking the session callback, and the session route renews
       * the cookie. So a revoked session (./session-version), or one of a deleted user, is no token at all here,
       * and its cookie is cleared. The user's name and email are read fresh with the check (one read by id).
       */
      async decode(params) {
        const token = await decodeJwt(params);
        if (!token) return null;
        const user = await activeSessionUser(token);
        return user ? { ...token, email: user.email, name: user.name } : null;
      },
    },
    pages: { signIn: "/signin", error: "/signin" },
    logger: {
      // A revoked session (jwt.decode answers null: next-auth's "JWT invalid") is routine, not an error with a
      // stack on every request of a browser still holding the cookie. Everything else as next-auth prints it.
      error(code, metadata) {
        const m = metadata as { message?: string; error?: { message?: string } } | undefined;
        if (code === "JWT_SESSION_ERROR" && (m?.message === "JWT invalid" || m?.error?.message === "JWT invalid")) return;
        console.error(`[next-auth][error][${code}]`, `\nhttps://next-auth.js.org/errors#${code.toLowerCase()}`, m?.message ?? "", metadata);
      },
    },
    providers: [
      CredentialsProvider({
        name: "Email and password",
        credentials: { email: { label: "Email", type: "email" }, password: { label: "Password", type: "password" } },
        async authorize(credentials, req) {
          const r = await checkCredentials(credentials?.email ?? "", credentials?.password ?? "", clientIp(req?.headers as Record<string, string> | undefined));
          if (!r.ok) {
            // One message for unknown email and wrong password alike; a lockout says only "try later".
            throw new Error(r.reason === "locked" ? "TooManyAttempts" : "CredentialsSignin");
          }
          // With the session version read together with the password hash (for the jwt callback below).
          return r.user;
        },
      }),
      ...oauthProviders(),
    ],
    callbacks: {
      async jwt({ token, user, account, profile }) {
        // At a GitHub/Google sign-in, next-auth hands this callback (unlike the linkAccount event) the provider's raw
        // profile: the link's label becomes the GitHub login, and follows a renamed login or email.
        const via = account?.type === "oauth" ? await refreshAccountLabel(account, profile) : null;
        // At sign-in only: the session stays valid while the account's session version is this one (./session-version).
        if (user) {
          token.uid = user.id;
          token.sv = await signInVersion(user);
          // This session's own id: signing out records it, so a copy of this cookie stops working too.
          token.sid = newSessionId();
          // How and when it signed in (also when a signed-in browser links a new account: then through that one).
          // Without a password, only a fresh sign-in through an older link may remove a newer one (account.ts).
          token.via = via;
          token.at = Math.floor(Date.now() / 1000);
        }
        return token;
      },
      async session({ session, token }) {
        // The token passed the revocation check in jwt.decode above, which also refreshed its name and email.
        if (typeof token.uid !== "string" || typeof token.email !== "string") return {} as Session;
        session.user = { ...session.user, email: token.email, name: typeof token.name === "string" ? token.name : null };
        (session.user as { id?: string }).id = token.uid;
        (session.user as { signIn?: SignInProof }).signIn = {
          via: typeof token.via === "string" ? token.via : null,
          at: typeof token.at === "number" ? token.at : null,
        };
        return session;
      },
    },
    events: {
      // "Sign out" in this browser ends this session everywhere its cookie was copied to, not only here. next-auth
      // decodes the cookie with jwt.decode above first (a revoked one is already nothing to end).
      async signOut({ token }) {
        await revokeSession(token, SESSION_MAX_AGE_S);
      },
      // A GitHub/Google account now signs in as this user (at its first sign-in, or linked by a signed-in browser):
      // its row gets what names it to a human (Settings → Sign-in methods lists it there, to be removed), and the
      // owner's teams see the link, since it outlives any password change or reset.
      async linkAccount({ user, account, profile }) {
        await recordAccountLink(user, account, profile);
      },
      // First OAuth sign-in: give the new user a personal team, as email sign-up does.
      async createUser({ user }) {
        const db = getPrisma();
        await db.$transaction(async (tx) => {
          const name = `${(user.name ?? user.email ?? "My").split(/[\s@]+/)[0]}'s team`;
          const team = await tx.team.create({ data: { name, slug: await uniqueTeamSlug(tx, slugify(name)), personal: true } });
          await tx.membership.create({ data: { teamId: team.id, userId: user.id, role: "admin" } });
          await appendAudit(tx, team.id, { userId: user.id, label: user.email ?? user.id }, { action: "user.signup", targetType: "user", targetId: user.id, metadata: { via: "oauth" } });
        });
      },
    },
  };
}
