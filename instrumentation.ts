/**
 * Runs once per Next.js server process. Starts the local workflow runner (unless an Inngest server is
 * configured, see server/workflows/README.md), so deployments progress on the embedded default.
 */
export async function register() {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  if (process.env.NEXT_PHASE === "phase-production-build") return;
  const { startWorkflows } = await import("./server/workflows");
  startWorkflows();
}
