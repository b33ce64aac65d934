import { events, inngest } from "./client";
import * as life from "../deployments/lifecycle";
import type { StoredSpec } from "../deployments/plan";
import { db } from "../db";

/** A failure tagged with the workflow step it happened in (what the deployment's failureStep shows). */
class StepFailure extends Error {
  constructor(
    readonly step: string,
    readonly reason: string,
  ) {
    super(`${step}: ${reason}`);
    this.name = "StepFailure";
  }
}

function tagged<T>(stepName: string, p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    throw err instanceof StepFailure ? err : new StepFailure(stepName, life.errorMessage(err));
  });
}

/** Poll interval of the n-th health check: 2 s growing to 30 s. */
export function pollInterval(n: number): string {
  return `${Math.min(30, Math.round(2 * 1.5 ** n))}s`;
}

const SERVERLESS_HEALTH_TIMEOUT_MS = 15 * 60_000;
const APPROVAL_DEFAULT_TIMEOUT = "7d";
/** SkyServe's default readiness delay (`readiness_probe.initial_delay_seconds`) and the margin we add to it. */
const SPOT_READINESS_DELAY_DEFAULT_S = 1200;
const SPOT_READINESS_MARGIN_S = 600;

/** How long spot may take to become ready: the deployment's SkyServe readiness delay plus a margin. */
export async function spotReadinessTimeoutMs(deploymentId: string): Promise<number> {
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { spec: true } });
  const delayS = (d?.spec as unknown as StoredSpec | undefined)?.spotScaling?.readinessInitialDelayS ?? SPOT_READINESS_DELAY_DEFAULT_S;
  return (delayS + SPOT_READINESS_MARGIN_S) * 1000;
}

export const concurrency: [{ key: string; limit: number }, { scope: "account"; key: string; limit: number }] = [
  // One team cannot starve the others; one provider account is never hit by more than a few runs at once.
  { key: "event.data.teamId", limit: 10 },
  { scope: "account", key: "event.data.providerAccount", limit: 4 },
];

/**
 * deployment/requested → (approval) → components in parallel → router snapshot → serverless health → active,
 * then spot keeps warming in the background of the run without blocking the deployment being usable.
 */
export const deployFunction = inngest.createFunction(
  { id: "deploy", name: "Deploy a model", triggers: [events.requested], retries: 4, concurrency },
  async ({ event, step, runId }) => {
    const { deploymentId, teamId } = event.data;

    /** Marks the deployment failed and alerts, unless a destroy overtook the run (then it is not a failure). */
    const failAndAlert = async (f: StepFailure, cleanup: "removed" | "nothing" | { error: string }) => {
      const reason = typeof cleanup === "object" ? `${f.reason} (cleanup failed, resources may remain: ${cleanup.error})` : f.reason;
      const outcome = await step.run("mark-failed", () => life.failDeployment(deploymentId, f.step, reason));
      if (outcome === "failed") {
        const after =
          cleanup === "removed"
            ? "Everything it created was removed."
            : cleanup === "nothing"
              ? "Nothing was created."
              : `Removing what it created failed (${cleanup.error}): resources may still be running and billed; reconcile keeps trying to remove them.`;
        await step.run("alert-failed", () =>
          life.alert(teamId, { type: "deployment.failed", deploymentId, title: "Deployment failed", text: `Step ${f.step} failed: ${f.reason}. ${after}` }),
        );
      }
      return { status: "failed", step: f.step, reason };
    };

    // ---- approval: events only wake the run up; the ApprovalRequest row is the truth.
    if (event.data.requiresApproval) {
      let decision = await step.run("check-approval", () => life.readApprovalDecision(deploymentId));
      if (decision === "pending") {
        const timeout = event.data.approvalExpiresAt ? new Date(event.data.approvalExpiresAt) : APPROVAL_DEFAULT_TIMEOUT;
        const match = "async.data.deploymentId == event.data.deploymentId";
        await step.run("timeline-awaiting-approval", () => life.appendTimelineOnce(deploymentId, "approval", "waiting", "waiting for an admin to approve"));
        await Promise.race([
          step.waitForEvent("wait-for-approval", { event: events.approved, timeout, if: match }),
          step.waitForEvent("wait-for-rejection", { event: events.rejected, timeout, if: match }),
        ]);
        decision = await step.run("read-decision", () => life.readApprovalDecision(deploymentId));
      }
      if (decision !== "approved" && decision !== "none") {
        const outcome = decision === "rejected" ? "rejected" : "expired";
        await step.run(`close-${outcome}`, () => life.closeUnapproved(deploymentId, outcome));
        await step.run(`alert-${outcome}`, () =>
          life.alert(teamId, {
            type: `deployment.${outcome}`,
            deploymentId,
            title: outcome === "rejected" ? "Deployment rejected" : "Deployment approval expired",
            text: outcome === "rejected" ? "The deployment request was rejected; nothing was started." : "Nobody approved the deployment request in time; nothing was started.",
          }),
        );
        return { status: outcome };
      }
      await step.run("timeline-approved", () => life.appendTimelineOnce(deploymentId, "approval", "ok", "approved"));
    }

    let start: { proceed: boolean; kinds: Array<"serverless" | "spot"> };
    try {
      start = await step.run("start", () => life.startDeploying(deploymentId, runId));
    } catch (err) {
      // Nothing exists at a provider yet (start only writes rows, in one transaction).
      return failAndAlert(new StepFailure("start", life.errorMessage(err)), "nothing");
    }
    // Not deployable any more (destroyed, …), or another run of the same request owns the deploy.
    if (!start.proceed) return { status: "skipped" };
    const kinds = start.kinds;
    const primary = kinds.includes("serverless") ? "serverless" : "spot";
    await step.run("alert-started", () =>
      life.alert(teamId, { type: "deployment.deploying", deploymentId, title: "Deployment started", text: `Deploying ${kinds.join(" + ")}.` }),
    );

    try {
      // Both components at once; allSettled so compensation never races a deploy still in flight.
      const settled = await Promise.allSettled(
        kinds.map((kind) => tagged(`deploy-${kind}`, step.run(`deploy-${kind}`, () => life.deployComponent(deploymentId, kind)))),
      );
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;

      await tagged("publish-router", step.run("publish-router", () => life.publishToRouter(deploymentId, `${kinds.join(" + ")} published in the router snapshot`)));

      // Spot-only: spot is the primary and needs its SkyServe readiness delay, like warmSpot gives it.
      const timeoutMs = await step.run(`${primary}-health-timeout`, async (): Promise<number> =>
        primary === "spot" ? spotReadinessTimeoutMs(deploymentId) : SERVERLESS_HEALTH_TIMEOUT_MS,
      );
      const deadline = await step.run(`${primary}-health-deadline`, () => Date.now() + timeoutMs);
      const healthStep = `wait-${primary}-health`;
      for (let i = 0; ; i++) {
        const s = await tagged(
          healthStep,
          step.run(`check-${primary}-health-${i}`, async () => {
            const r = await life.checkComponent(deploymentId, primary);
            if (r.state === "ready" || r.state === "scaled_to_zero") await life.appendTimelineOnce(deploymentId, healthStep, "ok", `${primary} endpoint is healthy`);
            else if (i === 0) await life.appendTimelineOnce(deploymentId, healthStep, "waiting", `${primary} is starting: ${r.message ?? r.state}`);
            return { ...r, now: Date.now() };
          }),
        );
        if (s.state === "ready" || s.state === "scaled_to_zero") break;
        if (s.state === "failed" || s.state === "gone") throw new StepFailure(healthStep, `${primary} component is ${s.state}: ${s.message ?? "no details"}`);
        if (s.now > deadline) throw new StepFailure(healthStep, `${primary} component not healthy after ${Math.round(timeoutMs / 60_000)} min: ${s.message ?? "still starting"}`);
        await step.sleep(`${healthStep}-${i}`, pollInterval(i));
      }

      const activated = await tagged("activate", step.run("activate", () => life.activateDeployment(deploymentId)));
      if (!activated) {
        // A destroy overtook this run: remove anything created after the destroy swept the components.
        await step.run("cleanup-superseded", () => life.destroyComponents(deploymentId, "destroy"));
        return { status: "superseded" };
      }
    } catch (err) {
      const f = err instanceof StepFailure ? err : new StepFailure("deploy", life.errorMessage(err));
      // Compensation: whatever exists is destroyed, then the deployment is failed naming the step. A compensation
      // that gives up still fails the deployment (never left `deploying`): reconcile's orphan sweep finishes it.
      let cleanup: "removed" | { error: string } = "removed";
      try {
        await step.run("compensate", () => life.destroyComponents(deploymentId, "compensate"));
      } catch (compErr) {
        cleanup = { error: life.errorMessage(compErr) };
      }
      return failAndAlert(f, cleanup);
    }

    await step.run("alert-active", async () => {
      const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { slug: true, estimatedCostPerHourMicros: true } });
      await life.alert(teamId, {
        type: "deployment.active",
        deploymentId,
        title: `${d?.slug ?? deploymentId} is live`,
        text: primary === "serverless" && kinds.includes("spot") ? "Serving from serverless while spot warms up." : `Serving from ${primary}.`,
        ...(d?.estimatedCostPerHourMicros != null ? { costPerHourMicros: Number(d.estimatedCostPerHourMicros) } : {}),
      });
    });

    // ---- spot warms up without blocking: the deployment is already usable through serverless.
    if (kinds.includes("spot") && primary === "serverless") {
      const spotState = await warmSpot(step, deploymentId, teamId, "spot-warm");
      return { status: "active", spot: spotState };
    }
    return { status: "active" };
  },
);

type Step = Parameters<Parameters<typeof inngest.createFunction>[1]>[0]["step"];

/**
 * Polls the spot component until it is ready (router snapshot updated), failed, or past SkyServe's
 * readiness delay plus a margin (deployment degraded, alert). Used after deploy and after a preemption.
 */
export async function warmSpot(step: Step, deploymentId: string, teamId: string, prefix: string): Promise<"ready" | "failed"> {
  const deadline = await step.run(`${prefix}-deadline`, async () => Date.now() + (await spotReadinessTimeoutMs(deploymentId)));
  for (let i = 0; ; i++) {
    let s: { state: string; message: string | null; now: number };
    try {
      s = await step.run(`${prefix}-check-${i}`, async () => {
        if (!(await life.deploymentIsLive(deploymentId))) return { state: "gone", message: "deployment is no longer live", now: Date.now() };
        const r = await life.checkComponent(deploymentId, "spot");
        if (i === 0 && r.state !== "ready") await life.appendTimelineOnce(deploymentId, "spot", "warming", `spot replicas starting (serverless serves meanwhile): ${r.message ?? r.state}`);
        return { ...r, now: Date.now() };
      });
    } catch (err) {
      s = { state: "failed", message: life.errorMessage(err), now: Number.MAX_SAFE_INTEGER };
    }
    if (s.state === "ready") {
      await step.run(`${prefix}-ready`, async () => {
        await life.markSpot(deploymentId, "ready", "spot replicas ready: the router now prefers spot");
        await life.setDegraded(deploymentId, false, "spot is serving again");
      });
      await step.run(`${prefix}-alert-ready`, () =>
        life.alert(teamId, { type: "spot.ready", deploymentId, title: "Spot capacity ready", text: "Spot replicas are serving; serverless is the fallback again." }),
      );
      return "ready";
    }
    if (s.message === "deployment is no longer live") return "failed";
    if (s.state === "failed" || s.state === "gone" || s.now > deadline) {
      await step.run(`${prefix}-failed`, async () => {
        await life.markSpot(deploymentId, "failed", `spot did not become ready: ${s.message ?? "timed out"}`);
        await life.setDegraded(deploymentId, true, "spot unavailable: serving from serverless only (costs more)");
        await life.alert(teamId, { type: "spot.unavailable", deploymentId, title: "Spot capacity unavailable", text: `Spot did not become ready (${s.message ?? "timed out"}); serverless keeps serving.` });
      });
      return "failed";
    }
    await step.sleep(`${prefix}-wait-${i}`, pollInterval(i + 2));
  }
}
