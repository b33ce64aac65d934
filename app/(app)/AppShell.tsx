"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { signOut } from "next-auth/react";
import { createContext, useContext, useEffect, useId, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { errorMessage, TeamTRPCProvider, useTRPC } from "@/app/_lib/trpc";
import { permissionsOf, ROLES } from "@/server/rbac";
import { CLEAR_TEAM_COOKIE, TEAM_COOKIE, teamCookieAssignment } from "@/server/teams/cookie";

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

function permissionsOfRole(role: string | undefined): string[] {
  const known = ROLES.find((r) => r === role);
  return known ? permissionsOf(known) : [];
}

/** Opens `teamId` in this tab (and makes it the browser's choice for pages opened from now on). */
function openTeam(teamId: string) {
  document.cookie = teamCookieAssignment(teamId);
  window.location.assign("/");
}

/** The team the browser's cookie selects now (another tab may have changed it since this page loaded). */
function cookieTeamId(): string | null {
  if (typeof document === "undefined") return null;
  const pair = document.cookie.split("; ").find((c) => c.startsWith(`${TEAM_COOKIE}=`));
  if (!pair) return null;
  try {
    return decodeURIComponent(pair.slice(TEAM_COOKIE.length + 1)) || null;
  } catch {
    return null;
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { data?: { code?: string } } | null)?.data?.code === "NOT_FOUND";
}

export function AppShell(props: {
  user: { email: string; name: string | null };
  teams: TeamInfo[];
  /** The team of the tuna_team cookie when the server rendered the page: the one this tab shows from then on. */
  currentTeamId: string | null;
  children: ReactNode;
}) {
  const pathname = usePathname();
  const trpc = useTRPC();
  const qc = useQueryClient();
  // The team this tab shows and acts on is fixed when the page loads. A later server render (router.refresh)
  // reads the cookie, which another tab may have pointed at another team since: it refreshes the list of
  // teams, not this tab's choice, so the header and every call keep naming the same team.
  const [teamId] = useState(props.currentTeamId);
  const [loadedTeam] = useState(() => props.teams.find((t) => t.id === props.currentTeamId) ?? null);
  // Membership is re-read when the tab regains focus and whenever a call answers NOT_FOUND (what a team the
  // caller was removed from answers), so a removed member is told instead of left with a page of errors.
  const myTeams = useQuery({ ...trpc.me.teams.queryOptions(), enabled: teamId !== null });
  const teams: TeamInfo[] = myTeams.data ?? props.teams;
  const current = teams.find((t) => t.id === teamId) ?? null;
  const lost = teamId !== null && current === null;
  const shown = current ?? loadedTeam;
  const permissions = lost ? [] : permissionsOfRole(current?.role);

  useEffect(() => {
    const recheck = (error: unknown) => {
      if (isNotFound(error)) void qc.invalidateQueries({ queryKey: trpc.me.teams.queryKey() });
    };
    const stopQueries = qc.getQueryCache().subscribe((e) => {
      if (e.type === "updated" && e.action.type === "error") recheck(e.action.error);
    });
    const stopMutations = qc.getMutationCache().subscribe((e) => {
      if (e.type === "updated" && e.action.type === "error") recheck(e.action.error);
    });
    return () => {
      stopQueries();
      stopMutations();
    };
  }, [qc, trpc]);

  const [signOutError, setSignOutError] = useState<string | null>(null);
  async function signOutAndForgetTeam() {
    // The selection belongs to this user; the next one to sign in on this browser starts from their own team.
    document.cookie = CLEAR_TEAM_COOKIE;
    setSignOutError(null);
    try {
      // next-auth would send the browser to its callback URL on NEXTAUTH_URL's host, which need not be the one
      // this tab is on (127.0.0.1 vs localhost, an internal name): the user would land signed out of nothing,
      // without cookies. The sign-in page of this very origin instead: a fixed path, so never another site.
      const r = await signOut({ redirect: false, callbackUrl: "/signin" });
      // A refused CSRF token answers with next-auth's confirmation page instead: the session is still there.
      if (r.url.includes("csrf=true")) {
        setSignOutError("Sign-out did not go through. Reload the page and try again.");
        return;
      }
    } catch (e) {
      setSignOutError(errorMessage(e));
      return;
    }
    window.location.assign("/signin");
  }

  return (
    <TeamContext.Provider value={{ teamId: lost ? null : teamId, teamName: shown?.name ?? null, role: lost ? null : (current?.role ?? null), permissions }}>
      <TeamTRPCProvider teamId={teamId}>
        <div className="min-h-screen">
          <header className="border-b bg-white">
            <div className="mx-auto max-w-7xl px-4">
              <div className="flex items-center gap-3 py-2 sm:gap-4">
                <Link href="/" className="shrink-0 text-lg font-semibold">Tuna</Link>
                <TeamSwitcher teams={teams} current={shown} lost={lost} email={props.user.email} />
                <div className="ml-auto flex min-w-0 items-center gap-3">
                  <span className="hidden min-w-0 truncate text-sm text-gray-600 sm:block" data-testid="current-user" title={props.user.email}>{props.user.email}</span>
                  {signOutError ? <span role="alert" className="min-w-0 truncate text-sm text-red-700" title={signOutError}>{signOutError}</span> : null}
                  <button type="button" className="btn-secondary shrink-0" onClick={() => void signOutAndForgetTeam()}>Sign out</button>
                </div>
              </div>
              {lost ? null : <MainNav pathname={pathname} permissions={permissions} />}
            </div>
          </header>
          <main className="mx-auto max-w-7xl px-4 py-6">
            {/* Creating a team needs none, so that page stays usable when the tab's team is gone. */}
            {lost && pathname !== "/teams/new" ? <LostTeamNotice teamName={shown?.name ?? "this team"} teams={teams} /> : props.children}
          </main>
        </div>
      </TeamTRPCProvider>
    </TeamContext.Provider>
  );
}

/** One row that scrolls sideways on narrow screens, instead of wrapping into a header taller than the page. */
function MainNav({ pathname, permissions }: { pathname: string; permissions: string[] }) {
  const navRef = useRef<HTMLElement>(null);
  const links = NAV.filter((n) => !n.permission || permissions.includes(n.permission));
  const activeHref = links.find((n) => (n.href === "/" ? pathname === "/" : pathname.startsWith(n.href)))?.href ?? null;
  useEffect(() => {
    // The link of the open page stays in view when the row is scrolled sideways (phones).
    const nav = navRef.current;
    const active = activeHref ? nav?.querySelector<HTMLElement>(`a[href="${activeHref}"]`) : null;
    if (!nav || !active) return;
    if (active.offsetLeft < nav.scrollLeft || active.offsetLeft + active.offsetWidth > nav.scrollLeft + nav.clientWidth) {
      nav.scrollLeft = Math.max(0, active.offsetLeft - 16);
    }
  }, [activeHref]);
  return (
    <nav ref={navRef} aria-label="Main" className="relative -mx-4 flex gap-1 overflow-x-auto px-4 pb-2">
      {links.map((n) => {
        const active = n.href === activeHref;
        return (
          <Link
            key={n.href}
            href={n.href}
            aria-current={active ? "page" : undefined}
            className={`shrink-0 whitespace-nowrap rounded-md px-3 py-1.5 text-sm ${active ? "bg-blue-50 font-medium text-blue-700" : "text-gray-700 hover:bg-gray-100"}`}
          >
            {n.label}
          </Link>
        );
      })}
    </nav>
  );
}

/**
 * The team switcher: a button that shows the tab's team and opens a list of teams. Nothing happens until a
 * team is chosen (click, Enter or Space): arrow keys only move between the entries, so browsing them with the
 * keyboard neither switches team nor leaves for "New team" (as a <select> that acted on change did).
 */
function TeamSwitcher({ teams, current, lost, email }: { teams: TeamInfo[]; current: TeamInfo | null; lost: boolean; email: string }) {
  const [open, setOpen] = useState(false);
  const rootRef = useRef<HTMLDivElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const focusFirst = useRef(false);
  const panelId = useId();
  const label = current ? `${current.name} (${lost ? "no access" : current.role})` : "No team";

  useEffect(() => {
    const root = rootRef.current;
    if (!open || !root) return;
    if (focusFirst.current) {
      focusFirst.current = false;
      const items = menuItemsIn(root);
      (items.find((el) => el.getAttribute("aria-current") === "true") ?? items[0])?.focus();
    }
    // A click elsewhere, or focus moving on past the last entry (Tab), closes the list.
    const closeOnOutside = (e: Event) => {
      if (!root.contains(e.target as Node)) setOpen(false);
    };
    const closeOnFocusOut = (e: FocusEvent) => {
      if (e.relatedTarget && !root.contains(e.relatedTarget as Node)) setOpen(false);
    };
    document.addEventListener("pointerdown", closeOnOutside);
    root.addEventListener("focusout", closeOnFocusOut);
    return () => {
      document.removeEventListener("pointerdown", closeOnOutside);
      root.removeEventListener("focusout", closeOnFocusOut);
    };
  }, [open]);

  const menuItems = () => menuItemsIn(rootRef.current);

  function close(refocus: boolean) {
    setOpen(false);
    if (refocus) buttonRef.current?.focus();
  }

  function onButtonKeyDown(e: KeyboardEvent<HTMLButtonElement>) {
    if (e.key === "Escape" && open) {
      e.preventDefault();
      close(false);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      focusFirst.current = true;
      if (open) menuItems()[0]?.focus();
      else setOpen(true);
    }
  }

  function onPanelKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    const items = menuItems();
    const i = items.indexOf(document.activeElement as HTMLElement);
    const move = (to: number) => {
      e.preventDefault();
      items[(to + items.length) % items.length]?.focus();
    };
    if (e.key === "Escape") {
      e.preventDefault();
      close(true);
    } else if (e.key === "ArrowDown") move(i + 1);
    else if (e.key === "ArrowUp") move(i < 0 ? items.length - 1 : i - 1);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(items.length - 1);
  }

  function choose(team: TeamInfo) {
    if (team.id === current?.id && !lost) close(true);
    else openTeam(team.id);
  }

  return (
    <div ref={rootRef} className="relative min-w-0">
      <button
        ref={buttonRef}
        type="button"
        id="team-switcher"
        data-testid="team-switcher"
        className="flex w-full min-w-0 max-w-[11rem] items-center gap-1 rounded-md border border-gray-300 bg-white px-2.5 py-1.5 text-left text-sm hover:bg-gray-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-500 sm:max-w-xs"
        aria-expanded={open}
        aria-controls={panelId}
        title={label}
        onClick={() => setOpen((o) => !o)}
        onKeyDown={onButtonKeyDown}
      >
        <span className="sr-only">Team: </span>
        <span className="min-w-0 truncate font-medium">{current?.name ?? "No team"}</span>
        {current ? <span className={`shrink-0 ${lost ? "text-red-700" : "text-gray-500"}`}> ({lost ? "no access" : current.role})</span> : null}
        <span aria-hidden="true" className="ml-auto shrink-0 pl-1 text-gray-400">▾</span>
      </button>
      {open ? (
        <div
          id={panelId}
          role="group"
          aria-label="Switch team"
          className="absolute left-0 z-30 mt-1 w-72 max-w-[calc(100vw-2rem)] rounded-md bg-white py-1 text-sm shadow-lg ring-1 ring-gray-200"
          onKeyDown={onPanelKeyDown}
        >
          <p className="truncate px-3 py-1.5 text-xs text-gray-500 sm:hidden" title={email}>Signed in as {email}</p>
          <p className="px-3 py-1.5 text-xs font-medium uppercase tracking-wide text-gray-500">Switch team</p>
          <ul>
            {teams.map((t) => {
              const isCurrent = t.id === current?.id && !lost;
              return (
                <li key={t.id}>
                  <button
                    type="button"
                    data-team-menu-item
                    aria-current={isCurrent ? "true" : undefined}
                    title={`${t.name} (${t.role})`}
                    className={`flex w-full min-w-0 items-center gap-1 px-3 py-2 text-left hover:bg-gray-100 focus:bg-gray-100 focus:outline-none ${isCurrent ? "font-medium text-blue-700" : "text-gray-800"}`}
                    onClick={() => choose(t)}
                  >
                    <span className="min-w-0 truncate">{t.name}</span>
                    <span className="shrink-0 text-gray-500"> ({t.role})</span>
                    {isCurrent ? <span aria-hidden="true" className="ml-auto shrink-0 pl-2">✓</span> : null}
                  </button>
                </li>
              );
            })}
          </ul>
          <div className="my-1 border-t border-gray-100" />
          <Link href="/teams/new" data-team-menu-item className="block px-3 py-2 text-gray-800 hover:bg-gray-100 focus:bg-gray-100 focus:outline-none" onClick={() => setOpen(false)}>
            + New team…
          </Link>
        </div>
      ) : null}
    </div>
  );
}

function menuItemsIn(root: HTMLElement | null): HTMLElement[] {
  return Array.from(root?.querySelectorAll<HTMLElement>("[data-team-menu-item]") ?? []);
}

/** In place of a page whose team the user no longer belongs to: nothing of another team is shown instead. */
function LostTeamNotice({ teamName, teams }: { teamName: string; teams: TeamInfo[] }) {
  const selected = cookieTeamId();
  const next = teams.find((t) => t.id === selected) ?? teams[0] ?? null;
  return (
    <div role="alert" className="card max-w-xl space-y-3" data-testid="team-lost">
      <h1 className="text-lg font-semibold text-gray-900">You no longer have access to {teamName}</h1>
      <p className="text-sm text-gray-700">
        You were removed from this team, or it no longer exists, so this page stopped showing and changing its data.
      </p>
      {next ? (
        <button type="button" className="btn-primary" onClick={() => openTeam(next.id)}>
          Open {next.name}
        </button>
      ) : (
        <Link href="/teams/new" className="btn-primary">Create a team</Link>
      )}
    </div>
  );
}
