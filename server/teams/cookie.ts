/** Cookie holding the selected team id (a preference only: every request re-checks membership). */
export const TEAM_COOKIE = "tuna_team";
