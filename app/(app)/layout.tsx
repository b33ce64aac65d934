import { headers } from "next/headers";
import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { currentUser } from "@/server/auth/session";
import { currentTeamFor } from "@/server/teams/current";
import { PATH_HEADER } from "@/app/_lib/path-header";
import { AppShell } from "./AppShell";

export const dynamic = "force-dynamic";

export default async function AppLayout({ children }: { children: ReactNode }) {
  const user = await currentUser();
  if (!user) {
    // Back to the page asked for after signing in (the path comes from proxy.ts; /signin checks it is local).
    const path = (await headers()).get(PATH_HEADER);
    redirect(path && path !== "/" ? `/signin?callbackUrl=${encodeURIComponent(path)}` : "/signin");
  }
  const { teams, current } = await currentTeamFor(user.id);
  return (
    <AppShell
      user={{ email: user.email, name: user.name }}
      teams={teams.map((t) => ({ id: t.id, name: t.name, role: t.role }))}
      currentTeamId={current?.id ?? null}
    >
      {current ? children : <p className="text-sm text-gray-600">You are not a member of any team. Create one to start.</p>}
    </AppShell>
  );
}
