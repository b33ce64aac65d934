import { randomBytes } from "node:crypto";
import type { Role } from "@prisma/client";
import { TRPCError } from "@trpc/server";
import { DomainError } from "../lib/errors";
import { db } from "../db";
import { createCaller } from "../trpc";
import type { SessionUser } from "../trpc";

/** Creates a user row directly (no password hashing: the fixture never signs in through next-auth). */
export async function makeUser(label = "user"): Promise<SessionUser> {
  const email = `${label}-${randomBytes(4).toString("hex")}@example.test`;
  const u = await db.user.create({ data: { email, name: label } });
  return { id: u.id, email, name: label };
}

export async function makeTeam(members: Array<{ user: SessionUser; role: Role }>, name = "Team") {
  const team = await db.team.create({ data: { name, slug: `${name.toLowerCase().replace(/\W+/g, "-")}-${randomBytes(4).toString("hex")}` } });
  for (const m of members) await db.membership.create({ data: { teamId: team.id, userId: m.user.id, role: m.role } });
  return team;
}

/** A tRPC caller acting as `user` on `teamId`, as the HTTP handler would build it. */
export function callerFor(user: SessionUser | null, teamId: string | null = null) {
  return createCaller({ user, teamId, ip: "127.0.0.1", userAgent: "test" });
}

/** A team with one member of each role plus an outsider (member of another team). */
export async function makeRoleFixture(name = "Acme") {
  const admin = await makeUser("admin");
  const developer = await makeUser("developer");
  const viewer = await makeUser("viewer");
  const outsider = await makeUser("outsider");
  const team = await makeTeam([
    { user: admin, role: "admin" },
    { user: developer, role: "developer" },
    { user: viewer, role: "viewer" },
  ], name);
  const otherTeam = await makeTeam([{ user: outsider, role: "admin" }], `${name}-other`);
  return { team, otherTeam, admin, developer, viewer, outsider };
}

/** "OK", or the tRPC / domain error code a call failed with (anything else is rethrown). */
export async function outcomeCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (e) {
    if (e instanceof TRPCError || e instanceof DomainError) return e.code;
    throw e;
  }
}
