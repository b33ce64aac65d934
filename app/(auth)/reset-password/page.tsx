import type { Metadata } from "next";
import Link from "next/link";
import { RESET_LINK_INVALID, resetLinkUsable } from "@/server/auth/reset";
import { ResetPasswordForm } from "./ResetPasswordForm";

export const dynamic = "force-dynamic";
// The link's token is in this page's address: browsers must not pass it on as a Referer.
export const metadata: Metadata = { referrer: "no-referrer" };

/** Opened from a link an operator printed (`npm run reset-password -- <email>`, server/auth/reset.ts). */
export default async function ResetPasswordPage({ searchParams }: { searchParams: Promise<{ token?: string | string[] }> }) {
  const sp = await searchParams;
  const token = typeof sp.token === "string" ? sp.token : "";
  return (
    <>
      <h1 className="mb-4 text-lg font-semibold">Set a new password</h1>
      {(await resetLinkUsable(token)) ? <ResetPasswordForm token={token} /> : <p role="alert" className="field-error">{RESET_LINK_INVALID}</p>}
      <p className="mt-4 text-center text-sm text-gray-600">
        <Link className="font-medium text-blue-600 hover:underline" href="/signin">Back to sign in</Link>
      </p>
    </>
  );
}
