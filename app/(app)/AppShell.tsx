"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";
import { signOut } from "next-auth/react";
import { createContext, useContext, type ReactNode } from "react";
import { CLEAR_TEAM_COOKIE, teamCookieAssignment } from "@/server/teams/cookie";

interface TeamInfo {
  id: string;
  name: string;
  role: string;
}

const TeamContext = createContext<{ teamId: string | null; teamName: string | null; role: string | null; permissions: string[] }>({
  teamId: null,
  teamName: null,
  role: null,
  permissions: [],
});

/** The current team and what the caller's role may do there (UI hints only; the server enforces). */
export function useTeam() {
  const t = useContext(TeamContext);
  return { ...t, can: (p: string) => t.permissions.includes(p) };
}

export const NAV: Array<{ href: string; label: string; permission?: string }> = [
  { href: "/", label: "Overview" },
  { href: "/deployments", label: "Deployments", permission: "deployment.read" },
  { href: "/approvals", label: "Approvals", permission: "deployment.read" },
  { href: "/api-keys", label: "API keys", permission: "apikey.read" },
  { href: "/vault", label: "Vault", permission: "vault.read-metadata" },
  { href: "/alerts", label: "Alerts", permission: "alerts.read" },
  { href: "/catalog", label: "GPU catalog", permission: "deployment.read" },
  { href: "/members", label: "Members" },
  { href: "/audit", label: "Audit log", permission: "audit.read" },
  { href: "/settings", label: "Settings", permission: "team.read" },
];

export function AppShell(props: {
  user: { email: string; name: string | null };
  teams: TeamInfo[];
  currentTeamId: string | null;
  permissions: string[];
  children: ReactNode;
}) {
  const pathname = usePathname();
  const current = props.teams.find((t) => t.id === props.currentTeamId) ?? null;

  function switchTeam(id: string) {
    if (id === "__new") {
      window.location.assign("/teams/new");
      return;
    }
    document.cookie = teamCookieAssignment(id);
    window.location.assign("/");
  }

  function signOutAndForgetTeam() {
    // The selection belongs to this user; the next one to sign in on this browser starts from their own team.
    document.cookie = CLEAR_TEAM_COOKIE;
    void signOut({ callbackUrl: "/signin" });
  }

  return (
    <TeamContext.Provider value={{ teamId: current?.id ?? null, teamName: current?.name ?? null, role: current?.role ?? null, permissions: props.permissions }}>
      <div className="min-h-screen">
        <header className="border-b bg-white">
          <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-4 px-4 py-3">
            <Link href="/" className="text-lg font-semibold">Tuna</Link>
            <label className="sr-only" htmlFor="team-switcher">Team</label>
            <select
              id="team-switcher"
              data-testid="team-switcher"
              className="rounded-md border-gray-300 py-1 text-sm"
              value={current?.id ?? ""}
              onChange={(e) => switchTeam(e.target.value)}
            >
              {props.teams.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name} ({t.role})
                </option>
              ))}
              <option value="__new">+ New team…</option>
            </select>
            <nav aria-label="Main" className="flex flex-1 flex-wrap gap-1">
              {NAV.filter((n) => !n.permission || props.permissions.includes(n.permission)).map((n) => {
                const active = n.href === "/" ? pathname === "/" : pathname.startsWith(n.href);
                return (
                  <Link key={n.href} href={n.href} aria-current={active ? "page" : undefined} className={`rounded-md px-3 py-1.5 text-sm ${active ? "bg-blue-50 font-medium text-blue-700" : "text-gray-700 hover:bg-gray-100"}`}>
                    {n.label}
                  </Link>
                );
              })}
            </nav>
            <span className="text-sm text-gray-600" data-testid="current-user">{props.user.email}</span>
            <button type="button" className="btn-secondary" onClick={signOutAndForgetTeam}>Sign out</button>
          </div>
        </header>
        <main className="mx-auto max-w-7xl px-4 py-6">{props.children}</main>
      </div>
    </TeamContext.Provider>
  );
}
