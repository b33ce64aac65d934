import { randomBytes } from "node:crypto";
import type { DeploymentStatus, Prisma, Role } from "@prisma/client";
import { db } from "../db";
import { appendAudit, type AuditActor } from "../audit";
import { DomainError, notFound } from "../lib/errors";
import { createApprovalRequest, evaluateApprovalPolicy, getTeamPolicy, notifyApprovalRequested } from "../approvals";
import { sendEvent } from "../workflows/events";
import { assertPricedUnderBudgets, blockForDeployment, teamBudgetBlocks, unknownPriceReason } from "../usage/budgets";
import { resolveDeployment, type DeploymentInput, type ResolvedDeployment } from "./plan";

/** Statuses in which a deployment holds (or may hold) provider resources. */
export const LIVE_STATUSES: DeploymentStatus[] = ["pending_approval", "queued", "deploying", "active", "degraded"];
const FINAL_STATUSES: DeploymentStatus[] = ["destroyed", "rejected", "expired"];

export function newDeploymentId(): string {
  // Lowercase alphanumerics only: it becomes part of external resource names.
  return `d${Date.now().toString(36)}${randomBytes(5).toString("hex")}`;
}

/** One timeline row (step, status, time, message): what the dashboard polls. */
export async function appendTimeline(deploymentId: string, step: string, status: string, message?: string | null): Promise<void> {
  await db.deploymentEvent.create({ data: { deploymentId, step, status, message: message ? message.slice(0, 2000) : null } });
}

export interface Quote {
  slug: string;
  mode: ResolvedDeployment["mode"];
  serverlessProvider: string | null;
  spotProvider: string | null;
  serverlessGpu: string | null;
  spotGpu: string | null;
  providerReason: string | null;
  cost: ResolvedDeployment["cost"];
  idleCost: ResolvedDeployment["idleCost"];
  estimatedCostPerHourMicros: number;
  approval: { required: boolean; reasons: string[] };
  notes: string[];
  /**
   * Parts without a known price ("No known spot price for H200 on aws"): their spend cannot be counted, so
   * the estimate leaves them out and no budget could limit them. Where a budget applies, quote and create
   * refuse the request instead (BAD_REQUEST "price_unknown").
   */
  unknownPrices: string[];
}

async function approvalFor(teamId: string, role: Role, r: ResolvedDeployment) {
  const policy = await getTeamPolicy(teamId);
  const decision = evaluateApprovalPolicy(policy, {
    requesterRole: role,
    ...(r.serverlessGpu ? { serverlessGpu: r.serverlessGpu } : {}),
    ...(r.spotGpu ? { spotGpu: r.spotGpu } : {}),
    mode: r.mode,
    estimatedCostPerHourMicros: r.estimatedCostPerHourMicros,
    unknownPrices: unpricedInEstimate(r),
  });
  return { required: decision.required, reasons: [...decision.reasons] };
}

/** The parts the estimate counts as $0 for want of a price, named as the quote names them. */
function unpricedInEstimate(r: ResolvedDeployment): string[] {
  const unpriced = new Set(r.cost.items.filter((i) => i.unitPriceMicros === null && i.quantity > 0).map((i) => i.component));
  return (["serverless", "spot"] as const).filter((part) => unpriced.has(part)).map((part) => unknownPriceReason(r, part));
}

/**
 * Secrets the model server needs at run time, by name: HF_TOKEN when the team keeps a Hugging Face token in
 * the vault (gated models fail to download without it; the earlier tool forgot to pass it).
 */
async function workloadSecretNames(teamId: string): Promise<string[]> {
  const hf = await db.secret.findFirst({ where: { teamId, kind: "huggingface", deletedAt: null }, select: { id: true } });
  return hf ? ["HF_TOKEN"] : [];
}

/**
 * Clients name a deployment by its slug or its served model name, so neither may be claimed twice in a team.
 * CONFLICT "slug_taken" / "name_taken"; the quote runs it too, so the form shows the clash before submit.
 */
async function assertNamesFree(client: Prisma.TransactionClient, teamId: string, r: Pick<ResolvedDeployment, "slug" | "servedModelName">) {
  const names = [...new Set([r.slug, r.servedModelName])];
  const clash = await client.deployment.findFirst({
    where: { teamId, status: { in: LIVE_STATUSES }, OR: [{ slug: { in: names } }, { servedModelName: { in: names } }] },
    select: { slug: true, servedModelName: true },
  });
  if (clash?.slug === r.slug) throw new DomainError("CONFLICT", `A deployment named "${r.slug}" already exists in this team; pick another slug.`, { reason: "slug_taken" });
  if (clash) {
    const taken = names.find((n) => n === clash.slug || n === clash.servedModelName) ?? r.slug;
    throw new DomainError("CONFLICT", `"${taken}" already names deployment "${clash.slug}" in this team (clients select deployments by slug or served model name); pick another slug or served model name.`, { reason: "name_taken" });
  }
}

/** Validation, name clashes, provider choice, cost and approval need, without writing anything (the form's live quote). */
export async function quoteDeployment(teamId: string, role: Role, input: DeploymentInput): Promise<Quote> {
  const r = resolveDeployment(teamId, input);
  await assertNamesFree(db, teamId, r);
  const unknownPrices = await assertPricedUnderBudgets(teamId, r);
  return {
    slug: r.slug,
    mode: r.mode,
    serverlessProvider: r.serverlessProvider,
    spotProvider: r.spotProvider,
    serverlessGpu: r.serverlessGpu,
    spotGpu: r.spotGpu,
    providerReason: r.providerReason,
    cost: r.cost,
    idleCost: r.idleCost,
    estimatedCostPerHourMicros: r.estimatedCostPerHourMicros,
    approval: await approvalFor(teamId, role, r),
    notes: [...(r.plans.serverless?.notes ?? []), ...(r.plans.spot?.notes ?? [])],
    unknownPrices,
  };
}

/**
 * Validates, prices and records a deployment request (Deployment + ApprovalRequest when the policy says so +
 * audit row, one transaction), then sends `deployment/requested` for the deploy workflow.
 */
export async function requestDeployment(
  teamId: string,
  actor: AuditActor & { userId: string; role: Role },
  input: DeploymentInput,
): Promise<{ id: string; status: DeploymentStatus }> {
  const id = newDeploymentId();
  const r = resolveDeployment(teamId, input, id, { secretNames: await workloadSecretNames(teamId) });
  const approval = await approvalFor(teamId, actor.role, r);
  const status: DeploymentStatus = approval.required ? "pending_approval" : "queued";
  const created = await db.$transaction(async (tx) => {
    await assertNamesFree(tx, teamId, r);
    const unknownPrices = await assertPricedUnderBudgets(teamId, r, { client: tx });
    const dep = await tx.deployment.create({
      data: {
        id,
        teamId,
        slug: r.slug,
        model: r.model,
        servedModelName: r.servedModelName,
        mode: r.mode,
        status,
        serverlessProvider: r.serverlessProvider,
        serverlessGpu: r.serverlessGpu,
        spotGpu: r.spotGpu,
        spotClouds: r.spotClouds,
        spotRegions: r.spotRegions,
        region: r.region,
        gpuCount: r.gpuCount,
        direct: r.direct,
        spec: r.spec as unknown as Prisma.InputJsonValue,
        estimatedCostPerHourMicros: BigInt(r.estimatedCostPerHourMicros),
        createdById: actor.userId,
      },
    });
    // What the approver sees and what the audit row records about the plan.
    const plan = {
      slug: r.slug,
      model: r.model,
      mode: r.mode,
      serverlessProvider: r.serverlessProvider,
      spotProvider: r.spotProvider,
      serverlessGpu: r.serverlessGpu,
      spotGpu: r.spotGpu,
    };
    let expiresAt: Date | null = null;
    let approvalId: string | null = null;
    if (approval.required) {
      const req = await createApprovalRequest(tx, {
        teamId,
        deploymentId: id,
        requestedById: actor.userId,
        reasons: approval.reasons,
        summary: { ...plan, gpuCount: r.gpuCount, costDisplay: r.cost.totalDisplay, unknownPrices },
        estimatedCostPerHourMicros: BigInt(r.estimatedCostPerHourMicros),
      });
      expiresAt = req.expiresAt;
      approvalId = req.id;
    }
    await tx.deploymentEvent.create({
      data: {
        deploymentId: id,
        step: "request",
        status: "ok",
        message: [
          `requested by ${actor.label}`,
          r.providerReason,
          `estimated ${r.cost.totalDisplay} while serving`,
          ...unknownPrices,
          approval.required ? `needs approval: ${approval.reasons.join("; ")}` : null,
        ]
          .filter(Boolean)
          .join(" · "),
      },
    });
    await appendAudit(tx, teamId, actor, {
      action: "deployment.request",
      targetType: "deployment",
      targetId: id,
      metadata: {
        ...plan,
        providerReason: r.providerReason,
        estimatedCostPerHourMicros: r.estimatedCostPerHourMicros,
        approvalRequired: approval.required,
        ...(unknownPrices.length ? { unknownPrices } : {}),
      },
    });
    return { dep, expiresAt, approvalId };
  });
  if (created.approvalId) await notifyApprovalRequested(created.approvalId);
  await sendEvent("deployment/requested", {
    deploymentId: id,
    teamId,
    requiresApproval: approval.required,
    providerAccount: `${teamId}:${r.serverlessProvider ?? r.spotProvider}`,
    ...(created.expiresAt ? { approvalExpiresAt: created.expiresAt.toISOString() } : {}),
  });
  return { id: created.dep.id, status: created.dep.status };
}

// ---------------------------------------------------------------------------------------------------------
// Listing: keyset pagination on indexed columns, so page N costs the same as page 1 at 10,000 rows.

export const LIST_SORTS = ["newest", "oldest", "slug"] as const;
export type ListSort = (typeof LIST_SORTS)[number];

export interface ListDeploymentsOptions {
  status?: DeploymentStatus | DeploymentStatus[];
  provider?: string;
  gpu?: string;
  ownerId?: string;
  sort?: ListSort;
  cursor?: string | null;
  limit?: number;
}

interface CursorValue {
  k: string;
  id: string;
}

function encodeCursor(c: CursorValue): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeCursor(s: string): CursorValue {
  try {
    const v = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as CursorValue;
    if (typeof v.k === "string" && typeof v.id === "string") return v;
  } catch {
    /* fall through */
  }
  throw new DomainError("BAD_REQUEST", "Invalid cursor.", { reason: "bad_cursor" });
}

const listSelect = {
  id: true,
  slug: true,
  model: true,
  servedModelName: true,
  mode: true,
  status: true,
  serverlessProvider: true,
  serverlessGpu: true,
  spotGpu: true,
  gpuCount: true,
  direct: true,
  estimatedCostPerHourMicros: true,
  createdById: true,
  createdAt: true,
  activatedAt: true,
  failureStep: true,
  failureReason: true,
} satisfies Prisma.DeploymentSelect;

export async function listDeployments(teamId: string, opts: ListDeploymentsOptions = {}) {
  const sort = opts.sort ?? "newest";
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const where: Prisma.DeploymentWhereInput = { teamId };
  if (opts.status) where.status = Array.isArray(opts.status) ? { in: opts.status } : opts.status;
  if (opts.provider) where.serverlessProvider = opts.provider;
  if (opts.gpu) where.OR = [{ serverlessGpu: opts.gpu }, { spotGpu: opts.gpu }];
  if (opts.ownerId) where.createdById = opts.ownerId;
  const and: Prisma.DeploymentWhereInput[] = [];
  if (opts.cursor) {
    const c = decodeCursor(opts.cursor);
    if (sort === "slug") {
      and.push({ OR: [{ slug: { gt: c.k } }, { slug: c.k, id: { gt: c.id } }] });
    } else {
      const at = new Date(c.k);
      if (Number.isNaN(at.getTime())) throw new DomainError("BAD_REQUEST", "Invalid cursor.", { reason: "bad_cursor" });
      and.push(
        sort === "newest"
          ? { OR: [{ createdAt: { lt: at } }, { createdAt: at, id: { lt: c.id } }] }
          : { OR: [{ createdAt: { gt: at } }, { createdAt: at, id: { gt: c.id } }] },
      );
    }
  }
  if (and.length) where.AND = and;
  const orderBy: Prisma.DeploymentOrderByWithRelationInput[] =
    sort === "slug" ? [{ slug: "asc" }, { id: "asc" }] : sort === "newest" ? [{ createdAt: "desc" }, { id: "desc" }] : [{ createdAt: "asc" }, { id: "asc" }];
  const rows = await db.deployment.findMany({ where, orderBy, take: limit + 1, select: listSelect });
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const nextCursor =
    rows.length > limit && last ? encodeCursor({ k: sort === "slug" ? last.slug : last.createdAt.toISOString(), id: last.id }) : null;
  return {
    items: page.map((d) => ({ ...d, estimatedCostPerHourMicros: d.estimatedCostPerHourMicros === null ? null : Number(d.estimatedCostPerHourMicros) })),
    nextCursor,
  };
}

/** A deployment with its components (never the encrypted upstream headers), timeline and approval. */
export async function getDeployment(teamId: string, id: string) {
  const d = await db.deployment.findFirst({
    where: { id, teamId },
    include: {
      components: {
        select: {
          id: true,
          kind: true,
          provider: true,
          status: true,
          endpointUrl: true,
          externalIds: true,
          lastError: true,
          replicasReady: true,
          replicasTotal: true,
          createdAt: true,
          updatedAt: true,
        },
        orderBy: { kind: "asc" },
      },
      events: { orderBy: [{ at: "asc" }, { id: "asc" }], take: 500 },
      approval: true,
    },
  });
  if (!d) throw notFound("Deployment");
  const svl = d.components.find((c) => c.kind === "serverless");
  const [blocks, destroyRequestedBy] = await Promise.all([teamBudgetBlocks(teamId), destroyRequester(teamId, d)]);
  return {
    ...d,
    /** Who asked for the destroy (email, or "system"); null when nobody has. */
    destroyRequestedBy,
    /** The budget that makes the router refuse this deployment's requests (429 insufficient_quota), if any. */
    budgetBlock: blockForDeployment(blocks, d.id),
    estimatedCostPerHourMicros: d.estimatedCostPerHourMicros === null ? null : Number(d.estimatedCostPerHourMicros),
    approval: d.approval
      ? { ...d.approval, estimatedCostPerHourMicros: d.approval.estimatedCostPerHourMicros === null ? null : Number(d.approval.estimatedCostPerHourMicros) }
      : null,
    // Direct (serverless-only, opt-in) deployments hand out the provider URL; others are reached via the router.
    directUrl: d.direct && svl?.endpointUrl && (d.status === "active" || d.status === "degraded") ? svl.endpointUrl : null,
  };
}

/**
 * The actor of the destroy request that ended (or is ending) a deployment, from the audit log: its own
 * `deployment.destroy`, or the team's `deployment.destroy-all` that swept it, whichever came last.
 */
async function destroyRequester(
  teamId: string,
  d: { id: string; createdAt: Date; events: Array<{ step: string; status: string; at: Date }> },
): Promise<string | null> {
  const requests = d.events.filter((e) => e.step === "destroy" && e.status === "requested");
  const last = requests[requests.length - 1];
  if (!last) return null;
  const [single, all] = await Promise.all([
    db.auditLog.findFirst({ where: { teamId, action: "deployment.destroy", targetId: d.id }, orderBy: { seq: "desc" }, select: { actorLabel: true, seq: true } }),
    db.auditLog.findFirst({
      where: { teamId, action: "deployment.destroy-all", createdAt: { gte: d.createdAt, lte: last.at } },
      orderBy: { seq: "desc" },
      select: { actorLabel: true, seq: true },
    }),
  ]);
  const newest = single && all ? (single.seq > all.seq ? single : all) : (single ?? all);
  return newest?.actorLabel ?? null;
}

/** Timeline rows after `afterId`/`since` (the dashboard polls this while a workflow runs). */
export async function getTimeline(teamId: string, id: string, opts: { since?: Date } = {}) {
  const d = await db.deployment.findFirst({ where: { id, teamId }, select: { id: true, status: true, failureStep: true, failureReason: true } });
  if (!d) throw notFound("Deployment");
  const events = await db.deploymentEvent.findMany({
    where: { deploymentId: id, ...(opts.since ? { at: { gt: opts.since } } : {}) },
    orderBy: [{ at: "asc" }, { id: "asc" }],
    take: 500,
  });
  return { status: d.status, failureStep: d.failureStep, failureReason: d.failureReason, events };
}

/** Marks one deployment for destruction and starts the destroy workflow. Idempotent. */
export async function requestDestroy(teamId: string, actor: AuditActor, id: string): Promise<{ id: string; status: DeploymentStatus }> {
  const result = await db.$transaction(async (tx) => {
    const d = await tx.deployment.findFirst({ where: { id, teamId }, select: { id: true, status: true, serverlessProvider: true, spec: true } });
    if (!d) throw notFound("Deployment");
    const account = `${teamId}:${d.serverlessProvider ?? (d.spec as { spotProvider?: string } | null)?.spotProvider ?? "none"}`;
    if (d.status === "destroyed") return { id, status: d.status, send: false, account };
    // A request that never ran (rejected/expired) holds nothing, but destroy still sweeps its components.
    const next: DeploymentStatus = FINAL_STATUSES.includes(d.status) ? d.status : "destroying";
    if (next !== d.status) await tx.deployment.update({ where: { id }, data: { status: next } });
    await tx.deploymentEvent.create({ data: { deploymentId: id, step: "destroy", status: "requested", message: `requested by ${actor.label}` } });
    await appendAudit(tx, teamId, actor, { action: "deployment.destroy", targetType: "deployment", targetId: id, metadata: { from: d.status } });
    return { id, status: next, send: true, account };
  });
  if (result.send) {
    await sendEvent("deployment/destroy.requested", { deploymentId: id, teamId, providerAccount: result.account, ...(actor.userId ? { actorId: actor.userId } : {}) });
  }
  return { id: result.id, status: result.status };
}

/** Destroys every live deployment of the team (admin only, checked by the caller's permission). */
export async function requestDestroyAll(teamId: string, actor: AuditActor): Promise<{ count: number }> {
  const count = await db.$transaction(async (tx) => {
    const n = await tx.deployment.count({ where: { teamId, status: { in: [...LIVE_STATUSES, "failed", "destroying"] } } });
    await appendAudit(tx, teamId, actor, { action: "deployment.destroy-all", targetType: "team", targetId: teamId, metadata: { count: n } });
    return n;
  });
  await sendEvent("deployment/destroy-all.requested", { teamId, ...(actor.userId ? { actorId: actor.userId } : {}) });
  return { count };
}

