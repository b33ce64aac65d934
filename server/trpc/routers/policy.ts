import { z } from "zod";
import { Role } from "@prisma/client";
import * as approvals from "../../approvals";
import { router, teamProcedure } from "../init";

export const policyRouter = router({
  get: teamProcedure("team.read").query(({ ctx }) => approvals.getTeamPolicy(ctx.teamId)),
  update: teamProcedure("team.update")
    .input(
      z.object({
        approvalRoles: z.array(z.enum(Role)).max(3).optional(),
        approvalGpus: z.array(z.string().trim().min(1).max(40)).max(50).optional(),
        approvalForSpot: z.boolean().optional(),
        approvalForServerless: z.boolean().optional(),
        approvalCostThresholdMicros: z.number().int().nonnegative().max(1e12).nullable().optional(),
        approvalTtlHours: z.number().int().min(1).max(24 * 14).optional(),
      }),
    )
    .mutation(({ ctx, input }) => approvals.updateTeamPolicy(ctx.teamId, ctx.actor, input)),
});
