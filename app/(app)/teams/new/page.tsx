"use client";

import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { PageHeader } from "@/app/_components/ui";
import { useHydrated } from "@/app/_lib/hydrated";
import { teamCookieAssignment } from "@/server/teams/cookie";

export default function NewTeamPage() {
  const trpc = useTRPC();
  const create = useMutation(trpc.me.createTeam.mutationOptions());
  const [error, setError] = useState<string | null>(null);
  const hydrated = useHydrated();
  const fe = create.error ? fieldErrors(create.error) : {};

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setError(null);
    try {
      const team = await create.mutateAsync({ name: String(new FormData(e.currentTarget).get("name")) });
      document.cookie = teamCookieAssignment(team.id);
      window.location.assign("/members");
    } catch (err) {
      if (!Object.keys(fieldErrors(err)).length) setError(errorMessage(err));
    }
  }

  return (
    <div className="max-w-md">
      <PageHeader title="Create a team" description="You become its admin. Invite others from the Members page." />
      <form method="post" onSubmit={onSubmit} className="card space-y-4" noValidate>
        <div>
          <label htmlFor="team-name" className="field-label">Team name</label>
          <input id="team-name" name="name" required className="field-input" aria-invalid={!!fe.name} />
          {fe.name ? <p className="field-error">{fe.name}</p> : null}
        </div>
        {error ? <p role="alert" className="field-error">{error}</p> : null}
        <button type="submit" className="btn-primary" disabled={!hydrated || create.isPending}>{create.isPending ? "Creating…" : "Create team"}</button>
      </form>
    </div>
  );
}
