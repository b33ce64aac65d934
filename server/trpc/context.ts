import { clientIp } from "../lib/client-ip";
import { currentUser, renewSession } from "../auth/session";
import type { Context, SessionUser } from "./init";

import { TEAM_COOKIE, TEAM_HEADER } from "../teams/cookie";
import { teamOfRequest } from "../teams/current";
export { TEAM_COOKIE, TEAM_HEADER };

function cookieValue(header: string | null, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join("="));
    } catch {
      return null; // malformed escape: treat as no selection rather than failing the request
    }
  }
  return null;
}

/**
 * The team of a request, decided by teamOfRequest: the `x-tuna-team` header if present (membership is
 * checked by teamProcedure, which answers NOT_FOUND for a team the caller is not in, never another team's
 * data), else the `tuna_team` cookie if the user is a member of that team, else their first team.
 */
export async function contextFor(req: Request, user: SessionUser | null): Promise<Context> {
  const teamId = user
    ? await teamOfRequest(user.id, req.headers.get(TEAM_HEADER), cookieValue(req.headers.get("cookie"), TEAM_COOKIE))
    : null;
  return {
    user,
    teamId,
    ip: clientIp(req.headers),
    userAgent: req.headers.get("user-agent")?.slice(0, 300) ?? null,
  };
}

/** The context of an HTTP request: its signed-in user (null for a revoked session, see currentUser). */
export async function createContextFromRequest(req: Request): Promise<Context> {
  return { ...(await contextFor(req, await currentUser())), renewSession };
}
