import { cookies } from "next/headers";
import { listMyTeams } from "./service";

import { TEAM_COOKIE } from "./cookie";

/**
 * The one place that decides a request's current team: the requested one (the tuna_team cookie) only if
 * the user is a member of it, else their first team. The cookie is a preference that can go stale (another
 * user signed in on this browser, the user left or was removed), so it is never trusted as-is. Server
 * components (via currentTeamFor) and tRPC calls that name no team (teamOfRequest) both use this, so a page
 * the server renders and the calls it makes agree until another tab changes the cookie; the dashboard's calls
 * therefore name their page's team.
 */
export async function resolveCurrentTeam(userId: string, requestedTeamId: string | null | undefined) {
  const teams = await listMyTeams(userId);
  const current = teams.find((t) => t.id === requestedTeamId) ?? teams[0] ?? null;
  return { teams, current };
}

/**
 * The team a tRPC request acts on. A team the request names itself (the x-tuna-team header: the team the
 * browser tab shows, or an API client's choice) wins over the cookie and is never swapped for another one:
 * the caller's membership is checked where the team is used (teamProcedure's `where`), so a team the user no
 * longer belongs to, or never did, answers NOT_FOUND instead of quietly serving the cookie's team. That cookie
 * is shared by every tab of the browser, so following it would let a tab act on a team it does not show.
 * Without a named team, the cookie's preference as for server components.
 */
export async function teamOfRequest(userId: string, namedTeamId: string | null | undefined, cookieTeamId: string | null | undefined) {
  const named = namedTeamId?.trim();
  if (named) return named;
  return (await resolveCurrentTeam(userId, cookieTeamId)).current?.id ?? null;
}

/** The signed-in user's teams and the current one, for server components (reads the tuna_team cookie). */
export async function currentTeamFor(userId: string) {
  return resolveCurrentTeam(userId, (await cookies()).get(TEAM_COOKIE)?.value);
}
