"use client";

import Link from "next/link";
import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useHydrated } from "@/app/_lib/hydrated";
import { signInWithPassword } from "@/app/_lib/sign-in";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";

export function SignUpForm({ callbackUrl }: { callbackUrl: string }) {
  const trpc = useTRPC();
  const signUp = useMutation(trpc.auth.signUp.mutationOptions());
  const [error, setError] = useState<string | null>(null);
  const hydrated = useHydrated();
  const fe = signUp.error ? fieldErrors(signUp.error) : {};

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setError(null);
    const form = new FormData(e.currentTarget);
    const input = { name: String(form.get("name")), email: String(form.get("email")), password: String(form.get("password")) };
    try {
      await signUp.mutateAsync(input);
    } catch (err) {
      if (!Object.keys(fieldErrors(err)).length) setError(errorMessage(err));
      return;
    }
    const res = await signInWithPassword(input.email, input.password, callbackUrl).catch(() => ({ error: "Unreachable" }));
    if (res.error) {
      setError("Your account was created, but signing in failed. Sign in manually.");
      return;
    }
    window.location.assign(callbackUrl);
  }

  return (
    <>
      <h1 className="mb-4 text-lg font-semibold">Create your account</h1>
      <form method="post" onSubmit={onSubmit} className="space-y-4" noValidate>
        <div>
          <label htmlFor="name" className="field-label">Name</label>
          <input id="name" name="name" autoComplete="name" required className="field-input" aria-invalid={!!fe.name} />
          {fe.name ? <p className="field-error">{fe.name}</p> : null}
        </div>
        <div>
          <label htmlFor="email" className="field-label">Email</label>
          <input id="email" name="email" type="email" autoComplete="email" required className="field-input" aria-invalid={!!fe.email} />
          {fe.email ? <p className="field-error">{fe.email}</p> : null}
        </div>
        <div>
          <label htmlFor="password" className="field-label">Password</label>
          <input id="password" name="password" type="password" autoComplete="new-password" required minLength={10} className="field-input" aria-invalid={!!fe.password} aria-describedby="pw-help" />
          <p id="pw-help" className="mt-1 text-xs text-gray-500">At least 10 characters.</p>
          {fe.password ? <p className="field-error">{fe.password}</p> : null}
        </div>
        {error ? <p role="alert" className="field-error">{error}</p> : null}
        <button type="submit" className="btn-primary w-full" disabled={!hydrated || signUp.isPending}>{signUp.isPending ? "Creating…" : "Create account"}</button>
      </form>
      <p className="mt-4 text-center text-sm text-gray-600">
        Already have an account? <Link className="font-medium text-blue-600 hover:underline" href={`/signin?callbackUrl=${encodeURIComponent(callbackUrl)}`}>Sign in</Link>
      </p>
    </>
  );
}
