/** Public surface of alerts: channels, subscriptions, notify, delivery (the Inngest function is in ./functions). */
export { ALERT_EVENTS, ALERT_EVENT_LABELS, alertEventFor, buildSlackMessage, buildWebhookPayload, type AlertContext, type AlertEvent, type AlertEventType, type SlackMessage } from "./messages";
export {
  createChannel,
  deleteChannel,
  deliverAlertNow,
  listChannels,
  listDeliveries,
  notify,
  sendTestAlert,
  updateChannel,
  type ChannelView,
  type DeliveryOptions,
  type DeliveryResult,
} from "./service";
