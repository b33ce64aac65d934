import type { InngestFunction } from "inngest";
import { cron } from "inngest";
import { events, inngest } from "./client";
import { concurrency, deployFunction, warmSpot } from "./deploy";
import * as life from "../deployments/lifecycle";
import { listComponentsDueForHeaderRefresh, refreshComponentHeaders, type HeaderRefreshOutcome } from "../deployments/upstream-headers";
import { deliverAlert } from "../alerts/functions";
import { expireApprovalsFunction } from "../approvals/functions";
import { evaluateBudgetsFunction, pruneUsageFunction, sampleSpotPricesFunction } from "../usage/functions";
import { pruneAuthFunction } from "../auth/functions";

/** deployment/destroy.requested: tear down every component that exists, clean storage, revoke from the router. */
export const destroyFunction = inngest.createFunction(
  { id: "destroy", name: "Destroy a deployment", triggers: [events.destroyRequested], retries: 6, concurrency },
  async ({ event, step }) => {
    const { deploymentId, teamId } = event.data;
    try {
      const r = await step.run("destroy-components", () => life.destroyComponents(deploymentId));
      await step.run("finish", () => life.finishDestroy(deploymentId));
      await step.run("alert-destroyed", () =>
        life.alert(teamId, { type: "deployment.destroyed", deploymentId, title: "Deployment destroyed", text: `Removed: ${r.destroyed.join(", ") || "nothing was running"}.` }),
      );
      return { status: "destroyed", destroyed: r.destroyed };
    } catch (err) {
      await step.run("alert-destroy-failed", () =>
        life.alert(teamId, { type: "deployment.destroy_failed", deploymentId, title: "Destroy failed", text: `Resources may still be running and billed: ${life.errorMessage(err)}` }),
      );
      throw err;
    }
  },
);

/** deployment/destroy-all.requested: every live deployment of the team, each through the destroy workflow. */
export const destroyAllFunction = inngest.createFunction(
  { id: "destroy-all", name: "Destroy every deployment of a team", triggers: [events.destroyAllRequested], retries: 4, concurrency: [{ key: "event.data.teamId", limit: 1 }] },
  async ({ event, step }) => {
    const { teamId, actorId } = event.data;
    const targets = await step.run("mark-destroying", () => life.markTeamDestroying(teamId));
    if (targets.length) {
      await step.sendEvent(
        "fan-out",
        targets.map((t) =>
          events.destroyRequested.create({ deploymentId: t.id, teamId, providerAccount: t.providerAccount, reason: "destroy-all", ...(actorId ? { actorId } : {}) }),
        ),
      );
    }
    return { count: targets.length };
  },
);

/** Cron: compare serving deployments with their providers; mark drift, failed and orphaned components; alert. */
export const reconcileFunction = inngest.createFunction(
  { id: "reconcile", name: "Reconcile deployments with providers", triggers: [cron("*/5 * * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => {
    const serving = await step.run("list-serving", () => life.listServingDeployments());
    let drifted = 0;
    for (const d of serving) {
      const r = await step.run(`reconcile-${d.id}`, async () => {
        try {
          return await life.reconcileDeployment(d.id);
        } catch (err) {
          return { drift: [`status check failed: ${life.errorMessage(err)}`], recovered: false, spotLost: null };
        }
      });
      if (r.spotLost) {
        await step.sendEvent(`preempted-${d.id}`, events.spotPreempted.create({ deploymentId: d.id, teamId: d.teamId, source: "skypilot-status", detail: r.spotLost }));
      }
      if (r.drift.length) {
        drifted++;
        await step.run(`alert-drift-${d.id}`, () =>
          life.alert(d.teamId, { type: "deployment.drift", deploymentId: d.id, title: "Deployment drifted from its provider", text: r.drift.join("; ") }),
        );
      }
    }
    const orphans = await step.run("find-orphans", () => life.findOrphanedComponents());
    // Alerted once, when first found (not on every retry or cron run while its teardown keeps failing).
    for (const o of orphans) {
      const first = await step.run(`orphan-found-${o.deploymentId}-${o.kind}`, () => life.recordOrphanFound(o.deploymentId, o.kind, o.provider));
      if (first) {
        await step.run(`alert-orphan-${o.deploymentId}-${o.kind}`, () =>
          life.alert(o.teamId, { type: "deployment.orphaned", deploymentId: o.deploymentId, title: "Orphaned resources", text: `${o.kind} on ${o.provider} outlived its deployment; destroying it.` }),
        );
      }
    }
    // One teardown per deployment; a failure is retried by the next cron run and does not stop the others.
    let sweptFailed = 0;
    for (const deploymentId of [...new Set(orphans.map((o) => o.deploymentId))]) {
      const r = await step.run(`orphan-${deploymentId}`, async () => {
        try {
          await life.sweepOrphanedDeployment(deploymentId);
          return { ok: true as const, tell: await life.recordOrphansRemoved(deploymentId) };
        } catch (err) {
          const error = life.errorMessage(err);
          console.warn(`[reconcile] orphans of deployment ${deploymentId} not removed yet: ${error}`);
          return { ok: false as const, error, tell: await life.recordOrphanSweepFailed(deploymentId, error) };
        }
      });
      if (!r.ok) sweptFailed++;
      if (!r.tell) continue;
      const teamId = orphans.find((o) => o.deploymentId === deploymentId)!.teamId;
      await step.run(`alert-orphan-${r.ok ? "removed" : "still"}-${deploymentId}`, () =>
        life.alert(
          teamId,
          r.ok
            ? { type: "deployment.orphans_removed", deploymentId, title: "Orphaned resources removed", text: "Everything that outlived the deployment is destroyed; it no longer bills." }
            : {
                type: "deployment.orphaned",
                deploymentId,
                title: "Orphaned resources still running",
                text: `Destroying what outlived the deployment keeps failing (${r.error}). It bills until it is removed: check the provider's credentials in the vault, or remove it in the provider's console. Reconcile keeps trying.`,
              },
        ),
      );
    }
    return { checked: serving.length, drifted, orphans: orphans.length, orphanSweepsFailed: sweptFailed };
  },
);

/**
 * Cron: re-mint upstream auth that expires (Cloud Run ID tokens live 1 h) for every serving component whose
 * headers are half their lifetime old, each with its own team's credentials; routers get the new headers with
 * the next config version. One component failing does not stop the others; a run of failures alerts once.
 */
export const refreshUpstreamHeadersFunction = inngest.createFunction(
  { id: "refresh-upstream-headers", name: "Refresh expiring upstream auth", triggers: [cron("*/10 * * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => {
    const due = await step.run("list-due", () => listComponentsDueForHeaderRefresh());
    let refreshed = 0;
    let failed = 0;
    for (const c of due) {
      const r = await step.run(`refresh-${c.deploymentId}-${c.kind}`, async (): Promise<HeaderRefreshOutcome> => {
        try {
          return await refreshComponentHeaders(c.componentId);
        } catch (err) {
          console.warn(`[refresh-headers] ${c.provider} ${c.kind} component of deployment ${c.deploymentId}: ${life.errorMessage(err)}`);
          return { status: "failed", error: life.errorMessage(err), alert: false, expiresAt: null };
        }
      });
      if (r.status === "refreshed") refreshed++;
      if (r.status !== "failed") continue;
      failed++;
      if (r.alert) {
        await step.run(`alert-refresh-${c.deploymentId}-${c.kind}`, () =>
          life.alert(c.teamId, {
            type: "deployment.auth_refresh_failed",
            deploymentId: c.deploymentId,
            title: "Upstream auth refresh failing",
            text: `The ${c.kind} backend (${c.provider}) could not get fresh upstream credentials${r.expiresAt ? `; the router's current ones expire at ${r.expiresAt} and requests to it will fail after that` : ""}: ${r.error}`,
          }),
        );
      }
    }
    return { due: due.length, refreshed, failed };
  },
);

/**
 * deployment/spot.preempted (router report or SkyPilot status): drain spot in the router, make sure serverless
 * is warm, let SkyServe replace the replica (or relaunch a lost one), alert.
 */
export const spotPreemptedFunction = inngest.createFunction(
  {
    id: "spot-preempted",
    name: "Handle a spot preemption",
    triggers: [events.spotPreempted],
    retries: 3,
    // Several routers report the same preemption: one run per deployment at a time, duplicates within a minute dropped.
    concurrency: [{ key: "event.data.deploymentId", limit: 1 }],
    rateLimit: { key: "event.data.deploymentId", limit: 1, period: "1m" },
  },
  async ({ event, step }) => {
    const { deploymentId } = event.data;
    const dep = await step.run("load", async () => {
      const d = await life.loadDeployment(deploymentId);
      return { teamId: d.teamId, mode: d.mode, status: d.status, live: d.status === "active" || d.status === "degraded" };
    });
    if (!dep.live || dep.mode === "serverless") return { status: "ignored" };
    await step.run("drain-spot", () => life.markSpot(deploymentId, "draining", `preemption reported by ${event.data.source ?? "router"}${event.data.detail ? `: ${event.data.detail}` : ""}`));
    if (dep.mode === "hybrid") {
      const svl = await step.run("check-serverless", () => life.checkComponent(deploymentId, "serverless"));
      if (svl.state === "failed" || svl.state === "gone") {
        await step.run("relaunch-serverless", () => life.relaunchComponent(deploymentId, "serverless"));
      }
    } else {
      await step.run("degrade", () => life.setDegraded(deploymentId, true, "spot-only deployment lost its spot capacity"));
    }
    await step.run("alert-preempted", () =>
      life.alert(dep.teamId, {
        type: "spot.preempted",
        deploymentId,
        title: "Spot replica preempted",
        text: dep.mode === "hybrid" ? "Serverless is serving while a replacement spot replica starts." : "Spot-only deployment is unavailable until a replacement replica is ready.",
      }),
    );
    // SkyServe replaces lost replicas itself; give it a moment, then make sure the service still exists.
    await step.sleep("grace", "10s");
    const after = await step.run("check-spot", () => life.checkComponent(deploymentId, "spot"));
    if (after.state === "failed" || after.state === "gone") await step.run("relaunch-spot", () => life.relaunchComponent(deploymentId, "spot"));
    const spot = await warmSpot(step, deploymentId, dep.teamId, "replace");
    return { status: spot === "ready" ? "replaced" : "degraded" };
  },
);

export const functions: InngestFunction.Any[] = [
  deployFunction,
  destroyFunction,
  destroyAllFunction,
  reconcileFunction,
  refreshUpstreamHeadersFunction,
  spotPreemptedFunction,
  deliverAlert,
  expireApprovalsFunction,
  evaluateBudgetsFunction,
  pruneUsageFunction,
  sampleSpotPricesFunction,
  pruneAuthFunction,
];

export { deployFunction };
