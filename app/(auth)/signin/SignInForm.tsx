"use client";

import Link from "next/link";
import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { useHydrated } from "@/app/_lib/hydrated";
import { signInWithPassword } from "@/app/_lib/sign-in";
import { errorMessage } from "@/app/_lib/trpc";

const MESSAGES: Record<string, string> = {
  CredentialsSignin: "Email or password is incorrect.",
  TooManyAttempts: "Too many failed attempts. Wait 15 minutes and try again.",
  OAuthAccountNotLinked: "This email is already used with another sign-in method.",
};

export function SignInForm(props: { callbackUrl: string; oauth: Array<{ id: string; name: string }>; initialError?: string; notice?: string }) {
  const { callbackUrl, oauth, initialError, notice } = props;
  const [error, setError] = useState<string | null>(initialError ? (MESSAGES[initialError] ?? "Sign-in failed. Try again.") : null);
  const [pending, setPending] = useState(false);
  const hydrated = useHydrated();

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setPending(true);
    setError(null);
    let res: { error: string | null };
    try {
      res = await signInWithPassword(String(form.get("email")), String(form.get("password")), callbackUrl);
    } catch (err) {
      setPending(false);
      setError(errorMessage(err));
      return;
    }
    setPending(false);
    if (res.error) {
      setError(MESSAGES[res.error] ?? "Sign-in failed. Try again.");
      return;
    }
    window.location.assign(callbackUrl);
  }

  return (
    <>
      <h1 className="mb-4 text-lg font-semibold">Sign in</h1>
      {notice ? <p role="status" className="mb-4 rounded-md bg-green-50 p-3 text-sm text-green-900 ring-1 ring-green-200">{notice}</p> : null}
      <form method="post" onSubmit={onSubmit} className="space-y-4" noValidate>
        <div>
          <label htmlFor="email" className="field-label">Email</label>
          <input id="email" name="email" type="email" autoComplete="email" required className="field-input" />
        </div>
        <div>
          <label htmlFor="password" className="field-label">Password</label>
          <input id="password" name="password" type="password" autoComplete="current-password" required className="field-input" />
        </div>
        {error ? <p role="alert" className="field-error">{error}</p> : null}
        <button type="submit" className="btn-primary w-full" disabled={!hydrated || pending}>{pending ? "Signing in…" : "Sign in"}</button>
      </form>
      <p className="mt-3 text-sm text-gray-600">
        Forgot your password? Ask your Tuna operator to run <code className="text-xs">npm run reset-password -- &lt;email&gt;</code>.
      </p>
      {oauth.length ? (
        <div className="mt-4 space-y-2 border-t pt-4">
          {oauth.map((p) => (
            <button key={p.id} type="button" className="btn-secondary w-full" onClick={() => signIn(p.id, { callbackUrl })}>
              Continue with {p.name}
            </button>
          ))}
        </div>
      ) : null}
      <p className="mt-4 text-center text-sm text-gray-600">
        New to Tuna? <Link className="font-medium text-blue-600 hover:underline" href={`/signup?callbackUrl=${encodeURIComponent(callbackUrl)}`}>Create an account</Link>
      </p>
    </>
  );
}
