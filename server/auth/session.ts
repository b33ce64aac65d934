import { getServerSession } from "next-auth";
import { decode, encode } from "next-auth/jwt";
import { cookies } from "next/headers";
import { SESSION_MAX_AGE_S, authOptions } from "./options";

export interface SessionUserInfo {
  id: string;
  email: string;
  name: string | null;
  /** How this session signed in (a GitHub/Google link and when); absent where only the user is known. */
  signIn?: { via: string | null; at: number | null };
}

/**
 * The signed-in user of this request, or null. Server components and the tRPC context (so every procedure and
 * the audit export) resolve the user here; next-auth's session callback reads the user's row and answers a
 * revoked session (./session-version) as no session, so null then too.
 */
export async function currentUser(): Promise<SessionUserInfo | null> {
  const s = await getServerSession(authOptions());
  const u = s?.user as { id?: string; email?: string | null; name?: string | null; signIn?: SessionUserInfo["signIn"] } | undefined;
  if (!u?.id || !u.email) return null;
  return { id: u.id, email: u.email, name: u.name ?? null, signIn: u.signIn ?? { via: null, at: null } };
}

/** next-auth's session cookie as it names and flags it (its defaults, which options.ts keeps). */
function sessionCookie() {
  const secure = process.env.NEXTAUTH_URL?.startsWith("https://") ?? !!process.env.VERCEL;
  return { name: `${secure ? "__Secure-" : ""}next-auth.session-token`, options: { httpOnly: true, sameSite: "lax" as const, path: "/", secure } };
}

// next-auth splits a larger token over several cookies; ours are far smaller, and a split one is not renewed.
const MAX_SINGLE_COOKIE = 3_900;

/**
 * The cookie that gives a browser its session back at `sessionVersion`: the same claims as its current session
 * cookie `value`, newly signed. Null when `value` is no session of `userId` that was current just before the
 * version became `sessionVersion`: a session revoked by another bump while its request was under way stays out.
 */
export async function renewedSessionCookie(value: string | undefined, userId: string, sessionVersion: number) {
  const secret = process.env.NEXTAUTH_SECRET ?? process.env.AUTH_SECRET ?? "";
  const token = value ? await decode({ token: value, secret }).catch(() => null) : null;
  if (!token || token.uid !== userId || (typeof token.sv === "number" ? token.sv : 0) !== sessionVersion - 1) return null;
  const renewed = await encode({ token: { ...token, sv: sessionVersion }, secret, maxAge: SESSION_MAX_AGE_S });
  if (renewed.length > MAX_SINGLE_COOKIE) return null;
  const { name, options } = sessionCookie();
  return { name, value: renewed, options: { ...options, expires: new Date(Date.now() + SESSION_MAX_AGE_S * 1000) } };
}

/**
 * After this request raised the user's session version (password changed, other sessions signed out), keeps
 * this browser signed in: its session cookie is re-issued at the new version in this response. Only the
 * response to the request that raised the version can do this, so a stolen copy of the old cookie stays
 * revoked (nothing lets an old session catch up with the version later). False when there was no renewable
 * session cookie: the browser is then signed out like the others. Route handlers only (it sets a cookie).
 */
export async function renewSession(userId: string, sessionVersion: number): Promise<boolean> {
  const jar = await cookies();
  const cookie = await renewedSessionCookie(jar.get(sessionCookie().name)?.value, userId, sessionVersion);
  if (!cookie) return false;
  jar.set(cookie.name, cookie.value, cookie.options);
  return true;
}
