/**
 * Browser sessions for tests, made the way next-auth makes them: credentials sign-in through the configured
 * provider and jwt callback, the cookie next-auth would set, and getServerSession to see who a cookie is.
 */
import { getServerSession } from "next-auth";
import { encode } from "next-auth/jwt";
import { SESSION_MAX_AGE_S, authOptions } from "../auth/options";
import { renewedSessionCookie } from "../auth/session";
import { createCaller, type SessionUser } from "../trpc";

process.env.NEXTAUTH_SECRET ??= "tuna-test-sessions-secret-tuna-test-sessions";
export const SECRET = process.env.NEXTAUTH_SECRET;
export const COOKIE = "next-auth.session-token";

type Authorize = (credentials: Record<string, string>, req: { headers: Record<string, string> }) => Promise<{ id: string; email: string; name: string | null }>;

/** A browser signing in with email and password, as next-auth does it: authorize(), the jwt callback, the cookie. */
export async function signIn(email: string, password: string): Promise<string> {
  const options = authOptions();
  const p = options.providers.find((x) => x.id === "credentials") as unknown as { options: { authorize: Authorize } };
  const user = await p.options.authorize({ email, password }, { headers: {} });
  const token = await options.callbacks!.jwt!({ token: { sub: user.id, email: user.email, name: user.name }, user, account: null, trigger: "signIn" } as never);
  return encode({ token, secret: SECRET, maxAge: SESSION_MAX_AGE_S });
}

/** Who a request with this session cookie is signed in as: what currentUser() gets from next-auth (null when signed out). */
export async function signedInAs(cookie: string): Promise<string | null> {
  const res = { getHeader() {}, setHeader() {}, setCookie() {} };
  const s = await getServerSession({ headers: {}, cookies: { [COOKIE]: cookie } } as never, res as never, authOptions());
  return (s?.user as { id?: string } | undefined)?.id ?? null;
}

/** A tRPC caller for `user` whose request arrived with `cookie`; `renewed` receives the cookie renewSession would set. */
export function callerWithSession(user: SessionUser, cookie: string, renewed: { value?: string } = {}) {
  return createCaller({
    user, teamId: null, ip: "127.0.0.1", userAgent: "test",
    renewSession: async (userId, version) => {
      const c = await renewedSessionCookie(cookie, userId, version);
      renewed.value = c?.value;
      return !!c;
    },
  });
}

/** The user a request with this session cookie has in its tRPC context (as currentUser() gives it), or null. */
export async function sessionUser(cookie: string): Promise<SessionUser | null> {
  const res = { getHeader() {}, setHeader() {}, setCookie() {} };
  const s = await getServerSession({ headers: {}, cookies: { [COOKIE]: cookie } } as never, res as never, authOptions());
  const u = s?.user as (SessionUser & { id?: string }) | undefined;
  return u?.id ? { id: u.id, email: u.email, name: u.name ?? null, signIn: u.signIn } : null;
}
