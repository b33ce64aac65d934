import { cookies } from "next/headers";
import { listMyTeams } from "./service";

import { TEAM_COOKIE } from "./cookie";

/**
 * The one place that decides a request's current team: the requested one (the tuna_team cookie) only if
 * the user is a member of it, else their first team. The cookie is a preference that can go stale (another
 * user signed in on this browser, the user left or was removed), so it is never trusted as-is. Server
 * components (via currentTeamFor) and the tRPC context both use this, so they always agree.
 */
export async function resolveCurrentTeam(userId: string, requestedTeamId: string | null | undefined) {
  const teams = await listMyTeams(userId);
  const current = teams.find((t) => t.id === requestedTeamId) ?? teams[0] ?? null;
  return { teams, current };
}

/** The signed-in user's teams and the current one, for server components (reads the tuna_team cookie). */
export async function currentTeamFor(userId: string) {
  return resolveCurrentTeam(userId, (await cookies()).get(TEAM_COOKIE)?.value);
}
