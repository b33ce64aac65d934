import { clientIp } from "../lib/client-ip";
import { currentUser } from "../auth/session";
import type { Context, SessionUser } from "./init";

import { TEAM_COOKIE } from "../teams/cookie";
import { resolveCurrentTeam } from "../teams/current";
export { TEAM_COOKIE };

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
 * The selected team: an `x-tuna-team` header is an explicit choice by an API client and is passed on as-is
 * (teamProcedure answers NOT_FOUND if the caller is not a member, rather than silently acting on another
 * team). Otherwise the team is decided by resolveCurrentTeam, as for server components: the `tuna_team`
 * cookie if the user is a member of that team, else their first team.
 */
export async function contextFor(req: Request, user: SessionUser | null): Promise<Context> {
  let teamId: string | null = req.headers.get("x-tuna-team") || null;
  if (!teamId && user) {
    const { current } = await resolveCurrentTeam(user.id, cookieValue(req.headers.get("cookie"), TEAM_COOKIE));
    teamId = current?.id ?? null;
  }
  return {
    user,
    teamId,
    ip: clientIp(req.headers),
    userAgent: req.headers.get("user-agent")?.slice(0, 300) ?? null,
  };
}

export async function createContextFromRequest(req: Request): Promise<Context> {
  return contextFor(req, await currentUser());
}
