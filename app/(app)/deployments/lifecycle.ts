/**
 * Where a deployment is in its life, as the dashboard presents it. Kept apart from the server's lists
 * (server/deployments) because this module ships to the browser.
 */

/** Ran, or tried to, and stopped: nothing to call, no running cost to estimate, only its history and cost. */
const STOPPED = ["failed", "destroying", "destroyed"];
/** Requests that never ran. */
const NEVER_RAN = ["rejected", "expired"];

/** No hourly cost in the list: it no longer runs (a rejected or expired request keeps its quote). */
export function isStopped(status: string): boolean {
  return STOPPED.includes(status);
}

/** Will never serve again: the detail page shows what happened instead of an endpoint and an estimate. */
export function hasEnded(status: string): boolean {
  return STOPPED.includes(status) || NEVER_RAN.includes(status);
}
