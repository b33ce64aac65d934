"use client";

import { useMutation } from "@tanstack/react-query";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { TEAM_COOKIE } from "@/server/teams/cookie";

export function AcceptInvite({ token, teamName, role, email }: { token: string; teamName: string; role: string; email: string }) {
  const trpc = useTRPC();
  const accept = useMutation(
    trpc.invite.accept.mutationOptions({
      onSuccess(r) {
        document.cookie = `${TEAM_COOKIE}=${encodeURIComponent(r.teamId)}; path=/; max-age=31536000; samesite=lax`;
        window.location.assign("/");
      },
    }),
  );
  return (
    <div className="space-y-4">
      <p className="text-sm text-gray-700">
        You have been invited to join <strong>{teamName}</strong> as <strong>{role}</strong>. You are signed in as {email}.
      </p>
      {accept.error ? <p role="alert" className="field-error">{errorMessage(accept.error)}</p> : null}
      <button type="button" className="btn-primary" disabled={accept.isPending} onClick={() => accept.mutate({ token })}>
        {accept.isPending ? "Joining…" : `Join ${teamName}`}
      </button>
    </div>
  );
}
