import { redirect } from "next/navigation";
import { currentUser } from "@/server/auth/session";
import { enabledOAuthProviders } from "@/server/auth/options";
import { safeCallbackPath } from "@/server/auth/callback";
import { SignInForm } from "./SignInForm";

export const dynamic = "force-dynamic";

/** What a page that sent the user here says, by a fixed key (`?notice=`): never text taken from the URL. */
const NOTICES: Record<string, string> = {
  "password-reset": "Your new password is set, and every session was signed out. Sign in with the new password.",
};

export default async function SignInPage({ searchParams }: { searchParams: Promise<{ callbackUrl?: string | string[]; error?: string; notice?: string }> }) {
  const sp = await searchParams;
  const callbackUrl = safeCallbackPath(sp.callbackUrl);
  if (await currentUser()) redirect(callbackUrl);
  return <SignInForm callbackUrl={callbackUrl} oauth={enabledOAuthProviders()} initialError={sp.error} notice={sp.notice ? NOTICES[sp.notice] : undefined} />;
}
