import { z } from "zod";
import { DeploymentStatus } from "@prisma/client";
import * as deployments from "../../deployments";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);

export const deploymentsRouter = router({
  list: teamProcedure("deployment.read")
    .input(
      z.object({
        status: z.union([z.enum(DeploymentStatus), z.array(z.enum(DeploymentStatus)).max(10)]).optional(),
        provider: z.string().max(40).optional(),
        gpu: z.string().max(40).optional(),
        ownerId: idSchema.optional(),
        sort: z.enum(deployments.LIST_SORTS).default("newest"),
        cursor: z.string().max(500).nullish(),
        limit: z.number().int().min(1).max(200).default(50),
      }),
    )
    .query(({ ctx, input }) => deployments.listDeployments(ctx.teamId, input)),
  get: teamProcedure("deployment.read")
    .input(z.object({ id: idSchema }))
    .query(({ ctx, input }) => deployments.getDeployment(ctx.teamId, input.id)),
  timeline: teamProcedure("deployment.read")
    .input(z.object({ id: idSchema, since: z.date().optional() }))
    .query(({ ctx, input }) => deployments.getTimeline(ctx.teamId, input.id, { since: input.since })),
  quote: teamProcedure("deployment.read")
    .input(deployments.deploymentInputSchema)
    .query(({ ctx, input }) => deployments.quoteDeployment(ctx.teamId, ctx.role, input)),
  create: teamProcedure("deployment.create")
    .input(deployments.deploymentInputSchema)
    .mutation(({ ctx, input }) => deployments.requestDeployment(ctx.teamId, { ...ctx.actor, role: ctx.role }, input)),
  destroy: teamProcedure("deployment.destroy")
    .input(z.object({ id: idSchema }))
    .mutation(({ ctx, input }) => deployments.requestDestroy(ctx.teamId, ctx.actor, input.id)),
  destroyAll: teamProcedure("deployment.destroy-all")
    .input(z.object({ confirm: z.literal("destroy all") }))
    .mutation(({ ctx }) => deployments.requestDestroyAll(ctx.teamId, ctx.actor)),
});
