import { eventSchemas, inngest } from "./client";

/**
 * The ONE module through which application code sends workflow events.
 *
 * - `INNGEST_EVENT_KEY` (Inngest Cloud) or `INNGEST_BASE_URL` (self-hosted Inngest / dev server):
 *   `inngest.send`, the real server runs the functions.
 * - otherwise: the local runner (`./runner`) persists the event in WorkflowEvent, starts runs of
 *   the functions it triggers and resumes runs waiting for it.
 *
 * Tests may swap the sink with `setEventSink` (and restore it with `setEventSink(null)`).
 */
export type EventSink = (name: string, data: Record<string, unknown>) => Promise<void>;

let overrideSink: EventSink | null = null;

export function setEventSink(fn: EventSink | null): void {
  overrideSink = fn;
}

export function usesInngestServer(): boolean {
  return Boolean(process.env.INNGEST_EVENT_KEY || process.env.INNGEST_BASE_URL);
}

export async function sendEvent(name: string, data: object): Promise<void> {
  const schema = eventSchemas[name];
  const payload = (schema ? schema.parse(data) : data) as Record<string, unknown>;
  if (overrideSink) return overrideSink(name, payload);
  if (usesInngestServer()) {
    await inngest.send({ name, data: payload });
    return;
  }
  // Imported lazily: the runner imports the functions, which import services that send events.
  const { deliverLocalEvent } = await import("./runner");
  await deliverLocalEvent(name, payload);
}
