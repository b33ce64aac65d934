import { formatMicrosPerHour } from "../catalog/money";

/** Event types a channel can subscribe to (the subscription checkboxes). */
export const ALERT_EVENTS = [
  "deployment.started",
  "deployment.succeeded",
  "deployment.failed",
  "approval.requested",
  "approval.decided",
  "spot.preempted",
  "serverless.fallback.engaged",
  "serverless.fallback.cleared",
  "deployment.stuck",
  "budget.threshold",
  "deployment.destroyed",
] as const;

export type AlertEventType = (typeof ALERT_EVENTS)[number];

export const ALERT_EVENT_LABELS: Record<AlertEventType, string> = {
  "deployment.started": "Deploy started",
  "deployment.succeeded": "Deploy succeeded",
  "deployment.failed": "Deploy or destroy failed",
  "approval.requested": "Approval requested",
  "approval.decided": "Approval decided (approved, rejected, expired)",
  "spot.preempted": "Spot preempted",
  "serverless.fallback.engaged": "Serverless fallback engaged",
  "serverless.fallback.cleared": "Serverless fallback cleared",
  "deployment.stuck": "Deployment stuck (or drifted, orphaned resources, upstream auth refresh failing)",
  "budget.threshold": "Budget thresholds",
  "deployment.destroyed": "Destroy done",
};

/** Names other domains send, mapped to the subscription they belong to. */
const ALIASES: Record<string, AlertEventType> = {
  "deployment.requested": "deployment.started",
  "deployment.deploying": "deployment.started",
  "deployment.active": "deployment.succeeded",
  "deployment.destroy_failed": "deployment.failed",
  "deployment.rejected": "approval.decided",
  "deployment.expired": "approval.decided",
  "deployment.approved": "approval.decided",
  "approval.expired": "approval.decided",
  "deployment.drift": "deployment.stuck",
  "deployment.orphaned": "deployment.stuck",
  // The answer to an orphan alert goes to whoever got the alert.
  "deployment.orphans_removed": "deployment.stuck",
  "deployment.auth_refresh_failed": "deployment.stuck",
  "spot.unavailable": "serverless.fallback.engaged",
  "spot.ready": "serverless.fallback.cleared",
  "budget.exceeded": "budget.threshold",
};

export function alertEventFor(type: string): AlertEventType | null {
  if ((ALERT_EVENTS as readonly string[]).includes(type)) return type as AlertEventType;
  return ALIASES[type] ?? null;
}

export interface AlertEvent {
  type: string;
  deploymentId?: string;
  title: string;
  text: string;
  costPerHourMicros?: number;
  url?: string;
}

export interface AlertContext {
  teamName: string;
  deploymentSlug?: string | null;
  /** Link to the dashboard page of the deployment (or the team). */
  dashboardUrl: string;
  at?: Date;
}

// Block Kit limits (provider-apis.md §8): header ≤ 150, section text ≤ 3000, field ≤ 2000, button ≤ 75,
// top-level text kept ≤ 4000.
function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Slack mrkdwn treats &, < and > as control characters. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const EMOJI: Partial<Record<AlertEventType, string>> = {
  "deployment.failed": ":x:",
  "deployment.succeeded": ":white_check_mark:",
  "spot.preempted": ":warning:",
  "deployment.stuck": ":hourglass:",
  "budget.threshold": ":moneybag:",
  "approval.requested": ":raising_hand:",
};

export interface SlackMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

/** Pure: the Block Kit message for one alert (header, text, team/deployment/cost fields, dashboard button). */
export function buildSlackMessage(event: AlertEvent, ctx: AlertContext): SlackMessage {
  const kind = alertEventFor(event.type);
  const emoji = (kind && EMOJI[kind]) ?? ":information_source:";
  const url = event.url ?? ctx.dashboardUrl;
  const fields: Array<{ type: "mrkdwn"; text: string }> = [{ type: "mrkdwn", text: clip(`*Team*\n${esc(ctx.teamName)}`, 2000) }];
  if (ctx.deploymentSlug || event.deploymentId) {
    fields.push({ type: "mrkdwn", text: clip(`*Deployment*\n${esc(ctx.deploymentSlug ?? event.deploymentId ?? "")}`, 2000) });
  }
  if (event.costPerHourMicros !== undefined && Number.isInteger(event.costPerHourMicros)) {
    fields.push({ type: "mrkdwn", text: `*Cost*\n${formatMicrosPerHour(event.costPerHourMicros)}` });
  }
  fields.push({ type: "mrkdwn", text: `*Event*\n\`${esc(event.type)}\`` });
  const blocks: Array<Record<string, unknown>> = [
    { type: "header", text: { type: "plain_text", text: clip(event.title, 150), emoji: true } },
    { type: "section", text: { type: "mrkdwn", text: clip(`${emoji} ${esc(event.text)}`, 3000) } },
    { type: "section", fields },
    {
      type: "actions",
      elements: [{ type: "button", text: { type: "plain_text", text: "Open in Tuna", emoji: false }, url, action_id: "open_dashboard" }],
    },
    { type: "context", elements: [{ type: "mrkdwn", text: `Tuna · ${(ctx.at ?? new Date()).toISOString()}` }] },
  ];
  const fallback = `${event.title}: ${event.text} (${ctx.teamName}${ctx.deploymentSlug ? ` / ${ctx.deploymentSlug}` : ""})`;
  return { text: clip(fallback, 4000), blocks };
}

/**
 * Generic JSON webhook body, Discord-compatible (`content` + `embeds`), with the structured alert under
 * `tuna` for other consumers.
 */
export function buildWebhookPayload(event: AlertEvent, ctx: AlertContext): Record<string, unknown> {
  const url = event.url ?? ctx.dashboardUrl;
  const fields = [
    { name: "Team", value: clip(ctx.teamName, 1024), inline: true },
    ...(ctx.deploymentSlug || event.deploymentId ? [{ name: "Deployment", value: clip(ctx.deploymentSlug ?? event.deploymentId ?? "", 1024), inline: true }] : []),
    ...(event.costPerHourMicros !== undefined && Number.isInteger(event.costPerHourMicros)
      ? [{ name: "Cost", value: formatMicrosPerHour(event.costPerHourMicros), inline: true }]
      : []),
  ];
  return {
    content: clip(`**${event.title}**\n${event.text}`, 2000),
    embeds: [{ title: clip(event.title, 256), description: clip(event.text, 4096), url, fields, timestamp: (ctx.at ?? new Date()).toISOString() }],
    tuna: {
      type: event.type,
      title: event.title,
      text: event.text,
      team: ctx.teamName,
      deploymentId: event.deploymentId ?? null,
      deployment: ctx.deploymentSlug ?? null,
      costPerHourMicros: event.costPerHourMicros ?? null,
      url,
    },
  };
}
