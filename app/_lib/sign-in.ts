import { withTransportErrors } from "./error-text";

const authFetch = withTransportErrors();

/**
 * next-auth's `signIn("credentials", { redirect: false })`, except when Tuna cannot be reached: next-auth then
 * either sends the browser to /api/auth/error (its first request, the provider list, failed: the user gets the
 * browser's own error page) or throws "Failed to fetch" from a form that stays "Signing in…". Here that is a
 * TransportError with a plain message for the form to show. The same two requests as next-auth makes (its CSRF
 * token, then the credentials callback asking for JSON); `error` is next-auth's code, null once signed in.
 */
export async function signInWithPassword(email: string, password: string, callbackUrl: string): Promise<{ error: string | null }> {
  const { csrfToken } = (await (await authFetch("/api/auth/csrf")).json()) as { csrfToken?: string };
  const res = await authFetch("/api/auth/callback/credentials", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ email, password, csrfToken: csrfToken ?? "", callbackUrl, json: "true" }),
  });
  const { url } = (await res.json()) as { url?: string };
  if (!url) return { error: "Unknown" };
  return { error: new URL(url, window.location.href).searchParams.get("error") };
}
