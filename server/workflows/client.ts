import { eventType, Inngest } from "inngest";
import { z } from "zod";

/**
 * The one Inngest client of the app. Event payloads are typed with zod (Standard Schema), so a
 * function triggered by one of these events gets typed `event.data` and the SDK validates it.
 * Schemas are deliberately lenient on optional fields: other services (approvals, router reports)
 * send these events too.
 */
export const inngest = new Inngest({ id: "tuna" });

export const deploymentRequestedSchema = z.object({
  deploymentId: z.string(),
  teamId: z.string(),
  requiresApproval: z.boolean().default(false),
  /** ISO time the approval expires (only when requiresApproval). */
  approvalExpiresAt: z.string().optional(),
});
export const deploymentApprovedSchema = z.object({
  deploymentId: z.string(),
  teamId: z.string().optional(),
  approvalId: z.string().optional(),
  decidedById: z.string().optional(),
  comment: z.string().nullish(),
});
export const deploymentRejectedSchema = deploymentApprovedSchema;
export const deploymentDestroyRequestedSchema = z.object({
  deploymentId: z.string(),
  teamId: z.string(),
  actorId: z.string().optional(),
  reason: z.string().optional(),
  providerAccount: z.string().optional(),
});
export const deploymentDestroyAllRequestedSchema = z.object({
  teamId: z.string(),
  actorId: z.string().optional(),
});
export const deploymentSpotPreemptedSchema = z.object({
  deploymentId: z.string(),
  teamId: z.string().optional(),
  /** Who noticed: the router's report or SkyPilot status. */
  source: z.string().default("router"),
  detail: z.string().optional(),
});
export const alertSendSchema = z.looseObject({
  teamId: z.string(),
  type: z.string(),
  deploymentId: z.string().optional(),
  title: z.string().optional(),
  text: z.string().optional(),
});

// Zod defaults are transforms for Standard Schema purposes (input ≠ output), which the SDK forbids
// on triggers, so the trigger schemas use the plain input shape.
const noDefaults = {
  requested: z.object({
    deploymentId: z.string(),
    teamId: z.string(),
    requiresApproval: z.boolean().optional(),
    approvalExpiresAt: z.string().optional(),
    /** "<teamId>:<provider>" concurrency key (one provider account per team and provider). */
    providerAccount: z.string().optional(),
  }),
  preempted: z.object({
    deploymentId: z.string(),
    teamId: z.string().optional(),
    source: z.string().optional(),
    detail: z.string().optional(),
  }),
};

export const events = {
  requested: eventType("deployment/requested", { schema: noDefaults.requested }),
  approved: eventType("deployment/approved", { schema: deploymentApprovedSchema }),
  rejected: eventType("deployment/rejected", { schema: deploymentRejectedSchema }),
  destroyRequested: eventType("deployment/destroy.requested", { schema: deploymentDestroyRequestedSchema }),
  destroyAllRequested: eventType("deployment/destroy-all.requested", { schema: deploymentDestroyAllRequestedSchema }),
  spotPreempted: eventType("deployment/spot.preempted", { schema: noDefaults.preempted }),
  alertSend: eventType("alert/send", { schema: alertSendSchema }),
} as const;

export type DeploymentRequestedData = z.input<typeof noDefaults.requested>;
export type DeploymentApprovedData = z.infer<typeof deploymentApprovedSchema>;
export type DeploymentDestroyRequestedData = z.infer<typeof deploymentDestroyRequestedSchema>;
export type DeploymentDestroyAllRequestedData = z.infer<typeof deploymentDestroyAllRequestedSchema>;
export type DeploymentSpotPreemptedData = z.input<typeof noDefaults.preempted>;
export type AlertSendData = z.infer<typeof alertSendSchema>;

/** Schemas by event name, used by `sendEvent` to reject malformed events at the source. */
export const eventSchemas: Record<string, z.ZodType> = {
  "deployment/requested": noDefaults.requested,
  "deployment/approved": deploymentApprovedSchema,
  "deployment/rejected": deploymentRejectedSchema,
  "deployment/destroy.requested": deploymentDestroyRequestedSchema,
  "deployment/destroy-all.requested": deploymentDestroyAllRequestedSchema,
  "deployment/spot.preempted": noDefaults.preempted,
  "alert/send": alertSendSchema,
};
