import { z } from "zod";
import { DeploymentStatus } from "@prisma/client";
import * as deployments from "../../deployments";
import { deploymentRouterView, routerViews } from "../../usage/router-view";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);
const SERVING: DeploymentStatus[] = ["active", "degraded"];

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
        /** Add each serving spot deployment's router view (the deployments page); pickers need not pay for it. */
        withRouterView: z.boolean().default(false),
      }),
    )
    .query(async ({ ctx, input }) => {
      const page = await deployments.listDeployments(ctx.teamId, input);
      // The routers' word on spot, for the deployments that serve with spot: they notice a dead backend first.
      const serving = input.withRouterView ? page.items.filter((d) => d.mode !== "serverless" && SERVING.includes(d.status)) : [];
      const views = await routerViews(ctx.teamId, serving.map((d) => d.id));
      return { ...page, items: page.items.map((d) => ({ ...d, routerView: views.get(d.id) ?? null })) };
    }),
  get: teamProcedure("deployment.read")
    .input(z.object({ id: idSchema }))
    .query(async ({ ctx, input }) => {
      // Both are team-scoped: a stranger's id is NOT_FOUND from either.
      const [d, routerView] = await Promise.all([deployments.getDeployment(ctx.teamId, input.id), deploymentRouterView(ctx.teamId, input.id)]);
      /** Each backend's state as the live routers report it (seconds old), beside the provider's (minutes old). */
      return { ...d, routerView };
    }),
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
