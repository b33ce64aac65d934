import { redirect } from "next/navigation";
import { currentUser } from "@/server/auth/session";
import { safeCallbackPath } from "@/server/auth/callback";
import { SignUpForm } from "./SignUpForm";

export const dynamic = "force-dynamic";

export default async function SignUpPage({ searchParams }: { searchParams: Promise<{ callbackUrl?: string | string[] }> }) {
  const sp = await searchParams;
  const callbackUrl = safeCallbackPath(sp.callbackUrl);
  if (await currentUser()) redirect(callbackUrl);
  return <SignUpForm callbackUrl={callbackUrl} />;
}
