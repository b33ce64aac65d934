/** Cookie holding the selected team id (a preference only: every request re-checks membership). */
export const TEAM_COOKIE = "tuna_team";

/** `document.cookie` assignment that selects `teamId` in this browser. */
export function teamCookieAssignment(teamId: string): string {
  return `${TEAM_COOKIE}=${encodeURIComponent(teamId)}; path=/; max-age=31536000; samesite=lax`;
}

/** `document.cookie` assignment that forgets the selection (sign-out, leaving the selected team). */
export const CLEAR_TEAM_COOKIE = `${TEAM_COOKIE}=; path=/; max-age=0; samesite=lax`;
