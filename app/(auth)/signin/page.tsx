import { redirect } from "next/navigation";
import { currentUser } from "@/server/auth/session";
import { enabledOAuthProviders } from "@/server/auth/options";
import { safeCallbackPath } from "@/server/auth/callback";
import { SignInForm } from "./SignInForm";

export const dynamic = "force-dynamic";

export default async function SignInPage({ searchParams }: { searchParams: Promise<{ callbackUrl?: string | string[]; error?: string }> }) {
  const sp = await searchParams;
  const callbackUrl = safeCallbackPath(sp.callbackUrl);
  if (await currentUser()) redirect(callbackUrl);
  return <SignInForm callbackUrl={callbackUrl} oauth={enabledOAuthProviders()} initialError={sp.error} />;
}
