import type { ApprovalRequest, ApprovalStatus, Prisma, Role } from "@prisma/client";
import { appendAudit, SYSTEM_ACTOR, type AuditActor } from "../audit";
import { formatMicrosPerHour } from "../catalog/money";
import { db, type Tx } from "../db";
import { DomainError } from "../lib/errors";
import { rolesWith } from "../rbac/permissions";
import { assertPricedUnderBudgets } from "../usage/budgets";
import { sendEvent } from "../workflows/events";

/**
 * Deploy approvals: a team policy (pure evaluation) decides whether a request needs an admin's yes; the
 * ApprovalRequest row is the truth the deploy workflow reads, events only wake it up.
 */

export interface ApprovalPolicy {
  /** Roles whose deploys need approval. */
  approvalRoles: Role[];
  /** GPU classes (catalog keys) that always need approval. */
  approvalGpus: string[];
  approvalForSpot: boolean;
  approvalForServerless: boolean;
  /** Estimated cost per hour above which approval is needed (micro-dollars); null = no threshold. */
  approvalCostThresholdMicros: number | null;
  approvalTtlHours: number;
}

export const DEFAULT_POLICY: ApprovalPolicy = {
  approvalRoles: ["developer"],
  approvalGpus: [],
  approvalForSpot: false,
  approvalForServerless: false,
  approvalCostThresholdMicros: null,
  approvalTtlHours: 24,
};

export interface ApprovalInput {
  requesterRole: Role;
  serverlessGpu?: string | null;
  spotGpu?: string | null;
  mode: "hybrid" | "serverless" | "spot";
  estimatedCostPerHourMicros: number | bigint;
  /**
   * Parts the estimate counts as $0 for want of a price ("no known spot price for H200 on aws"): the estimate
   * is then a lower bound, so it cannot show that the request stays under a cost threshold.
   */
  unknownPrices?: readonly string[];
}

/** Pure: which of the policy's rules match this request (each match is a reason shown to the approver). */
export function evaluateApprovalPolicy(policy: ApprovalPolicy, req: ApprovalInput): { required: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (policy.approvalRoles.includes(req.requesterRole)) reasons.push(`requested by ${/^[aeiou]/.test(req.requesterRole) ? "an" : "a"} ${req.requesterRole}`);
  const gated = new Set(policy.approvalGpus.map((g) => g.toLowerCase()));
  const usesSpot = req.mode === "spot" || req.mode === "hybrid";
  const usesServerless = req.mode === "serverless" || req.mode === "hybrid";
  const gpus = [
    ...(usesServerless && req.serverlessGpu ? [req.serverlessGpu] : []),
    ...(usesSpot && req.spotGpu ? [req.spotGpu] : []),
  ];
  for (const g of [...new Set(gpus)]) if (gated.has(g.toLowerCase())) reasons.push(`GPU ${g} needs approval`);
  if (policy.approvalForSpot && usesSpot) reasons.push("spot capacity needs approval");
  if (policy.approvalForServerless && usesServerless) reasons.push("serverless capacity needs approval");
  const cost = Number(req.estimatedCostPerHourMicros);
  const threshold = policy.approvalCostThresholdMicros;
  if (threshold !== null && cost > threshold) {
    reasons.push(`estimated ${formatMicrosPerHour(Math.round(cost))} is above the team's ${formatMicrosPerHour(threshold)} threshold`);
  } else if (threshold !== null && req.unknownPrices?.length) {
    reasons.push(`price unknown (${req.unknownPrices.join("; ")}), so the estimate cannot be checked against the team's ${formatMicrosPerHour(threshold)} threshold`);
  }
  return { required: reasons.length > 0, reasons };
}

function toPolicy(row: { approvalRoles: Role[]; approvalGpus: string[]; approvalForSpot: boolean; approvalForServerless: boolean; approvalCostThresholdMicros: bigint | null; approvalTtlHours: number }): ApprovalPolicy {
  return {
    approvalRoles: [...row.approvalRoles],
    approvalGpus: [...row.approvalGpus],
    approvalForSpot: row.approvalForSpot,
    approvalForServerless: row.approvalForServerless,
    approvalCostThresholdMicros: row.approvalCostThresholdMicros === null ? null : Number(row.approvalCostThresholdMicros),
    approvalTtlHours: row.approvalTtlHours,
  };
}

export async function getTeamPolicy(teamId: string, client: Pick<Tx, "teamPolicy"> = db): Promise<ApprovalPolicy> {
  const row = await client.teamPolicy.findUnique({ where: { teamId } });
  return row ? toPolicy(row) : { ...DEFAULT_POLICY, approvalRoles: [...DEFAULT_POLICY.approvalRoles] };
}

export async function updateTeamPolicy(teamId: string, actor: AuditActor, patch: Partial<ApprovalPolicy>): Promise<ApprovalPolicy> {
  if (patch.approvalTtlHours !== undefined && (!Number.isInteger(patch.approvalTtlHours) || patch.approvalTtlHours < 1 || patch.approvalTtlHours > 24 * 14)) {
    throw new DomainError("BAD_REQUEST", "Approval requests must expire after 1 hour to 14 days.");
  }
  if (patch.approvalCostThresholdMicros != null && (!Number.isInteger(patch.approvalCostThresholdMicros) || patch.approvalCostThresholdMicros < 0)) {
    throw new DomainError("BAD_REQUEST", "The cost threshold must be a non-negative amount.");
  }
  const data = {
    ...(patch.approvalRoles !== undefined ? { approvalRoles: [...new Set(patch.approvalRoles)] } : {}),
    ...(patch.approvalGpus !== undefined ? { approvalGpus: [...new Set(patch.approvalGpus.map((g) => g.trim()).filter(Boolean))] } : {}),
    ...(patch.approvalForSpot !== undefined ? { approvalForSpot: patch.approvalForSpot } : {}),
    ...(patch.approvalForServerless !== undefined ? { approvalForServerless: patch.approvalForServerless } : {}),
    ...(patch.approvalCostThresholdMicros !== undefined
      ? { approvalCostThresholdMicros: patch.approvalCostThresholdMicros === null ? null : BigInt(patch.approvalCostThresholdMicros) }
      : {}),
    ...(patch.approvalTtlHours !== undefined ? { approvalTtlHours: patch.approvalTtlHours } : {}),
  };
  return db.$transaction(async (tx) => {
    const before = await getTeamPolicy(teamId, tx);
    const row = await tx.teamPolicy.upsert({ where: { teamId }, create: { teamId, ...data }, update: data });
    const after = toPolicy(row);
    await appendAudit(tx, teamId, actor, { action: "policy.update", targetType: "team", targetId: teamId, metadata: { before: { ...before }, after: { ...after } } as Record<string, unknown> });
    return after;
  });
}

export interface CreateApprovalInput {
  teamId: string;
  deploymentId: string;
  requestedById: string;
  reasons: string[];
  /** Plan summary and cost estimate shown to the approver. */
  summary: Record<string, unknown>;
  estimatedCostPerHourMicros: number | bigint | null;
  /** Defaults to the team policy's approvalTtlHours. */
  ttlHours?: number;
}

/** Inside the deployment request's transaction; audited there. Alerts go out after commit (see notifyApprovalRequested). */
export async function createApprovalRequest(tx: Tx, input: CreateApprovalInput): Promise<ApprovalRequest> {
  const ttlHours = input.ttlHours ?? (await getTeamPolicy(input.teamId, tx)).approvalTtlHours;
  const req = await tx.approvalRequest.create({
    data: {
      teamId: input.teamId,
      deploymentId: input.deploymentId,
      requestedById: input.requestedById,
      reasons: input.reasons,
      summary: input.summary as Prisma.InputJsonValue,
      estimatedCostPerHourMicros: input.estimatedCostPerHourMicros === null ? null : BigInt(input.estimatedCostPerHourMicros),
      expiresAt: new Date(Date.now() + ttlHours * 3_600_000),
    },
  });
  const requester = await tx.user.findUnique({ where: { id: input.requestedById }, select: { email: true } });
  await appendAudit(tx, input.teamId, { userId: input.requestedById, label: requester?.email ?? input.requestedById }, {
    action: "approval.request",
    targetType: "approval",
    targetId: req.id,
    metadata: { deploymentId: input.deploymentId, reasons: input.reasons, expiresAt: req.expiresAt.toISOString() },
  });
  return req;
}

// Alerts are loaded lazily so approvals keep working where alerting is not configured.
async function alertTeam(teamId: string, event: { type: string; deploymentId?: string; title: string; text: string; costPerHourMicros?: number }): Promise<void> {
  try {
    const { notify } = await import("../alerts/index");
    await notify(teamId, event);
  } catch (err) {
    console.warn(`[approvals] alert ${event.type} not queued: ${(err as Error).message}`);
  }
}

/** Tells the team's channels that a request waits for an admin (call after the request's transaction commits). */
export async function notifyApprovalRequested(approvalId: string): Promise<void> {
  const a = await db.approvalRequest.findUnique({ where: { id: approvalId }, include: { deployment: { select: { slug: true } } } });
  if (!a) return;
  const requester = await db.user.findUnique({ where: { id: a.requestedById }, select: { email: true } });
  await alertTeam(a.teamId, {
    type: "approval.requested",
    deploymentId: a.deploymentId,
    title: `Approval needed: ${a.deployment.slug}`,
    text: `${requester?.email ?? "A member"} asks to deploy ${a.deployment.slug}: ${a.reasons.join("; ")}.`,
    ...(a.estimatedCostPerHourMicros !== null ? { costPerHourMicros: Number(a.estimatedCostPerHourMicros) } : {}),
  });
}

export interface ApprovalView {
  id: string;
  deploymentId: string;
  deploymentSlug: string;
  requestedById: string;
  requestedByEmail: string | null;
  status: ApprovalStatus;
  reasons: string[];
  summary: unknown;
  estimatedCostPerHourMicros: number | null;
  estimatedCostDisplay: string | null;
  decidedById: string | null;
  decidedByEmail: string | null;
  comment: string | null;
  decidedAt: Date | null;
  expiresAt: Date;
  createdAt: Date;
  /**
   * Members who could approve it: those whose role may approve, the requester excepted (nobody approves
   * their own request). 0 means it waits for a new admin: the requester's own team has nobody else to ask.
   */
  otherApprovers: number;
}

/** User ids of the members of `teamId` whose role may approve deployment requests. */
async function approverIds(teamId: string, client: Pick<Tx, "membership"> = db): Promise<string[]> {
  const rows = await client.membership.findMany({ where: { teamId, role: { in: rolesWith("deployment.approve") } }, select: { userId: true } });
  return rows.map((r) => r.userId);
}

type ApprovalWithDeployment = ApprovalRequest & { deployment: { slug: string } };

async function toViews(rows: ApprovalWithDeployment[], now: Date): Promise<ApprovalView[]> {
  const ids = [...new Set(rows.flatMap((r) => [r.requestedById, r.decidedById]).filter((x): x is string => !!x))];
  const users = ids.length ? await db.user.findMany({ where: { id: { in: ids } }, select: { id: true, email: true } }) : [];
  const email = new Map(users.map((u) => [u.id, u.email]));
  const teams = [...new Set(rows.map((r) => r.teamId))];
  const approvers = new Map(await Promise.all(teams.map(async (t) => [t, await approverIds(t)] as const)));
  return rows.map((r) => {
    const cost = r.estimatedCostPerHourMicros === null ? null : Number(r.estimatedCostPerHourMicros);
    return {
      id: r.id,
      deploymentId: r.deploymentId,
      deploymentSlug: r.deployment.slug,
      requestedById: r.requestedById,
      requestedByEmail: email.get(r.requestedById) ?? null,
      // A pending request past its expiry reads as expired even before the sweeper has run.
      status: r.status === "pending" && r.expiresAt <= now ? "expired" : r.status,
      reasons: r.reasons,
      summary: r.summary,
      estimatedCostPerHourMicros: cost,
      estimatedCostDisplay: cost === null ? null : formatMicrosPerHour(cost),
      decidedById: r.decidedById,
      decidedByEmail: r.decidedById ? (email.get(r.decidedById) ?? null) : null,
      comment: r.comment,
      decidedAt: r.decidedAt,
      expiresAt: r.expiresAt,
      createdAt: r.createdAt,
      otherApprovers: (approvers.get(r.teamId) ?? []).filter((id) => id !== r.requestedById).length,
    };
  });
}

export interface ApprovalFilter {
  status?: ApprovalStatus;
  deploymentId?: string;
  limit?: number;
}

export async function listApprovals(teamId: string, filter: ApprovalFilter = {}): Promise<ApprovalView[]> {
  const now = new Date();
  const statusWhere: Prisma.ApprovalRequestWhereInput =
    filter.status === "pending"
      ? { status: "pending", expiresAt: { gt: now } }
      : filter.status === "expired"
        ? { OR: [{ status: "expired" }, { status: "pending", expiresAt: { lte: now } }] }
        : filter.status
          ? { status: filter.status }
          : {};
  const rows = await db.approvalRequest.findMany({
    where: { teamId, ...statusWhere, ...(filter.deploymentId ? { deploymentId: filter.deploymentId } : {}) },
    include: { deployment: { select: { slug: true } } },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: Math.min(filter.limit ?? 100, 500),
  });
  return toViews(rows, now);
}

export async function getApproval(teamId: string, approvalId: string): Promise<ApprovalView> {
  const row = await db.approvalRequest.findFirst({ where: { id: approvalId, teamId }, include: { deployment: { select: { slug: true } } } });
  if (!row) throw new DomainError("NOT_FOUND", "Approval request not found.");
  return (await toViews([row], new Date()))[0];
}

/**
 * An admin's decision. Refuses the requester's own request, and anything already decided or expired; the
 * status change is conditional on the row still being pending and unexpired, so two admins deciding at
 * once get one winner. Audited; then the workflow is woken and the team's channels are told.
 */
export async function decideApproval(
  teamId: string,
  actor: AuditActor,
  approvalId: string,
  decision: "approve" | "reject",
  comment: string | null | undefined,
): Promise<ApprovalView> {
  if (!actor.userId) throw new DomainError("FORBIDDEN", "Only a signed-in admin can decide.");
  const deciderId = actor.userId;
  const text = comment?.trim() ? comment.trim().slice(0, 2000) : null;
  const now = new Date();
  const status: ApprovalStatus = decision === "approve" ? "approved" : "rejected";
  const row = await db.$transaction(async (tx) => {
    const a = await tx.approvalRequest.findFirst({ where: { id: approvalId, teamId } });
    if (!a) throw new DomainError("NOT_FOUND", "Approval request not found.");
    // Withdrawing (rejecting) one's own request is fine; approving it is what the policy exists to prevent.
    if (decision === "approve" && a.requestedById === deciderId) {
      const nobodyElse = (await approverIds(teamId, tx)).every((id) => id === deciderId);
      throw new DomainError(
        "FORBIDDEN",
        nobodyElse
          ? "You cannot approve your own request, and this team has no other admin: invite one in Members to approve it, or withdraw it."
          : "You cannot approve your own request: another admin must.",
        { reason: "self_approval" },
      );
    }
    if (a.status !== "pending") throw new DomainError("PRECONDITION_FAILED", `This request was already ${a.status}.`, { reason: "already_decided" });
    if (a.expiresAt <= now) throw new DomainError("PRECONDITION_FAILED", "This request has expired; ask for a new deployment.", { reason: "expired" });
    if (decision === "approve") {
      // A budget set since the request would not see this deployment's unpriced spend: same refusal as at create.
      const d = await tx.deployment.findUniqueOrThrow({
        where: { id: a.deploymentId },
        select: { mode: true, serverlessProvider: true, serverlessGpu: true, spotGpu: true, spotClouds: true },
      });
      await assertPricedUnderBudgets(teamId, d, { client: tx, deploymentId: a.deploymentId, remedy: "reject this request and ask for" });
    }
    const r = await tx.approvalRequest.updateMany({
      where: { id: approvalId, teamId, status: "pending", expiresAt: { gt: now } },
      data: { status, decidedById: deciderId, comment: text, decidedAt: now },
    });
    if (r.count === 0) throw new DomainError("PRECONDITION_FAILED", "This request was decided by someone else just now.", { reason: "already_decided" });
    await appendAudit(tx, teamId, actor, {
      action: `approval.${status === "approved" ? "approve" : "reject"}`,
      targetType: "approval",
      targetId: approvalId,
      metadata: { deploymentId: a.deploymentId, requestedById: a.requestedById, comment: text },
    });
    return tx.approvalRequest.findUniqueOrThrow({ where: { id: approvalId }, include: { deployment: { select: { slug: true } } } });
  });
  try {
    await sendEvent(status === "approved" ? "deployment/approved" : "deployment/rejected", {
      deploymentId: row.deploymentId,
      teamId,
      approvalId,
      decidedById: deciderId,
      decidedBy: deciderId,
      comment: text,
    });
  } catch (err) {
    // The decision is committed and is what the workflow reads; without the wake-up it reads it when its
    // wait times out. Failing the admin's call here would only invite a second, refused decision.
    console.error(`[approvals] ${approvalId} decided but the workflow was not woken: ${(err as Error).message}`);
  }
  const view = (await toViews([row], now))[0];
  await alertTeam(teamId, {
    type: "approval.decided",
    deploymentId: row.deploymentId,
    title: `${row.deployment.slug} ${status} by ${actor.label}`,
    text: `Requested by ${view.requestedByEmail ?? "a member"}.${text ? ` Comment: ${text}` : ""}`,
    ...(view.estimatedCostPerHourMicros !== null ? { costPerHourMicros: view.estimatedCostPerHourMicros } : {}),
  });
  return view;
}

/** Sweeper: pending requests past their expiry become `expired` (audited by the system actor). */
export async function expireApprovals(now: Date = new Date()): Promise<number> {
  const due = await db.approvalRequest.findMany({ where: { status: "pending", expiresAt: { lte: now } }, select: { id: true, teamId: true, deploymentId: true } });
  let n = 0;
  for (const a of due) {
    const done = await db.$transaction(async (tx) => {
      const r = await tx.approvalRequest.updateMany({ where: { id: a.id, status: "pending", expiresAt: { lte: now } }, data: { status: "expired", decidedAt: now } });
      if (r.count === 0) return false;
      await appendAudit(tx, a.teamId, SYSTEM_ACTOR, { action: "approval.expire", targetType: "approval", targetId: a.id, metadata: { deploymentId: a.deploymentId } });
      return true;
    });
    if (done) n++;
  }
  return n;
}
