"use client";

import { useMutation } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useHydrated } from "@/app/_lib/hydrated";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { MIN_PASSWORD_LENGTH } from "@/server/auth/password-rules";

/** Where the user goes once the new password is set: every session was signed out, this browser's too. */
const AFTER_RESET = "/signin?notice=password-reset";

export function ResetPasswordForm({ token }: { token: string }) {
  const trpc = useTRPC();
  const reset = useMutation(trpc.auth.resetPassword.mutationOptions({ onSuccess: () => window.location.assign(AFTER_RESET) }));
  const hydrated = useHydrated();
  const fe = reset.error ? fieldErrors(reset.error) : {};

  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    reset.mutate({ token, password: String(f.get("password") ?? ""), confirmPassword: String(f.get("confirmPassword") ?? "") });
  }

  return (
    <form method="post" onSubmit={onSubmit} className="space-y-4" aria-label="Set a new password" noValidate>
      <div>
        <label htmlFor="password" className="field-label">New password</label>
        <input id="password" name="password" type="password" autoComplete="new-password" required minLength={MIN_PASSWORD_LENGTH} className="field-input" aria-invalid={!!fe.password} aria-describedby="pw-help" />
        <p id="pw-help" className="mt-1 text-xs text-gray-500">At least {MIN_PASSWORD_LENGTH} characters.</p>
        {fe.password ? <p className="field-error">{fe.password}</p> : null}
      </div>
      <div>
        <label htmlFor="confirm-password" className="field-label">New password again</label>
        <input id="confirm-password" name="confirmPassword" type="password" autoComplete="new-password" required className="field-input" aria-invalid={!!fe.confirmPassword} />
        {fe.confirmPassword ? <p className="field-error">{fe.confirmPassword}</p> : null}
      </div>
      {reset.error && !Object.keys(fe).length ? <p role="alert" className="field-error">{errorMessage(reset.error)}</p> : null}
      <button type="submit" className="btn-primary w-full" disabled={!hydrated || reset.isPending || reset.isSuccess}>
        {reset.isPending || reset.isSuccess ? "Saving…" : "Set new password"}
      </button>
    </form>
  );
}
