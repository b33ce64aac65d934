"use client";

import { useMutation } from "@tanstack/react-query";
import { useHydrated } from "@/app/_lib/hydrated";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { teamCookieAssignment } from "@/server/teams/cookie";

export function AcceptInvite({ token, teamName, role, email }: { token: string; teamName: string; role: string; email: string }) {
  const trpc = useTRPC();
  // A click before hydration would do nothing at all: the button waits for it.
  const hydrated = useHydrated();
  const accept = useMutation(
    trpc.invite.accept.mutationOptions({
      onSuccess(r) {
        document.cookie = teamCookieAssignment(r.teamId);
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
      <button type="button" className="btn-primary" disabled={!hydrated || accept.isPending} onClick={() => accept.mutate({ token })}>
        {accept.isPending ? "Joining…" : `Join ${teamName}`}
      </button>
    </div>
  );
}
