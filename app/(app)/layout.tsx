import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { currentUser } from "@/server/auth/session";
import { currentTeamFor } from "@/server/teams/current";
import { permissionsOf } from "@/server/rbac";
import { AppShell } from "./AppShell";

export const dynamic = "force-dynamic";

export default async function AppLayout({ children }: { children: ReactNode }) {
  const user = await currentUser();
  if (!user) redirect("/signin");
  const { teams, current } = await currentTeamFor(user.id);
  return (
    <AppShell
      user={{ email: user.email, name: user.name }}
      teams={teams.map((t) => ({ id: t.id, name: t.name, role: t.role }))}
      currentTeamId={current?.id ?? null}
      permissions={current ? permissionsOf(current.role) : []}
    >
      {current ? children : <p className="text-sm text-gray-600">You are not a member of any team. Create one to start.</p>}
    </AppShell>
  );
}
