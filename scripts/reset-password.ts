/**
 * A password reset link for a user who forgot their password (there is no mail server; server/auth/README.md):
 *   npm run reset-password -- <email>
 * prints a link, valid for one hour and for one use, to hand to that user over a channel you trust. It opens
 * the dashboard at NEXTAUTH_URL (else http://localhost:$PORT, port 3000 by default) and uses the database the
 * app uses: DATABASE_URL, else the embedded default's while `npm start` is running. Exit code 1 when no account
 * has that email.
 */
import { embeddedDefaultDatabaseUrl } from "../server/db/embedded";
import { createPasswordResetLink } from "../server/auth/reset";
import { getPrisma } from "../server/db";

const email = process.argv.slice(2).find((a) => !a.startsWith("-"));
if (!email || process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log("usage: npm run reset-password -- <email>   (needs the app's DATABASE_URL and NEXTAUTH_URL, if set)");
  process.exit(email ? 0 : 2);
}
if (!process.env.DATABASE_URL) {
  // The embedded default's database, while `npm start` is running.
  process.env.DATABASE_URL = embeddedDefaultDatabaseUrl();
}
const baseUrl = process.env.NEXTAUTH_URL ?? `http://localhost:${process.env.PORT ?? 3000}`;
let exitCode = 0;
try {
  const { link, expiresAt } = await createPasswordResetLink(email, baseUrl);
  console.log(`Password reset link for ${email.trim().toLowerCase()}, valid once until ${expiresAt.toISOString()}:`);
  console.log(link);
  console.log("Anyone with this link can set the account's password: give it only to the account's owner.");
} catch (e) {
  console.error(`reset-password: ${(e as Error).message}`);
  exitCode = 1;
} finally {
  await getPrisma().$disconnect();
}
process.exit(exitCode);
