import { db } from "../db";
import { clientIp } from "../auth/options";
import { currentUser } from "../auth/session";
import type { Context } from "./init";

import { TEAM_COOKIE } from "../teams/cookie";
export { TEAM_COOKIE };

function cookieValue(header: string | null, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

/**
 * The selected team comes from the `x-tuna-team` header or the `tuna_team` cookie; without one, the
 * user's first team. Whether the user may act on it is decided per procedure (teamProcedure), not here.
 */
export async function createContextFromRequest(req: Request): Promise<Context> {
  const user = await currentUser();
  let teamId = req.headers.get("x-tuna-team") || cookieValue(req.headers.get("cookie"), TEAM_COOKIE);
  if (!teamId && user) {
    const first = await db.membership.findFirst({ where: { userId: user.id }, orderBy: { createdAt: "asc" }, select: { teamId: true } });
    teamId = first?.teamId ?? null;
  }
  return {
    user,
    teamId,
    ip: clientIp(req.headers),
    userAgent: req.headers.get("user-agent")?.slice(0, 300) ?? null,
  };
}
