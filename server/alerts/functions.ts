import { events, inngest } from "../workflows/client";
import { deliverAlertNow } from "./service";

/**
 * `alert/send` → one delivery. The retry loop (429 with Retry-After, 5xx, backoff) lives in
 * `deliverAlertNow` inside one step; the step itself is retried by Inngest only if recording the outcome
 * fails, and a delivered alert is never re-sent. One delivery at a time per channel: Slack allows about
 * one message per second per webhook.
 */
export const deliverAlert = inngest.createFunction(
  {
    id: "deliver-alert",
    name: "Deliver an alert",
    triggers: [events.alertSend],
    retries: 2,
    concurrency: { key: "event.data.channelId", limit: 1 },
  },
  async ({ event, step }) => {
    const deliveryId = String((event.data as { deliveryId?: unknown }).deliveryId ?? "");
    if (!deliveryId) return { status: "skipped", reason: "no deliveryId" };
    return step.run("deliver", () => deliverAlertNow(deliveryId));
  },
);

export const alertFunctions = [deliverAlert];
