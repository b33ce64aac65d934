import { z } from "zod";
import { Role } from "@prisma/client";
import {
  accountSecurity, changePassword, changePasswordInput, resetPassword, resetPasswordInput, signInMethods, signOutOtherSessions, signOutOtherSessionsInput, signUp, signUpInput,
  unlinkAccount, unlinkAccountInput,
} from "../../auth";
import { listAudit, verifyAuditChain } from "../../audit";
import { exportAuditCsv, recordAuditExport } from "../../audit/export";
import { permissionsOf, PERMISSIONS } from "../../rbac";
import * as teams from "../../teams";
import { authedProcedure, type Context, publicProcedure, router, teamProcedure } from "../init";

const roleSchema = z.enum(Role);
const idSchema = z.string().min(1).max(64);
/** One rule for a team's name, so creating and renaming a team answer with the same words. */
const teamNameSchema = z.string().trim().min(2, "Use at least 2 characters").max(60);

export const authRouter = router({
  signUp: publicProcedure.input(signUpInput).mutation(async ({ input, ctx }) => {
    const r = await signUp(input, { ip: ctx.ip, userAgent: ctx.userAgent });
    return { teamId: r.teamId };
  }),
  /** A new password with an operator's reset link (server/auth/reset.ts); the user then signs in with it. */
  resetPassword: publicProcedure.input(resetPasswordInput).mutation(async ({ input, ctx }) => {
    await resetPassword(input, { ip: ctx.ip, userAgent: ctx.userAgent });
    return { ok: true as const };
  }),
});

/**
 * After the user's session version was raised: every other session is signed out, and this one continues when
 * its cookie could be renewed in this response (`signedIn`), else it is signed out as well.
 */
async function keepThisSession(ctx: Pick<Context, "renewSession"> & { user: { id: string } }, r: { sessionVersion: number }) {
  return { signedIn: (await ctx.renewSession?.(ctx.user.id, r.sessionVersion)) ?? false };
}

export const meRouter = router({
  get: authedProcedure.query(({ ctx }) => ({ id: ctx.user.id, email: ctx.user.email, name: ctx.user.name ?? null })),
  teams: authedProcedure.query(({ ctx }) => teams.listMyTeams(ctx.user.id)),
  createTeam: authedProcedure
    .input(z.object({ name: teamNameSchema }))
    .mutation(({ ctx, input }) => teams.createTeam(ctx.actor, input.name)),
  /** What the Password card in Settings shows: a form, or that the account signs in with GitHub/Google. */
  account: authedProcedure.query(({ ctx }) => accountSecurity(ctx.user.id)),
  changePassword: authedProcedure
    .input(changePasswordInput)
    .mutation(async ({ ctx, input }) => keepThisSession(ctx, await changePassword(ctx.actor, input))),
  signOutOtherSessions: authedProcedure
    .input(signOutOtherSessionsInput.optional())
    .mutation(async ({ ctx, input }) => keepThisSession(ctx, await signOutOtherSessions(ctx.actor, input ?? {}))),
  /** The Sign-in methods card: whether there is a password, and the GitHub/Google accounts that sign in as the user. */
  signInMethods: authedProcedure.query(({ ctx }) => signInMethods(ctx.user.id, ctx.user.signIn ?? null)),
  /** Removes one of those accounts; every other session is signed out, as by signOutOtherSessions. */
  unlinkAccount: authedProcedure
    .input(unlinkAccountInput)
    .mutation(async ({ ctx, input }) => keepThisSession(ctx, await unlinkAccount(ctx.actor, input, ctx.user.signIn ?? null))),
});

export const inviteRouter = router({
  preview: authedProcedure.input(z.object({ token: z.string().min(8).max(200) })).query(({ input }) => teams.previewInvite(input.token)),
  accept: authedProcedure
    .input(z.object({ token: z.string().min(8).max(200) }))
    .mutation(({ ctx, input }) => teams.acceptInvite(ctx.actor, input.token)),
});

export const teamRouter = router({
  get: teamProcedure("team.read").query(async ({ ctx }) => ({
    ...(await teams.getTeam(ctx.teamId)),
    role: ctx.role,
    permissions: permissionsOf(ctx.role),
  })),
  rename: teamProcedure("team.update")
    .input(z.object({ name: teamNameSchema }))
    .mutation(({ ctx, input }) => teams.renameTeam(ctx.teamId, ctx.actor, input.name)),
  members: teamProcedure("team.read").query(({ ctx }) => teams.listMembers(ctx.teamId)),
  permissionTable: teamProcedure("team.read").query(() =>
    Object.entries(PERMISSIONS).map(([permission, v]) => ({ permission, roles: [...v.roles], description: v.description })),
  ),
  invites: teamProcedure("member.manage").query(({ ctx }) => teams.listInvites(ctx.teamId)),
  invite: teamProcedure("member.manage")
    .input(z.object({ role: roleSchema, email: z.email().optional(), ttlHours: z.number().int().min(1).max(24 * 30).optional() }))
    .mutation(({ ctx, input }) => teams.createInvite(ctx.teamId, ctx.actor, input)),
  revokeInvite: teamProcedure("member.manage")
    .input(z.object({ inviteId: idSchema }))
    .mutation(({ ctx, input }) => teams.revokeInvite(ctx.teamId, ctx.actor, input.inviteId)),
  changeRole: teamProcedure("member.manage")
    .input(z.object({ userId: idSchema, role: roleSchema }))
    .mutation(({ ctx, input }) => teams.changeRole(ctx.teamId, ctx.actor, input.userId, input.role)),
  removeMember: teamProcedure("member.manage")
    .input(z.object({ userId: idSchema }))
    .mutation(({ ctx, input }) => teams.removeMember(ctx.teamId, ctx.actor, input.userId)),
  leave: teamProcedure("team.read").mutation(({ ctx }) => teams.leaveTeam(ctx.teamId, ctx.actor)),
});

/** The audit page's filters; an inverted range would silently list nothing, so it is a field error on To. */
const auditFiltersSchema = z.object({
  actorId: idSchema.optional(),
  action: z.string().max(100).optional(),
  from: z.date().optional(),
  to: z.date().optional(),
});
const rangeInOrder = (i: { from?: Date; to?: Date }) => !i.from || !i.to || i.from <= i.to;
const RANGE_OUT_OF_ORDER = { message: "Must be on or after the From date.", path: ["to"] };

export const auditRouter = router({
  list: teamProcedure("audit.read")
    .input(
      auditFiltersSchema
        .extend({ cursor: z.number().int().positive().optional(), limit: z.number().int().min(1).max(200).default(50) })
        .refine(rangeInOrder, RANGE_OUT_OF_ORDER),
    )
    .query(({ ctx, input }) => listAudit({ teamId: ctx.teamId, ...input })),
  /** The filtered log as CSV (app/api/audit/export serves it as a download): the same permission as reading it. */
  export: teamProcedure("audit.read")
    .input(auditFiltersSchema.refine(rangeInOrder, RANGE_OUT_OF_ORDER))
    .query(async ({ ctx, input }) => {
      const q = { teamId: ctx.teamId, ...input };
      const r = await exportAuditCsv(q);
      await recordAuditExport(q, ctx.actor, r);
      return r;
    }),
  verify: teamProcedure("audit.read").mutation(({ ctx }) => verifyAuditChain(ctx.teamId)),
});
