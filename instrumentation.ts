/**
 * Runs once per Next.js server process. Starts the local workflow runner (unless an Inngest server is
 * configured, see server/workflows/README.md), so deployments progress on the embedded default, and stamps
 * each request with its socket's address before Next.js sees it.
 */
export async function register() {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  if (process.env.NEXT_PHASE === "phase-production-build") return;
  // Before the first request: the client IP of sign-in limits and the audit log comes from the socket (server/lib/client-ip.ts).
  (await import("./server/lib/client-ip")).installPeerAddressStamp();
  const { startWorkflows } = await import("./server/workflows");
  startWorkflows();
}
