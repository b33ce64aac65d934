const ORIGIN = "http://x";

/**
 * Where to go after sign-in / sign-up: `value` if it is a path on this site, else "/". Browsers treat
 * "//host" and "/\host" as other origins and drop tabs and newlines before parsing ("/\t/host"), so a
 * plain startsWith("/") is an open redirect. Pure (no server imports): safe to use in client code too.
 */
export function safeCallbackPath(value: unknown): string {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//") || value.includes("\\")) return "/";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return "/";
  }
  try {
    if (new URL(value, ORIGIN).origin !== ORIGIN) return "/";
  } catch {
    return "/";
  }
  return value;
}
