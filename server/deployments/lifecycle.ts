import { Prisma, type ComponentKind, type ComponentStatus as DbComponentStatus, type DeploymentStatus } from "@prisma/client";
import { NonRetriableError } from "inngest";
import { db } from "../db";
import { appendAudit, type AuditActor } from "../audit";
import { DomainError } from "../lib/errors";
import { notify } from "../alerts";
import { bumpRouterConfigVersion, openUpstreamHeaders, upstreamHeadersPurpose } from "../routerconfig";
import { encryptForTeam, PROVIDER_SECRET_KIND, providerCredentials } from "../vault";
import {
  getProvider,
  ProviderError,
  validateSpec,
  type Component,
  type ComponentStatus,
  type Credentials,
  type Plan,
  type ResourceRef,
} from "../providers";
import { mintUpstreamKey, upstreamKeyHeaders } from "../providers/base/upstream-key";
import { specFor, type StoredSpec } from "./plan";
import { appendTimeline } from "./service";

/**
 * The steps of the deployment workflows, as service functions. Each is idempotent (deterministic resource
 * names from the stored spec, "create if absent" at the provider, guarded status transitions) and writes
 * the component status after every external call, so a retried or resumed step never duplicates anything.
 */

export const WORKFLOW_ACTOR: AuditActor = { userId: null, label: "workflow" };

/** Test hook: called before every external call of the workflows with the step name ("deploy-serverless"…). */
let faultHook: ((step: string) => void | Promise<void>) | null = null;
export function setWorkflowFaultHook(fn: ((step: string) => void | Promise<void>) | null): void {
  faultHook = fn;
}
async function checkpoint(step: string): Promise<void> {
  if (faultHook) await faultHook(step);
}

/** Maps an error to Inngest's retry semantics: transient provider errors retry, the rest do not. */
export function classifyError(err: unknown): Error {
  if (err instanceof NonRetriableError) return err;
  if (err instanceof ProviderError) return err.retryable ? err : new NonRetriableError(err.message, { cause: err });
  if (err instanceof DomainError) return new NonRetriableError(err.message, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

export function errorMessage(err: unknown): string {
  if (err && typeof err === "object") {
    const e = err as { message?: unknown; cause?: unknown };
    // Inngest wraps a failed step in a StepError whose cause is the serialised original.
    if (e.cause && typeof e.cause === "object" && typeof (e.cause as { message?: unknown }).message === "string") {
      return String((e.cause as { message: string }).message);
    }
    if (typeof e.message === "string") return e.message;
  }
  return String(err);
}

export async function withCredentials<T>(
  teamId: string,
  provider: string,
  purpose: "deploy" | "destroy" | "status" | "reconcile" | "refresh",
  fn: (c: Credentials) => Promise<T>,
): Promise<T> {
  // Providers the vault knows nothing about (plugins, test providers) get {} when their schema accepts it.
  if (!(provider in PROVIDER_SECRET_KIND) && getProvider(provider).credentialsSchema.safeParse({}).success) return fn({});
  return providerCredentials(teamId, provider, purpose, WORKFLOW_ACTOR, fn);
}

export async function loadDeployment(id: string) {
  const d = await db.deployment.findUnique({ where: { id }, include: { components: true, approval: true } });
  if (!d) throw new NonRetriableError(`deployment ${id} does not exist`);
  return d;
}

type LoadedDeployment = Awaited<ReturnType<typeof loadDeployment>>;

function planFor(d: LoadedDeployment, kind: "serverless" | "spot"): Plan {
  const stored = d.spec as unknown as StoredSpec;
  const provider = kind === "serverless" ? d.serverlessProvider : stored.spotProvider;
  const gpu = kind === "serverless" ? d.serverlessGpu : d.spotGpu;
  if (!provider || !gpu) throw new NonRetriableError(`deployment ${d.id} has no ${kind} component`);
  return getProvider(provider).plan(validateSpec(specFor(d, stored, gpu)));
}

export function componentKinds(mode: string): Array<"serverless" | "spot"> {
  return mode === "hybrid" ? ["serverless", "spot"] : mode === "serverless" ? ["serverless"] : ["spot"];
}

/**
 * The component columns holding upstream auth headers: sealed for the team and component, with the time they
 * were minted (null when there are none, so nothing is due for refresh).
 */
export function sealUpstreamHeaders(
  teamId: string,
  deploymentId: string,
  kind: "serverless" | "spot",
  headers: Record<string, string>,
  mintedAt: Date = new Date(),
): { upstreamHeadersCipher: Prisma.InputJsonValue; upstreamHeadersAt: Date | null } {
  return {
    upstreamHeadersCipher: encryptForTeam(teamId, upstreamHeadersPurpose(deploymentId, kind), JSON.stringify(headers)) as unknown as Prisma.InputJsonValue,
    upstreamHeadersAt: Object.keys(headers).length > 0 ? mintedAt : null,
  };
}

/**
 * The upstream key sealed on a component (`authorization: Bearer <key>`), for a re-run or relaunch to push again
 * instead of rolling a new one. Undefined when there is none, or the headers are not a bearer key (Cloud Run's
 * ID tokens are minted by the provider and refreshed on their own schedule).
 */
export function storedUpstreamKey(
  teamId: string,
  deploymentId: string,
  c: { kind: string; upstreamHeadersCipher: Prisma.JsonValue | null } | undefined,
): string | undefined {
  if (!c) return undefined;
  const m = /^Bearer (tuna_up_\S+)$/.exec(openUpstreamHeaders(teamId, deploymentId, c.kind, c.upstreamHeadersCipher).authorization ?? "");
  return m ? m[1] : undefined;
}

/**
 * The upstream key a deploy pushes, for providers that guard their endpoint with one: the stored key, else a new
 * one stored before any deploy call. Two overlapping runs of the step (Inngest runs a step at least once) each
 * mint one, only the first to store it wins, and both push that one; minted inside the provider call, each run
 * would push its own and the key sealed last need not be the one the service kept, leaving the router with a key
 * its backend refuses.
 */
async function claimUpstreamKey(
  teamId: string,
  deploymentId: string,
  kind: "serverless" | "spot",
  existing: { kind: string; upstreamHeadersCipher: Prisma.JsonValue | null } | undefined,
  mintedAt: Date,
): Promise<string> {
  const stored = storedUpstreamKey(teamId, deploymentId, existing);
  if (stored) return stored;
  const sealed = sealUpstreamHeaders(teamId, deploymentId, kind, upstreamKeyHeaders(mintUpstreamKey()), mintedAt);
  // Only over the headers as read (none, or ones without a key): another run's key, stored meanwhile, stays.
  const before = existing?.upstreamHeadersCipher ?? null;
  const unchanged = before === null ? Prisma.sql`"upstreamHeadersCipher" IS NULL` : Prisma.sql`"upstreamHeadersCipher" = ${JSON.stringify(before)}::jsonb`;
  await db.$executeRaw`
    UPDATE "DeploymentComponent" SET "upstreamHeadersCipher" = ${JSON.stringify(sealed.upstreamHeadersCipher)}::jsonb, "upstreamHeadersAt" = ${sealed.upstreamHeadersAt}
    WHERE "deploymentId" = ${deploymentId} AND "kind" = ${kind}::"ComponentKind" AND ${unchanged}`;
  const row = await db.deploymentComponent.findUniqueOrThrow({ where: { deploymentId_kind: { deploymentId, kind } }, select: { kind: true, upstreamHeadersCipher: true } });
  const key = storedUpstreamKey(teamId, deploymentId, row);
  if (!key) throw new Error(`the ${kind} component holds upstream headers that are not a key; retrying`);
  return key;
}

async function setComponent(deploymentId: string, kind: ComponentKind, data: Prisma.DeploymentComponentUpdateInput): Promise<void> {
  await db.deploymentComponent.update({ where: { deploymentId_kind: { deploymentId, kind } }, data });
}

/*
 * A component's life: the time its provider resource existed as far as we know, which cost bills (warm workers,
 * routers). It starts when the row is created, ends the first time the resource is seen gone or is destroyed
 * (`endedAt`, never moved by later writes, unlike `updatedAt`), and starts anew when the resource exists again
 * (relaunch, redeploy, the provider reporting it), the ended life kept in DeploymentComponentLife.
 */

/** Ends the component's current life at `at`; one that already ended keeps its end. */
async function endLife(tx: Prisma.TransactionClient, deploymentId: string, kind: ComponentKind, at: Date): Promise<void> {
  await tx.deploymentComponent.updateMany({ where: { deploymentId, kind, endedAt: null }, data: { endedAt: at } });
}

/** Starts a new life at `at` if the current one ended, keeping the ended one. */
async function startLife(tx: Prisma.TransactionClient, deploymentId: string, kind: ComponentKind, at: Date): Promise<void> {
  const c = await tx.deploymentComponent.findUnique({ where: { deploymentId_kind: { deploymentId, kind } }, select: { id: true, startedAt: true, endedAt: true } });
  if (!c?.endedAt) return;
  // Conditional: of two concurrent starts exactly one moves the row and keeps the ended life.
  const moved = await tx.deploymentComponent.updateMany({ where: { id: c.id, endedAt: c.endedAt }, data: { startedAt: at, endedAt: null } });
  if (moved.count === 1) await tx.deploymentComponentLife.create({ data: { componentId: c.id, startedAt: c.startedAt, endedAt: c.endedAt } });
}

// ------------------------------------------------------------------------------------------- approval

export async function readApprovalDecision(deploymentId: string): Promise<"approved" | "rejected" | "expired" | "pending" | "none"> {
  const a = await db.approvalRequest.findUnique({ where: { deploymentId }, select: { status: true, expiresAt: true } });
  if (!a) return "none";
  if (a.status === "pending" && a.expiresAt.getTime() <= Date.now()) return "expired";
  return a.status;
}

/** Ends a request that was rejected or whose approval expired. Guarded: only from pending_approval. */
export async function closeUnapproved(deploymentId: string, outcome: "rejected" | "expired"): Promise<boolean> {
  const changed = await db.$transaction(async (tx) => {
    const d = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { teamId: true, status: true } });
    if (d?.status !== "pending_approval") return null;
    await tx.deployment.update({ where: { id: deploymentId }, data: { status: outcome } });
    if (outcome === "expired") {
      await tx.approvalRequest.updateMany({ where: { deploymentId, status: "pending" }, data: { status: "expired", decidedAt: new Date() } });
    }
    await tx.deploymentEvent.create({
      data: { deploymentId, step: "approval", status: outcome, message: outcome === "expired" ? "no decision before the approval expired" : "the request was rejected" },
    });
    await appendAudit(tx, d.teamId, WORKFLOW_ACTOR, { action: `deployment.${outcome}`, targetType: "deployment", targetId: deploymentId });
    return d.teamId;
  });
  return changed !== null;
}

// ------------------------------------------------------------------------------------------- deploy

/** Timeline row naming the workflow run that owns a deploy (no schema column: the timeline is the record). */
const DEPLOY_OWNER_STEP = "start";
const DEPLOY_OWNER_STATUS = "run";
const ownerMessage = (runId: string) => `deploy run ${runId}`;

/**
 * queued/pending_approval → deploying, with a pending component row (and its plan) per component, recording
 * `runId` as the run that owns the deploy. A request waiting for approval moves only once its ApprovalRequest
 * says approved: what the triggering event claims (`requiresApproval`) is not trusted here. A second run for the same deployment (deployment/requested delivered
 * twice) gets `proceed: false`; a retry of the owning run proceeds. Permanent errors (a plan the provider
 * refuses, an invalid spec) are not retried.
 */
export async function startDeploying(deploymentId: string, runId?: string): Promise<{ proceed: boolean; kinds: Array<"serverless" | "spot"> }> {
  try {
    const d = await loadDeployment(deploymentId);
    const kinds = componentKinds(d.mode);
    if (d.status !== "queued" && d.status !== "pending_approval" && d.status !== "deploying") return { proceed: false, kinds };
    const stored = d.spec as unknown as StoredSpec;
    const plans = kinds.map((kind) => ({ kind, plan: planFor(d, kind), provider: kind === "serverless" ? d.serverlessProvider! : stored.spotProvider! }));
    const proceed = await db.$transaction(async (tx) => {
      // Conditional: of two runs starting at once exactly one moves the row (the other waits on its lock, then sees 0 rows).
      const moved = await tx.deployment.updateMany({
        where: { id: deploymentId, OR: [{ status: "queued" }, { status: "pending_approval", approval: { is: { status: "approved" } } }] },
        data: { status: "deploying" },
      });
      if (moved.count === 0) {
        const now = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { status: true } });
        if (now?.status !== "deploying") return false;
        const owner = await tx.deploymentEvent.findFirst({ where: { deploymentId, step: DEPLOY_OWNER_STEP, status: DEPLOY_OWNER_STATUS }, select: { message: true } });
        // Owned by another run: this one is a duplicate. (No owner row: a deploy started before owners were recorded.)
        if (owner && (!runId || owner.message !== ownerMessage(runId))) return false;
      }
      for (const { kind, plan, provider } of plans) {
        await tx.deploymentComponent.upsert({
          where: { deploymentId_kind: { deploymentId, kind } },
          create: { deploymentId, kind, provider, status: "pending", plan: plan as unknown as Prisma.InputJsonValue },
          update: {},
        });
      }
      if (moved.count > 0) {
        await tx.deploymentEvent.create({ data: { deploymentId, step: "start", status: "ok", message: `deploying ${kinds.join(" + ")}` } });
        if (runId) await tx.deploymentEvent.create({ data: { deploymentId, step: DEPLOY_OWNER_STEP, status: DEPLOY_OWNER_STATUS, message: ownerMessage(runId) } });
      }
      return true;
    });
    return { proceed, kinds };
  } catch (err) {
    throw classifyError(err);
  }
}

/** Stops a deploy that a destroy overtook. */
export async function stillDeploying(deploymentId: string): Promise<boolean> {
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { status: true } });
  return d?.status === "deploying";
}

/**
 * The external call that creates one component. Providers create-or-reuse the resource named by the plan,
 * so a retry after a crash finds what the first attempt made.
 */
export async function deployComponent(deploymentId: string, kind: "serverless" | "spot"): Promise<{ endpointUrl: string }> {
  const step = `deploy-${kind}`;
  const d = await loadDeployment(deploymentId);
  // Already created (a repeated or resumed step): the row written after the call is the proof.
  const existing = d.components.find((c) => c.kind === kind);
  if (existing?.endpointUrl && existing.status !== "failed" && existing.status !== "pending" && existing.status !== "destroyed") {
    return { endpointUrl: existing.endpointUrl };
  }
  if (d.status !== "deploying") throw new NonRetriableError(`deployment is ${d.status}, not deploying`);
  const plan = planFor(d, kind);
  const provider = getProvider(plan.provider);
  /*
   * Steps run at least once, and a run of this step may overlap another (Inngest retries a step whose
   * answer was lost; its test engine runs a parallel step a second time while the first is still going).
   * So no write here may take the component back from a status a later step gave it: the start repeats
   * the check above in its own write, and later writes only touch a component this step left creating.
   */
  const started = await db.$transaction(async (tx) => {
    const moved = await tx.deploymentComponent.updateMany({
      where: { deploymentId, kind, OR: [{ endpointUrl: null }, { status: { in: ["failed", "pending", "destroyed"] } }] },
      data: { status: "creating", lastError: null },
    });
    if (moved.count === 0) return false;
    await startLife(tx, deploymentId, kind, new Date());
    return true;
  });
  if (!started) {
    const c = await db.deploymentComponent.findUniqueOrThrow({ where: { deploymentId_kind: { deploymentId, kind } }, select: { endpointUrl: true } });
    if (c.endpointUrl) return { endpointUrl: c.endpointUrl };
    throw new Error(`the ${kind} component changed while its deploy started; retrying`);
  }
  await appendTimeline(deploymentId, step, "started", `${provider.displayName} ${plan.gpu.catalogName} × ${plan.gpu.count} (${plan.resourceName})`);
  try {
    await checkpoint(step);
    const mintedAt = new Date();
    const upstreamKey = provider.mintsUpstreamKey ? await claimUpstreamKey(d.teamId, deploymentId, kind, existing, mintedAt) : storedUpstreamKey(d.teamId, deploymentId, existing);
    const component = await withCredentials(d.teamId, plan.provider, "deploy", (creds) => provider.deploy(plan, creds, { upstreamKey }));
    // No status: the start above left it creating, and a step after this one may have moved it on.
    await setComponent(deploymentId, kind, {
      endpointUrl: component.endpointUrl,
      externalIds: component.externalIds,
      ...sealUpstreamHeaders(d.teamId, deploymentId, kind, component.upstreamHeaders, mintedAt),
    });
    await appendTimeline(deploymentId, step, "ok", `endpoint created at ${component.endpointUrl}`);
    return { endpointUrl: component.endpointUrl };
  } catch (err) {
    const e = classifyError(err);
    await db.deploymentComponent.updateMany({
      where: { deploymentId, kind, status: { in: ["pending", "creating"] } },
      data: { status: e instanceof NonRetriableError ? "failed" : "creating", lastError: errorMessage(err).slice(0, 2000) },
    });
    await appendTimeline(deploymentId, step, e instanceof NonRetriableError ? "failed" : "retrying", errorMessage(err));
    throw e;
  }
}

export function refOf(c: { plan: Prisma.JsonValue; externalIds: Prisma.JsonValue }): ResourceRef {
  const plan = c.plan as unknown as Plan | null;
  return {
    resourceName: plan?.resourceName ?? "",
    region: plan?.region ?? "",
    externalIds: (c.externalIds ?? {}) as Record<string, string>,
  };
}

const STATE_TO_DB: Record<ComponentStatus["state"], DbComponentStatus> = {
  creating: "creating",
  ready: "ready",
  scaled_to_zero: "scaled_to_zero",
  failed: "failed",
  gone: "gone",
};

/** Asks the provider how one component is doing and records it. */
export async function checkComponent(
  deploymentId: string,
  kind: "serverless" | "spot",
  purpose: "status" | "reconcile" = "status",
): Promise<{ state: ComponentStatus["state"]; message: string | null; ready: number | null }> {
  const c = await db.deploymentComponent.findUnique({
    where: { deploymentId_kind: { deploymentId, kind } },
    include: { deployment: { select: { teamId: true } } },
  });
  if (!c) throw new NonRetriableError(`deployment ${deploymentId} has no ${kind} component`);
  await checkpoint(`check-${kind}`);
  let s: ComponentStatus;
  try {
    s = await withCredentials(c.deployment.teamId, c.provider, purpose, (creds) => getProvider(c.provider).status(refOf(c), creds));
  } catch (err) {
    throw classifyError(err);
  }
  // A draining spot backend stays draining until the replacement is ready.
  const status = c.status === "draining" && s.state !== "ready" ? "draining" : STATE_TO_DB[s.state];
  const next = {
    status,
    ...(s.replicas ? { replicasReady: s.replicas.ready, replicasTotal: s.replicas.total } : {}),
    ...(s.state === "failed" ? { lastError: s.message ?? "failed" } : {}),
  };
  const unchanged = (Object.keys(next) as Array<keyof typeof next>).every((k) => c[k] === next[k]);
  // Any state but gone means the resource exists (a draining spot seen gone stays draining, yet has ended).
  const life = s.state === "gone" ? (c.endedAt ? null : "end") : c.endedAt ? "start" : null;
  // Written only when something changed (reconcile re-checks every few minutes).
  if (!unchanged || life) {
    const at = new Date();
    await db.$transaction(async (tx) => {
      if (!unchanged) await tx.deploymentComponent.update({ where: { id: c.id }, data: next });
      if (life === "end") await endLife(tx, deploymentId, kind, at);
      if (life === "start") await startLife(tx, deploymentId, kind, at);
    });
  }
  return { state: s.state, message: s.message ?? null, ready: s.replicas?.ready ?? null };
}

/** Publishes the deployment's backends in the router snapshot (new config version). */
export async function publishToRouter(deploymentId: string, why: string): Promise<void> {
  await checkpoint("publish-router");
  await db.$transaction(async (tx) => {
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step: "publish-router", status: "ok", message: why } });
  });
}

/** deploying → active (the router serves it). Guarded, so a repeat is a no-op. */
export async function activateDeployment(deploymentId: string): Promise<boolean> {
  await checkpoint("activate");
  return db.$transaction(async (tx) => {
    const d = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { teamId: true, status: true, slug: true } });
    if (!d) return false;
    // Conditional update: of two concurrent attempts exactly one moves the row.
    const moved = await tx.deployment.updateMany({
      where: { id: deploymentId, status: "deploying" },
      data: { status: "active", activatedAt: new Date(), failureStep: null, failureReason: null },
    });
    // A repeated step finds its own work done: same answer. Anything else means a destroy overtook it.
    // Re-read: a concurrent attempt may have moved the row after our first read (READ COMMITTED).
    if (moved.count === 0) {
      const now = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { status: true } });
      return now?.status === "active" || now?.status === "degraded";
    }
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step: "activate", status: "ok", message: `${d.slug} is serving` } });
    await appendAudit(tx, d.teamId, WORKFLOW_ACTOR, { action: "deployment.active", targetType: "deployment", targetId: deploymentId });
    return true;
  });
}

/** active ⇄ degraded (spot failed to warm, or lost and not replaced). */
export async function setDegraded(deploymentId: string, degraded: boolean, message: string): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const from: DeploymentStatus = degraded ? "active" : "degraded";
    const moved = await tx.deployment.updateMany({ where: { id: deploymentId, status: from }, data: { status: degraded ? "degraded" : "active" } });
    if (moved.count === 0) return false;
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step: degraded ? "degraded" : "recovered", status: degraded ? "warning" : "ok", message } });
    return true;
  });
}

/** Records a spot component change the router must see (ready replicas, draining). */
export async function markSpot(deploymentId: string, status: DbComponentStatus, message: string): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.deploymentComponent.updateMany({ where: { deploymentId, kind: "spot" }, data: { status, ...(status === "draining" ? { replicasReady: 0 } : {}) } });
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step: "spot", status, message } });
  });
}

// ------------------------------------------------------------------------------------------- teardown

/**
 * Destroys every component that may exist (by its plan's deterministic name, so a half-created one is found
 * too) and cleans provider storage. Idempotent: providers treat "already gone" as success.
 */
export async function destroyComponents(deploymentId: string, stepPrefix = "destroy"): Promise<{ destroyed: string[] }> {
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, include: { components: true } });
  if (!d) return { destroyed: [] };
  const destroyed: string[] = [];
  for (const c of d.components) {
    if (c.status === "destroyed") continue;
    const step = `${stepPrefix}-${c.kind}`;
    if (!c.plan) {
      await db.$transaction(async (tx) => {
        await tx.deploymentComponent.update({ where: { id: c.id }, data: { status: "destroyed" } });
        await endLife(tx, deploymentId, c.kind, new Date());
      });
      continue;
    }
    await setComponent(deploymentId, c.kind, { status: "destroying" });
    await removeComponent(d.teamId, deploymentId, c.kind, c.provider, refOf(c), step);
    await appendTimeline(deploymentId, step, "ok", `${c.provider} resources removed`);
    destroyed.push(c.kind);
  }
  return { destroyed };
}

/**
 * Removes one component's provider resources (service, then storage), then records it destroyed and tells the
 * routers. With `step`, the step's checkpoint runs first and a failure is written to the timeline as retrying.
 */
async function removeComponent(teamId: string, deploymentId: string, kind: ComponentKind, providerName: string, ref: ResourceRef, step: string | null): Promise<void> {
  try {
    if (step) await checkpoint(step);
    const provider = getProvider(providerName);
    await withCredentials(teamId, providerName, "destroy", async (creds) => {
      await provider.destroy(ref, creds);
      await provider.cleanupStorage(ref, creds);
    });
  } catch (err) {
    await setComponent(deploymentId, kind, { lastError: errorMessage(err).slice(0, 2000) });
    if (step) await appendTimeline(deploymentId, step, "retrying", errorMessage(err));
    // Teardown must finish: every error retries (a permanent one ends in a failed run and an alert, or, for a
    // relaunch that lost to a destroy, in reconcile's orphan sweep).
    throw err instanceof ProviderError && !err.retryable ? new Error(err.message, { cause: err }) : err;
  }
  await db.$transaction(async (tx) => {
    await tx.deploymentComponent.update({
      where: { deploymentId_kind: { deploymentId, kind } },
      data: { status: "destroyed", replicasReady: 0, upstreamHeadersCipher: Prisma.DbNull, upstreamHeadersAt: null },
    });
    // Seen gone earlier: it ended then, not now.
    await endLife(tx, deploymentId, kind, new Date());
    await bumpRouterConfigVersion(tx);
  });
}

/**
 * Compensation result: the deployment is failed, naming the step and a readable reason. Returns what it did:
 * `failed`, `destroyed` (a destroy had overtaken the deploy) or null (nothing: already destroyed or failed), so
 * the caller alerts "Deployment failed" only when it really failed.
 */
export async function failDeployment(deploymentId: string, step: string, reason: string): Promise<"failed" | "destroyed" | null> {
  return db.$transaction(async (tx) => {
    const d = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { teamId: true, status: true } });
    if (!d || d.status === "destroyed" || d.status === "failed") return null;
    const next: DeploymentStatus = d.status === "destroying" ? "destroyed" : "failed";
    await tx.deployment.update({
      where: { id: deploymentId },
      data: next === "failed" ? { status: "failed", failureStep: step, failureReason: reason.slice(0, 2000) } : { status: "destroyed", destroyedAt: new Date() },
    });
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step, status: "failed", message: reason.slice(0, 2000) } });
    await appendAudit(tx, d.teamId, WORKFLOW_ACTOR, { action: "deployment.failed", targetType: "deployment", targetId: deploymentId, metadata: { step, reason: reason.slice(0, 500) } });
    return next;
  });
}

/** Final state of a destroy: destroyed, revoked from the router. */
export async function finishDestroy(deploymentId: string): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const d = await tx.deployment.findUnique({ where: { id: deploymentId }, select: { teamId: true, status: true } });
    if (!d) return false;
    if (d.status !== "destroyed") {
      const keep = d.status === "rejected" || d.status === "expired";
      await tx.deployment.update({ where: { id: deploymentId }, data: { ...(keep ? {} : { status: "destroyed" }), destroyedAt: new Date() } });
      await tx.approvalRequest.updateMany({ where: { deploymentId, status: "pending" }, data: { status: "expired", decidedAt: new Date() } });
    }
    await bumpRouterConfigVersion(tx);
    await tx.deploymentEvent.create({ data: { deploymentId, step: "destroy", status: "ok", message: "every component is gone; revoked from the router" } });
    await appendAudit(tx, d.teamId, WORKFLOW_ACTOR, { action: "deployment.destroyed", targetType: "deployment", targetId: deploymentId });
    return true;
  });
}

// ------------------------------------------------------------------------------------------- alerts

/** Alerts never fail a workflow: delivery has its own retries in the alerts domain. */
export async function alert(
  teamId: string,
  a: { type: string; deploymentId?: string; title: string; text: string; costPerHourMicros?: number },
): Promise<void> {
  try {
    await notify(teamId, a);
  } catch (err) {
    console.warn(`[workflows] alert ${a.type} not queued: ${errorMessage(err)}`);
  }
}

/** Timeline row written once even if its step is retried. */
export async function appendTimelineOnce(deploymentId: string, step: string, status: string, message: string): Promise<void> {
  const exists = await db.deploymentEvent.findFirst({ where: { deploymentId, step, status, message }, select: { id: true } });
  if (!exists) await appendTimeline(deploymentId, step, status, message);
}

export async function deploymentIsLive(deploymentId: string): Promise<boolean> {
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { status: true } });
  return d?.status === "active" || d?.status === "degraded" || d?.status === "deploying";
}

/**
 * Re-creates a lost component (create-if-absent: SkyServe keeps its service, the simulator starts anew).
 *
 * A destroy can land at any moment: the component is claimed (`creating`) only while the deployment is serving,
 * so a destroy that starts later tears it down; after the provider call the deployment is re-read under its row
 * lock, and if a destroy got there first what was just created is removed again instead of being recorded.
 */
export async function relaunchComponent(deploymentId: string, kind: "serverless" | "spot"): Promise<void> {
  const d = await loadDeployment(deploymentId);
  if (d.status !== "active" && d.status !== "degraded") return;
  const plan = planFor(d, kind);
  const claimed = await db.$transaction(async (tx) => {
    const r = await tx.deploymentComponent.updateMany({
      where: { deploymentId, kind, status: { notIn: ["destroying", "destroyed"] }, deployment: { status: { in: ["active", "degraded"] } } },
      data: { status: "creating", lastError: null },
    });
    // The replacement is billed from its claim (as a deploy from its row), the gap since the old one was lost is not.
    if (r.count > 0) await startLife(tx, deploymentId, kind, new Date());
    return r;
  });
  if (claimed.count === 0) return;
  const provider = getProvider(plan.provider);
  let created: Component;
  const mintedAt = new Date();
  try {
    await checkpoint(`relaunch-${kind}`);
    // The key the router holds goes out again: replicas that keep running keep accepting its requests.
    const upstreamKey = storedUpstreamKey(d.teamId, deploymentId, d.components.find((c) => c.kind === kind));
    created = await withCredentials(d.teamId, plan.provider, "deploy", (creds) => provider.deploy(plan, creds, { upstreamKey }));
  } catch (err) {
    const e = classifyError(err);
    await db.deploymentComponent.updateMany({
      where: { deploymentId, kind, status: "creating" },
      data: { ...(e instanceof NonRetriableError ? { status: "failed" } : {}), lastError: errorMessage(err).slice(0, 2000) },
    });
    throw e;
  }
  const kept = await db.$transaction(async (tx) => {
    // Locks the deployment row: a destroy request either committed before this (we see it) or waits and then
    // finds the component live with its endpoint, which its teardown removes.
    const rows = await tx.$queryRaw<Array<{ status: string }>>`SELECT status::text AS status FROM "Deployment" WHERE id = ${deploymentId} FOR UPDATE`;
    const status = rows[0]?.status;
    if (status !== "active" && status !== "degraded") {
      // Recorded as being torn down before the call, so if the call fails the orphan sweep finds it.
      await tx.deploymentComponent.update({ where: { deploymentId_kind: { deploymentId, kind } }, data: { status: "destroying" } });
      return false;
    }
    await tx.deploymentComponent.update({
      where: { deploymentId_kind: { deploymentId, kind } },
      data: {
        status: "creating",
        endpointUrl: created.endpointUrl,
        externalIds: created.externalIds,
        lastError: null,
        ...sealUpstreamHeaders(d.teamId, deploymentId, kind, created.upstreamHeaders, mintedAt),
      },
    });
    // The router must see the backend again now, not at the next reconcile.
    await bumpRouterConfigVersion(tx);
    return true;
  });
  if (!kept) {
    const ref: ResourceRef = { resourceName: plan.resourceName, region: plan.region, externalIds: created.externalIds };
    await removeComponent(d.teamId, deploymentId, kind, plan.provider, ref, null);
    await appendTimeline(deploymentId, `relaunch-${kind}`, "ok", `${kind} replacement removed again: the deployment was destroyed meanwhile`);
    return;
  }
  await appendTimeline(deploymentId, `relaunch-${kind}`, "ok", `${kind} replacement requested`);
}

/**
 * Compares one deployment with what its providers report. Drift (the provider lost or failed a component
 * we think is serving) marks the component and degrades the deployment; a serving deployment whose
 * components are all back becomes active again. Returns what changed, for alerts.
 */
export async function reconcileDeployment(deploymentId: string): Promise<{ drift: string[]; recovered: boolean; spotLost: string | null }> {
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, include: { components: true } });
  if (!d || (d.status !== "active" && d.status !== "degraded")) return { drift: [], recovered: false, spotLost: null };
  const drift: string[] = [];
  let spotLost: string | null = null;
  let allReady = true;
  for (const c of d.components) {
    if (c.kind === "router" || c.status === "destroyed") continue;
    const kind = c.kind;
    const before = c.status;
    const s = await checkComponent(deploymentId, kind, "reconcile");
    if (s.state !== "ready" && s.state !== "scaled_to_zero") allReady = false;
    if ((s.state === "failed" || s.state === "gone") && before !== "failed" && before !== "gone" && before !== "draining") {
      const what = `${kind} (${c.provider}) is ${s.state}${s.message ? `: ${s.message}` : ""}`;
      // A lost spot replica is a preemption (SkyPilot status): the spot-preempted workflow handles it.
      if (kind === "spot" && d.mode === "hybrid") spotLost = what;
      else drift.push(what);
    }
  }
  if (drift.length) {
    await db.$transaction(async (tx) => {
      await bumpRouterConfigVersion(tx);
      await tx.deploymentEvent.create({ data: { deploymentId, step: "reconcile", status: "drift", message: drift.join("; ") } });
    });
    await setDegraded(deploymentId, true, `provider state drifted: ${drift.join("; ")}`);
  }
  const recovered = allReady && d.status === "degraded" ? await setDegraded(deploymentId, false, "every component is ready again") : false;
  return { drift, recovered, spotLost };
}

/** How long a destroy may stay `destroying` before reconcile treats its components as orphans (its run gave up). */
export const STALE_DESTROY_GRACE_MS = 60 * 60_000;

/**
 * Components of ended deployments that were never torn down: a compensation or destroy that gave up (failed
 * deployments, deployments still `destroying` past a grace period), a relaunch that lost a race with a destroy.
 */
export async function findOrphanedComponents(
  limit = 100,
  now: Date = new Date(),
): Promise<Array<{ deploymentId: string; teamId: string; kind: string; provider: string }>> {
  const rows = await db.deploymentComponent.findMany({
    where: {
      status: { notIn: ["destroyed", "gone"] },
      deployment: {
        OR: [
          { status: { in: ["failed", "destroyed", "rejected", "expired"] } },
          { status: "destroying", updatedAt: { lt: new Date(now.getTime() - STALE_DESTROY_GRACE_MS) } },
        ],
      },
    },
    select: { deploymentId: true, kind: true, provider: true, deployment: { select: { teamId: true } } },
    orderBy: [{ deploymentId: "asc" }, { kind: "asc" }],
    take: limit,
  });
  return rows.map((r) => ({ deploymentId: r.deploymentId, teamId: r.deployment.teamId, kind: r.kind, provider: r.provider }));
}

/**
 * Records that reconcile found an orphaned component (a timeline row). True only the first time, so the orphan
 * is alerted once however many cron runs and retries its teardown takes. (Reconcile runs one at a time.)
 */
export async function recordOrphanFound(deploymentId: string, kind: string, provider: string): Promise<boolean> {
  const step = `orphan-${kind}`;
  const seen = await db.deploymentEvent.findFirst({ where: { deploymentId, step, status: "found" }, select: { id: true } });
  if (seen) return false;
  await appendTimeline(deploymentId, step, "found", `${kind} on ${provider} outlived its deployment; reconcile is destroying it`);
  return true;
}

/** How often a team is reminded of orphaned resources whose teardown keeps failing (they bill meanwhile). */
export const ORPHAN_REMINDER_MS = 24 * 60 * 60_000;

/**
 * Records that reconcile's teardown of a deployment's orphans failed again. True (remind the team) when the
 * last word the team had about them (found, or the last reminder) is `ORPHAN_REMINDER_MS` old: a teardown that
 * keeps failing, e.g. on a revoked provider key, is not left to bill in silence after one alert.
 */
export async function recordOrphanSweepFailed(deploymentId: string, error: string, now: Date = new Date()): Promise<boolean> {
  const last = await db.deploymentEvent.findFirst({
    where: { deploymentId, OR: [{ step: { startsWith: "orphan-" }, status: "found" }, { step: "orphan-sweep", status: "still_failing" }] },
    orderBy: { at: "desc" },
    select: { at: true },
  });
  if (last && now.getTime() - last.at.getTime() < ORPHAN_REMINDER_MS) return false;
  await appendTimeline(deploymentId, "orphan-sweep", "still_failing", `orphaned resources not removed yet: ${error}`);
  return true;
}

/**
 * Records that no orphan of the deployment is left. True (tell the team) the first time after orphans were
 * found, so the alert that said "destroying it" gets its answer once.
 */
export async function recordOrphansRemoved(deploymentId: string): Promise<boolean> {
  const [found, removed, left] = await Promise.all([
    db.deploymentEvent.findFirst({ where: { deploymentId, step: { startsWith: "orphan-" }, status: "found" }, orderBy: { at: "desc" }, select: { at: true } }),
    db.deploymentEvent.findFirst({ where: { deploymentId, step: "orphan-sweep", status: "removed" }, orderBy: { at: "desc" }, select: { at: true } }),
    db.deploymentComponent.count({ where: { deploymentId, status: { notIn: ["destroyed", "gone"] } } }),
  ]);
  if (!found || left > 0 || (removed && removed.at >= found.at)) return false;
  await appendTimeline(deploymentId, "orphan-sweep", "removed", "every orphaned resource is destroyed");
  return true;
}

/** Reconcile's teardown of an orphan: every component that may exist, then a stuck destroy is finished. */
export async function sweepOrphanedDeployment(deploymentId: string): Promise<{ destroyed: string[]; finished: boolean }> {
  const r = await destroyComponents(deploymentId, "reconcile-destroy");
  const d = await db.deployment.findUnique({ where: { id: deploymentId }, select: { status: true } });
  const finished = d?.status === "destroying" ? await finishDestroy(deploymentId) : false;
  return { destroyed: r.destroyed, finished };
}

export async function listServingDeployments(limit = 500): Promise<Array<{ id: string; teamId: string }>> {
  return db.deployment.findMany({ where: { status: { in: ["active", "degraded"] } }, select: { id: true, teamId: true }, orderBy: { id: "asc" }, take: limit });
}

/** Marks every live deployment of a team `destroying` (one transaction) and returns their ids. */
export async function markTeamDestroying(teamId: string): Promise<Array<{ id: string; providerAccount: string }>> {
  return db.$transaction(async (tx) => {
    const rows = await tx.deployment.findMany({
      where: { teamId, status: { in: ["pending_approval", "queued", "deploying", "active", "degraded", "failed", "destroying"] } },
      select: { id: true, status: true, serverlessProvider: true, spec: true },
    });
    for (const r of rows) {
      if (r.status !== "destroying") await tx.deployment.update({ where: { id: r.id }, data: { status: "destroying" } });
      await tx.deploymentEvent.create({ data: { deploymentId: r.id, step: "destroy", status: "requested", message: "destroy-all requested by an admin" } });
    }
    return rows.map((r) => ({
      id: r.id,
      providerAccount: `${teamId}:${r.serverlessProvider ?? (r.spec as { spotProvider?: string } | null)?.spotProvider ?? "none"}`,
    }));
  });
}
