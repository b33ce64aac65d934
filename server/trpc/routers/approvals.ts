import { z } from "zod";
import { ApprovalStatus } from "@prisma/client";
import * as approvals from "../../approvals";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);

export const approvalsRouter = router({
  list: teamProcedure("deployment.read")
    .input(z.object({ status: z.enum(ApprovalStatus).optional(), deploymentId: idSchema.optional(), limit: z.number().int().min(1).max(500).optional() }).default({}))
    .query(({ ctx, input }) => approvals.listApprovals(ctx.teamId, input)),
  get: teamProcedure("deployment.read")
    .input(z.object({ approvalId: idSchema }))
    .query(({ ctx, input }) => approvals.getApproval(ctx.teamId, input.approvalId)),
  decide: teamProcedure("deployment.approve")
    .input(z.object({ approvalId: idSchema, decision: z.enum(["approve", "reject"]), comment: z.string().max(2000).nullish() }))
    .mutation(({ ctx, input }) => approvals.decideApproval(ctx.teamId, ctx.actor, input.approvalId, input.decision, input.comment)),
});
