import { redirect } from "next/navigation";
import { currentUser } from "@/server/auth/session";
import { SignUpForm } from "./SignUpForm";

export const dynamic = "force-dynamic";

export default async function SignUpPage({ searchParams }: { searchParams: Promise<{ callbackUrl?: string }> }) {
  const sp = await searchParams;
  const callbackUrl = sp.callbackUrl?.startsWith("/") ? sp.callbackUrl : "/";
  if (await currentUser()) redirect(callbackUrl);
  return <SignUpForm callbackUrl={callbackUrl} />;
}
