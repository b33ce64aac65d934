import { cookies } from "next/headers";
import { listMyTeams } from "./service";

import { TEAM_COOKIE } from "./cookie";

/** The signed-in user's teams and the one selected by the tuna_team cookie (else their first team). */
export async function currentTeamFor(userId: string) {
  const teams = await listMyTeams(userId);
  const wanted = (await cookies()).get(TEAM_COOKIE)?.value;
  const current = teams.find((t) => t.id === wanted) ?? teams[0] ?? null;
  return { teams, current };
}
