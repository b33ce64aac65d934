/** Public surface of the workflows domain. */
import { usesInngestServer } from "./events";
import { startLocalRunner, type LocalRunnerHandle, type LocalRunnerOptions } from "./runner";

export { inngest, events } from "./client";
export { sendEvent, setEventSink, usesInngestServer } from "./events";
export { drainLocalRunner, startLocalRunner, type LocalRunnerHandle, type LocalRunnerOptions } from "./runner";

/**
 * What the app calls once on boot (server side, Node runtime): starts the local runner unless an Inngest
 * server (INNGEST_EVENT_KEY / INNGEST_BASE_URL) runs the functions. Set TUNA_LOCAL_RUNNER=0 to keep a
 * process (e.g. a second web replica) from executing runs. Returns the handle, or null when not started.
 */
export function startWorkflows(opts: LocalRunnerOptions = {}): LocalRunnerHandle | null {
  if (usesInngestServer() || process.env.TUNA_LOCAL_RUNNER === "0") return null;
  const g = globalThis as unknown as { __tunaRunner?: LocalRunnerHandle };
  // Survives Next.js hot reload: one loop per process.
  g.__tunaRunner ??= startLocalRunner(opts);
  return g.__tunaRunner;
}
