import { initTRPC, TRPCError } from "@trpc/server";
import type { Role } from "@prisma/client";
import superjson from "superjson";
import { z, ZodError } from "zod";
import { db } from "../db";
import type { AuditActor } from "../audit";
import { DomainError, ERROR_MAP } from "../lib/errors";
import { can, rolesWith, type Permission } from "../rbac";

export interface SessionUser {
  id: string;
  email: string;
  name?: string | null;
  /** How the session signed in (server/auth/account.ts SignInProof), for removing a GitHub/Google link. */
  signIn?: { via: string | null; at: number | null };
}

export interface Context {
  user: SessionUser | null;
  /** Team selected by the client (x-tuna-team header / tuna_team cookie). */
  teamId: string | null;
  ip: string | null;
  userAgent: string | null;
  /**
   * Re-issues the caller's own session at a new session version, in this response (server/auth/session.ts
   * renewSession). Only requests that arrive over HTTP have it; without it the caller is signed out too.
   */
  renewSession?: (userId: string, sessionVersion: number) => Promise<boolean>;
}

/**
 * Every procedure declares how it is reached: `public`, `authed` (any signed-in user, no team data) or
 * `team` with the permission it needs. The RBAC matrix test reads this and fails on a procedure without it.
 */
export interface Meta {
  access?: "public" | "authed" | "team";
  permission?: Permission;
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    transformer: superjson,
    isDev: false,
    errorFormatter({ shape, error }) {
      const cause = error.cause;
      const internal = error.code === "INTERNAL_SERVER_ERROR";
      if (internal) console.error("[trpc] internal error:", cause ?? error);
      return {
        ...shape,
        message: internal ? "Something went wrong on our side. Try again, and tell us if it persists." : shape.message,
        data: {
          code: shape.data.code,
          httpStatus: shape.data.httpStatus,
          path: shape.data.path,
          reason: cause instanceof DomainError ? (cause.reason ?? null) : null,
          zodError: cause instanceof ZodError ? z.flattenError(cause) : null,
        },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const mergeRouters = t.mergeRouters;

/** Maps domain errors to tRPC errors in one place (codes from ERROR_MAP). */
const mapDomainErrors = t.middleware(async ({ next }) => {
  const res = await next();
  if (!res.ok && res.error.cause instanceof DomainError) {
    const c = res.error.cause;
    throw new TRPCError({ code: ERROR_MAP[c.code].trpc, message: c.message, cause: c });
  }
  return res;
});

export const publicProcedure = t.procedure.meta({ access: "public" }).use(mapDomainErrors);

export const authedProcedure = t.procedure
  .meta({ access: "authed" })
  .use(mapDomainErrors)
  .use(({ ctx, next }) => {
    if (!ctx.user) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in to continue." });
    const actor: AuditActor & { userId: string } = { userId: ctx.user.id, label: ctx.user.email, ip: ctx.ip, userAgent: ctx.userAgent };
    return next({ ctx: { ...ctx, user: ctx.user, actor } });
  });

/**
 * Team procedures: the membership check is one query whose `where` includes the caller, the team and the
 * roles that hold `permission`. A stranger to the team gets NOT_FOUND (no hint that it exists); a member
 * whose role lacks the permission gets FORBIDDEN naming it.
 */
export function teamProcedure(permission: Permission) {
  return authedProcedure.meta({ access: "team", permission }).use(async ({ ctx, next }) => {
    const teamId = ctx.teamId;
    if (!teamId) throw new TRPCError({ code: "NOT_FOUND", message: "Team not found." });
    const membership = await db.membership.findFirst({
      where: { teamId, userId: ctx.user.id, role: { in: rolesWith(permission) } },
      select: { role: true },
    });
    if (!membership) {
      const other = await db.membership.findFirst({ where: { teamId, userId: ctx.user.id }, select: { role: true } });
      if (!other) throw new TRPCError({ code: "NOT_FOUND", message: "Team not found." });
      throw new DomainError("FORBIDDEN", `Your role (${other.role}) does not have the permission "${permission}".`, {
        reason: "missing_permission",
        details: { permission },
      });
    }
    const role: Role = membership.role;
    return next({ ctx: { ...ctx, teamId, role, can: (p: Permission) => can(role, p) } });
  });
}
