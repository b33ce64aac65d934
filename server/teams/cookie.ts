/** Cookie holding the selected team id (a preference only: every request re-checks membership). */
export const TEAM_COOKIE = "tuna_team";

/** `document.cookie` assignment that selects `teamId` in this browser. */
export function teamCookieAssignment(teamId: string): string {
  return `${TEAM_COOKIE}=${encodeURIComponent(teamId)}; path=/; max-age=31536000; samesite=lax`;
}

/** `document.cookie` assignment that forgets the selection (sign-out, leaving the selected team). */
export const CLEAR_TEAM_COOKIE = `${TEAM_COOKIE}=; path=/; max-age=0; samesite=lax`;

/**
 * Request header naming the team a tRPC call acts on. The dashboard sends the team its page shows with every
 * call, so a tab keeps acting on that team when another tab changes the cookie; the server prefers it to the
 * cookie and checks membership (server/teams/current.ts, teamOfRequest).
 */
export const TEAM_HEADER = "x-tuna-team";
