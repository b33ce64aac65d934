import { z } from "zod";
import * as alerts from "../../alerts";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);
const eventsSchema = z.array(z.enum(alerts.ALERT_EVENTS)).max(alerts.ALERT_EVENTS.length);
/** The URL is write-only: it goes to the vault and is never returned. */
const urlSchema = z.string().trim().min(8).max(2000);

export const alertsRouter = router({
  events: teamProcedure("alerts.read").query(() => alerts.ALERT_EVENTS.map((type) => ({ type, label: alerts.ALERT_EVENT_LABELS[type] }))),
  list: teamProcedure("alerts.read").query(({ ctx }) => alerts.listChannels(ctx.teamId)),
  deliveries: teamProcedure("alerts.read")
    .input(z.object({ channelId: idSchema, limit: z.number().int().min(1).max(200).optional() }))
    .query(({ ctx, input }) => alerts.listDeliveries(ctx.teamId, input.channelId, input.limit)),
  create: teamProcedure("alerts.manage")
    .input(z.object({ name: z.string().trim().min(1).max(80), kind: z.enum(["slack", "webhook"]), url: urlSchema, events: eventsSchema }))
    .mutation(({ ctx, input }) => alerts.createChannel(ctx.teamId, ctx.actor, input)),
  update: teamProcedure("alerts.manage")
    .input(z.object({ channelId: idSchema, name: z.string().trim().min(1).max(80).optional(), url: urlSchema.optional(), events: eventsSchema.optional(), enabled: z.boolean().optional() }))
    .mutation(({ ctx, input: { channelId, ...patch } }) => alerts.updateChannel(ctx.teamId, ctx.actor, channelId, patch)),
  delete: teamProcedure("alerts.manage")
    .input(z.object({ channelId: idSchema }))
    .mutation(({ ctx, input }) => alerts.deleteChannel(ctx.teamId, ctx.actor, input.channelId)),
  sendTest: teamProcedure("alerts.manage")
    .input(z.object({ channelId: idSchema }))
    .mutation(({ ctx, input }) => alerts.sendTestAlert(ctx.teamId, ctx.actor, input.channelId)),
});
