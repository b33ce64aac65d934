/**
 * How an email is kept and compared everywhere: trimmed and lowercased. Sign-up, sign-in, reset links and the
 * next-auth adapter (GitHub/Google profiles, which may carry capitals) all go through it.
 */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
