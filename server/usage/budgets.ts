/**
 * Monthly budgets per team, deployment and router key (UTC calendar months).
 *
 * `evaluateBudgets(now)` (cron, every minute or so) prices month-to-date usage, records each threshold in
 * `Budget.alertsSent[period]` with a conditional UPDATE (so two control-plane instances never alert twice)
 * and sends the alert after the claim. Crossing 100% bumps the router config version in the same
 * transaction, so every router re-reads the snapshot, where `budgetBlocks()` marks the key or deployment
 * blocked. The block is state, not a computation: it lasts until the period changes or an admin raises the
 * limit above the spend (both also bump the version).
 *
 * A part of a deployment without a known price (no published serverless price, no spot price on its clouds)
 * cannot be counted. Spend counts every part that is known; a deployment with an unknown part is never
 * created or approved where a budget would cover it (`assertPricedUnderBudgets`), and budgets that cover
 * one anyway (set later, or the price went away) name it (`setBudget` warnings, `listBudgets().unpriced`).
 */
import type { BudgetScope, DeploymentStatus, Prisma } from "@prisma/client";
import { appendAudit, type AuditActor } from "../audit";
import { allowedClouds, cloudPrice, formatMicros } from "../catalog";
import { db, type Tx } from "../db";
import { DomainError, notFound } from "../lib/errors";
import type { CostResult } from "./cost";
import { usageLinks } from "./links";
import { costForDeployments, type DeploymentCost, loadDeploymentsForCost, serverlessBillingFor } from "./pricing";

export const THRESHOLDS = [80, 90, 100] as const;
export type Threshold = (typeof THRESHOLDS)[number];

export interface BudgetBlock {
  code: "budget_exceeded";
  message: string;
}

/** "2026-11" for any instant of November 2026, UTC. */
export function budgetPeriod(now: Date): string {
  return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
}

export function periodStart(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
}

function sentIn(alertsSent: Prisma.JsonValue, period: string): number[] {
  const v = alertsSent && typeof alertsSent === "object" && !Array.isArray(alertsSent) ? (alertsSent as Record<string, unknown>)[period] : null;
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

// ---------------------------------------------------------------------------------------------------------
// Spend

export interface TeamSpend {
  teamId: string;
  total: number;
  deployments: Map<string, number>;
  keys: Map<string, number>;
  costs: DeploymentCost[];
  /** Deployments with a part of unknown price this month: only their known parts are counted. */
  unpriced: string[];
  /** Which parts of each of `unpriced` have no known price. */
  unpricedParts: Map<string, PricePart[]>;
}

/**
 * The part of a cost whose price is known. A serverless price is one number (unknown = none of it is known);
 * spot is priced per period of the prices in force, so when some periods are unknown the priced ones still
 * count: the buckets carry exactly those (rounded per bucket, as per-key spend is).
 */
export function knownParts(cost: CostResult): { serverless: number; spot: number; router: number } {
  const a = cost.actual;
  return { serverless: a.serverless ?? 0, spot: a.spot ?? cost.buckets.reduce((sum, b) => sum + b.spot, 0), router: a.router };
}

/** All of a cost that is known (`actual.total` when the whole of it is). */
function knownMicros(cost: CostResult): number {
  const k = knownParts(cost);
  return k.serverless + k.spot + k.router;
}

/** Month-to-date spend of each team (and of its deployments and keys), from the rollups and the cost model. */
export async function monthToDateSpend(teamIds: string[], now: Date): Promise<Map<string, TeamSpend>> {
  const from = periodStart(now);
  const deployments = await loadDeploymentsForCost({
    teamId: { in: teamIds },
    createdAt: { lt: now },
    OR: [{ destroyedAt: null }, { destroyedAt: { gte: from } }],
  });
  const costs = await costForDeployments(deployments, from, now, { now });
  const out = new Map<string, TeamSpend>();
  for (const id of teamIds) out.set(id, { teamId: id, total: 0, deployments: new Map(), keys: new Map(), costs: [], unpriced: [], unpricedParts: new Map() });
  for (const c of costs) {
    const t = out.get(c.deployment.teamId)!;
    const known = knownMicros(c.cost);
    if (c.cost.actual.total === null) {
      t.unpriced.push(c.deployment.id);
      t.unpricedParts.set(c.deployment.id, PRICE_PARTS.filter((p) => c.cost.actual[p] === null));
    }
    t.total += known;
    t.deployments.set(c.deployment.id, known);
    for (const [k, v] of c.keys) t.keys.set(k, (t.keys.get(k) ?? 0) + v);
    t.costs.push(c);
  }
  return out;
}

function spendFor(spend: TeamSpend | undefined, scope: BudgetScope, targetId: string | null): number {
  if (!spend) return 0;
  if (scope === "team") return spend.total;
  if (scope === "deployment") return spend.deployments.get(targetId ?? "") ?? 0;
  return spend.keys.get(targetId ?? "") ?? 0;
}

// ---------------------------------------------------------------------------------------------------------
// Unknown prices

export type PricePart = "serverless" | "spot";
const PRICE_PARTS: readonly PricePart[] = ["serverless", "spot"];

/** Deployments that can no longer bill (failed ones may still hold resources, so they are not here). */
const ENDED: DeploymentStatus[] = ["destroyed", "rejected", "expired"];

/** What decides whether the cost model can price a deployment: a stored row or a resolved request alike. */
export interface PricedShape {
  mode: "hybrid" | "serverless" | "spot";
  serverlessProvider: string | null;
  serverlessGpu: string | null;
  spotGpu: string | null;
  spotClouds: readonly string[];
}

/** "no known spot price for H200 on aws", "no known runpod price for H200". */
export function unknownPriceReason(d: PricedShape, part: PricePart): string {
  if (part === "serverless") return `no known ${d.serverlessProvider} price for ${d.serverlessGpu}`;
  return `no known spot price for ${d.spotGpu ?? d.serverlessGpu} ${d.spotClouds.length ? `on ${d.spotClouds.join(" or ")}` : "on any cloud"}`;
}

/** `cloud|gpu` of every spot price the team's own SkyPilot API server has quoted (they price its spot time). */
async function liveSpotPrices(client: Pick<Tx, "spotPriceSample">, teamId: string, gpus: string[]): Promise<Set<string>> {
  if (gpus.length === 0) return new Set();
  const rows = await client.spotPriceSample.findMany({
    where: { teamId, gpu: { in: gpus }, pricePerGpuHourMicros: { gt: 0 } },
    select: { cloud: true, gpu: true },
    distinct: ["cloud", "gpu"],
  });
  return new Set(rows.map((r) => `${r.cloud}|${r.gpu}`));
}

/**
 * The parts of a deployment the cost model cannot price from now on, decided as `buildCostInput`
 * (pricing.ts) decides: the serverless provider's published price for the GPU; for spot, the cheapest
 * static price on the allowed clouds (all when none are named) or a live price the team has sampled there.
 */
function unknownPriceParts(d: PricedShape, live: ReadonlySet<string>): PricePart[] {
  const parts: PricePart[] = [];
  if (d.mode !== "spot" && d.serverlessProvider && d.serverlessGpu) {
    if (serverlessBillingFor(d.serverlessProvider, d.serverlessGpu, 1, null).pricePerGpuHourMicros === null) parts.push("serverless");
  }
  const spotGpu = d.spotGpu ?? d.serverlessGpu;
  if (d.mode !== "serverless" && spotGpu && cloudPrice(spotGpu, d.spotClouds, "spot") === null) {
    if (!allowedClouds(d.spotClouds).some((c) => live.has(`${c}|${spotGpu}`))) parts.push("spot");
  }
  return parts;
}

/** Whether a key scoped to `reach` (its deployment ids; none = every deployment of the team) reaches `deploymentId`. */
const keyReaches = (reach: readonly string[], deploymentId: string | null) => reach.length === 0 || (deploymentId !== null && reach.includes(deploymentId));

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const listing = (xs: string[]) => (xs.length <= 1 ? (xs[0] ?? "") : `${xs.slice(0, -1).join(", ")} and ${xs[xs.length - 1]}`);

/**
 * What a budget covering a deployment would be called in a refusal: the team budget, budgets of the keys
 * that reach it (a key naming no deployment reaches them all) and its own budget. `deploymentId` null: a
 * deployment not created yet (only the team budget and keys reaching every deployment cover it).
 */
async function budgetsCovering(client: Pick<Tx, "budget" | "apiKey" | "deployment">, teamId: string, deploymentId: string | null): Promise<string[]> {
  const budgets = await client.budget.findMany({ where: { teamId }, select: { scope: true, targetId: true } });
  const keyIds = budgets.filter((b) => b.scope === "apikey" && b.targetId).map((b) => b.targetId!);
  const keys = keyIds.length
    ? await client.apiKey.findMany({ where: { id: { in: keyIds }, teamId, revokedAt: null }, select: { id: true, label: true, deploymentIds: true } })
    : [];
  const subjects: string[] = [];
  if (budgets.some((b) => b.scope === "team")) subjects.push("the team's budget");
  for (const k of keys) {
    if (keyReaches(k.deploymentIds, deploymentId)) subjects.push(`the budget of key ${k.label}`);
  }
  if (deploymentId && budgets.some((b) => b.scope === "deployment" && b.targetId === deploymentId)) {
    const d = await client.deployment.findFirst({ where: { id: deploymentId, teamId }, select: { slug: true } });
    subjects.push(`the budget of deployment ${d?.slug ?? deploymentId}`);
  }
  return subjects;
}

/** What of a deployment has no known price from now on: the parts and, in words, why. */
async function unknownPrices(client: Pick<Tx, "spotPriceSample">, teamId: string, d: PricedShape): Promise<Array<{ part: PricePart; reason: string }>> {
  let parts = unknownPriceParts(d, new Set());
  // Only a spot price missing from the static table sends us to the team's live samples.
  if (parts.includes("spot")) parts = unknownPriceParts(d, await liveSpotPrices(client, teamId, [(d.spotGpu ?? d.serverlessGpu)!]));
  return parts.map((part) => ({ part, reason: unknownPriceReason(d, part) }));
}

/**
 * The refusal: what has no price, which budgets could therefore not be enforced, and what to do (`remedy`),
 * e.g. "choose" + "another GPU or cloud" (a spot price depends on the cloud, a serverless one on the provider).
 */
function priceUnknown(unknown: Array<{ part: PricePart; reason: string }>, budgets: string[], remedy: string): DomainError {
  const other = unknown.some((u) => u.part === "serverless")
    ? unknown.some((u) => u.part === "spot") ? "another GPU, provider or cloud" : "another GPU or provider"
    : "another GPU or cloud";
  return new DomainError(
    "BAD_REQUEST",
    `${capitalize(unknown.map((u) => u.reason).join(" and "))}, so ${listing(budgets)} could not be enforced; ${remedy} ${other}.`,
    { reason: "price_unknown" },
  );
}

/**
 * What of a deployment (a request being quoted, created or approved) has no known price, as sentences
 * ("No known spot price for H200 on aws"); empty when all of it is priced. When any budget would cover it,
 * refuses instead (BAD_REQUEST "price_unknown"): its spend could not be counted, so the budget could not
 * stop it. `remedy` says what to do about it (default "choose", as in "choose another GPU or cloud").
 */
export async function assertPricedUnderBudgets(
  teamId: string,
  d: PricedShape,
  opts: { deploymentId?: string | null; client?: Pick<Tx, "budget" | "apiKey" | "deployment" | "spotPriceSample">; remedy?: string } = {},
): Promise<string[]> {
  const client = opts.client ?? db;
  const unknown = await unknownPrices(client, teamId, d);
  if (unknown.length === 0) return [];
  const covering = await budgetsCovering(client, teamId, opts.deploymentId ?? null);
  if (covering.length) throw priceUnknown(unknown, covering, opts.remedy ?? "choose");
  return unknown.map((u) => capitalize(u.reason));
}

export interface UnpricedDeployment {
  deploymentId: string;
  slug: string;
  /** "no known spot price for H200 on aws". */
  reasons: string[];
}

/**
 * The team's deployments a budget cannot count in full: those with an unknown part in this month's spend,
 * and those not ended whose price is unknown from now on (a deployment without usage yet included).
 */
async function unpricedDeployments(teamId: string, spend: TeamSpend | undefined): Promise<UnpricedDeployment[]> {
  const spentUnpriced = spend?.unpriced ?? [];
  const deps = await db.deployment.findMany({
    where: { teamId, OR: [{ status: { notIn: ENDED } }, { id: { in: spentUnpriced } }] },
    select: { id: true, slug: true, status: true, mode: true, serverlessProvider: true, serverlessGpu: true, spotGpu: true, spotClouds: true },
    orderBy: [{ slug: "asc" }, { id: "asc" }],
  });
  const live = await liveSpotPrices(db, teamId, [...new Set(deps.flatMap((d) => d.spotGpu ?? d.serverlessGpu ?? []))]);
  const out: UnpricedDeployment[] = [];
  for (const d of deps) {
    const parts = new Set<PricePart>(spend?.unpricedParts.get(d.id) ?? []);
    if (!ENDED.includes(d.status)) for (const p of unknownPriceParts(d, live)) parts.add(p);
    if (parts.size) out.push({ deploymentId: d.id, slug: d.slug, reasons: PRICE_PARTS.filter((p) => parts.has(p)).map((p) => unknownPriceReason(d, p)) });
  }
  return out;
}

/** The deployments of `unpriced` whose spend a budget counts (`keyReach`: the deployments of each key, [] = all). */
function coveredBy(unpriced: UnpricedDeployment[], b: { scope: BudgetScope; targetId: string | null }, keyReach: Map<string, string[]>): UnpricedDeployment[] {
  if (b.scope === "team") return unpriced;
  if (b.scope === "deployment") return unpriced.filter((u) => u.deploymentId === b.targetId);
  const reach = keyReach.get(b.targetId ?? "");
  if (!reach) return [];
  return unpriced.filter((u) => keyReaches(reach, u.deploymentId));
}

async function keyReachOf(teamId: string, budgets: Array<{ scope: BudgetScope; targetId: string | null }>): Promise<Map<string, string[]>> {
  const ids = budgets.filter((b) => b.scope === "apikey" && b.targetId).map((b) => b.targetId!);
  if (ids.length === 0) return new Map();
  const keys = await db.apiKey.findMany({ where: { id: { in: ids }, teamId }, select: { id: true, deploymentIds: true } });
  return new Map(keys.map((k) => [k.id, k.deploymentIds]));
}

function unpricedWarning(u: UnpricedDeployment): string {
  return `Spend of ${u.slug} with no known price is not counted: ${u.reasons.join("; ")}.`;
}

// ---------------------------------------------------------------------------------------------------------
// Names in messages

interface BudgetNames {
  teams: Map<string, string>;
  deployments: Map<string, string>;
  keys: Map<string, string>;
}

async function namesFor(budgets: Array<{ teamId: string; scope: BudgetScope; targetId: string | null }>): Promise<BudgetNames> {
  const teamIds = [...new Set(budgets.map((b) => b.teamId))];
  const depIds = budgets.filter((b) => b.scope === "deployment" && b.targetId).map((b) => b.targetId!);
  const keyIds = budgets.filter((b) => b.scope === "apikey" && b.targetId).map((b) => b.targetId!);
  const [teams, deps, keys] = await Promise.all([
    db.team.findMany({ where: { id: { in: teamIds } }, select: { id: true, name: true } }),
    depIds.length ? db.deployment.findMany({ where: { id: { in: depIds } }, select: { id: true, slug: true } }) : [],
    keyIds.length ? db.apiKey.findMany({ where: { id: { in: keyIds } }, select: { id: true, label: true } }) : [],
  ]);
  return {
    teams: new Map(teams.map((t) => [t.id, t.name])),
    deployments: new Map(deps.map((d) => [d.id, d.slug])),
    keys: new Map(keys.map((k) => [k.id, k.label])),
  };
}

/** "team Acme", "deployment qwen-small", "key ci-bot". */
function budgetSubject(b: { teamId: string; scope: BudgetScope; targetId: string | null }, n: BudgetNames): string {
  if (b.scope === "team") return `team ${n.teams.get(b.teamId) ?? b.teamId}`;
  if (b.scope === "deployment") return `deployment ${n.deployments.get(b.targetId ?? "") ?? b.targetId}`;
  return `key ${n.keys.get(b.targetId ?? "") ?? b.targetId}`;
}

export function budgetExceededMessage(subject: string, limitMicros: number): string {
  return `Monthly budget of ${subject} (${formatMicros(limitMicros)}) reached`;
}

// ---------------------------------------------------------------------------------------------------------
// Set, list

export interface SetBudgetInput {
  scope: BudgetScope;
  /** Deployment or API key id; omitted/null for the team budget. */
  targetId?: string | null;
  monthlyLimitMicros: number;
}

async function assertTarget(teamId: string, scope: BudgetScope, targetId: string | null): Promise<void> {
  if (scope === "team") return;
  if (!targetId) throw new DomainError("BAD_REQUEST", `A ${scope} budget needs a targetId.`, { reason: "missing_target" });
  const found =
    scope === "deployment"
      ? await db.deployment.findFirst({ where: { id: targetId, teamId }, select: { id: true } })
      : await db.apiKey.findFirst({ where: { id: targetId, teamId }, select: { id: true } });
  if (!found) throw notFound(scope === "deployment" ? "Deployment" : "API key");
}

/**
 * The budget row, locked until the transaction ends. An evaluator's claim (`claimThreshold`) updates the same
 * row, so the two serialise: what this transaction reads from `alertsSent` is what it overwrites.
 */
async function lockBudget(tx: Tx, where: { id: string; teamId: string } | { teamId: string; scope: BudgetScope; targetId: string | null }) {
  const rows =
    "id" in where
      ? await tx.$queryRaw<Array<{ id: string }>>`SELECT id FROM "Budget" WHERE id = ${where.id} AND "teamId" = ${where.teamId} FOR UPDATE`
      : await tx.$queryRaw<Array<{ id: string }>>`
          SELECT id FROM "Budget" WHERE "teamId" = ${where.teamId} AND scope::text = ${where.scope} AND "targetId" IS NOT DISTINCT FROM ${where.targetId}::text
          FOR UPDATE`;
  return rows[0] ? tx.budget.findUniqueOrThrow({ where: { id: rows[0].id } }) : null;
}

/**
 * Creates or changes a budget (audited). Thresholds already alerted this period stay recorded only while the
 * spend still crosses them under the new limit, so a raise re-arms the alerts above the spend; a budget
 * that was blocked and is raised above the spend is unblocked and routers are told (config version bump).
 *
 * Deployments the budget cannot count in full (a part without a known price) are named in `warnings`. A new
 * budget for such a deployment alone is refused: it could not limit the part that has no price.
 */
export async function setBudget(teamId: string, actor: AuditActor, input: SetBudgetInput, opts: { now?: Date } = {}) {
  const now = opts.now ?? new Date();
  const targetId = input.scope === "team" ? null : (input.targetId ?? null);
  if (!Number.isSafeInteger(input.monthlyLimitMicros) || input.monthlyLimitMicros <= 0) {
    throw new DomainError("BAD_REQUEST", "The monthly limit must be a positive amount.", { reason: "invalid_limit" });
  }
  await assertTarget(teamId, input.scope, targetId);
  const period = budgetPeriod(now);
  const teamSpend = (await monthToDateSpend([teamId], now)).get(teamId);
  const spend = spendFor(teamSpend, input.scope, targetId);
  const limit = input.monthlyLimitMicros;
  const crossed = THRESHOLDS.filter((t) => spend * 100 >= t * limit);
  const subject = { scope: input.scope, targetId };
  const unpriced = coveredBy(await unpricedDeployments(teamId, teamSpend), subject, await keyReachOf(teamId, [subject]));
  // A deployment's own budget where part of it has no price from now on (a price known since counts from here).
  const target =
    input.scope === "deployment" && targetId
      ? await db.deployment.findUniqueOrThrow({
          where: { id: targetId },
          select: { slug: true, mode: true, serverlessProvider: true, serverlessGpu: true, spotGpu: true, spotClouds: true },
        })
      : null;
  const targetUnpriced = target ? await unknownPrices(db, teamId, target) : [];

  return db.$transaction(async (tx) => {
    // Serialises writers of one budget (the team budget's targetId is NULL, which a unique index can't guard).
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`budget:${teamId}:${input.scope}:${targetId ?? ""}`}, 0))`;
    const existing = await lockBudget(tx, { teamId, scope: input.scope, targetId });
    // A new budget that could limit nothing of that part is refused; an existing one may still be changed
    // (e.g. raised to lift a block), with the warning.
    if (!existing && target && targetUnpriced.length) {
      throw priceUnknown(targetUnpriced, [`a budget of deployment ${target.slug}`], "redeploy it on");
    }
    const wasBlocked = existing ? sentIn(existing.alertsSent, period).includes(100) : false;
    const keep = existing ? sentIn(existing.alertsSent, period).filter((t) => (crossed as number[]).includes(t)) : [];
    const alertsSent = { [period]: keep } as Prisma.InputJsonValue;
    const budget = existing
      ? await tx.budget.update({ where: { id: existing.id }, data: { monthlyLimitMicros: BigInt(limit), alertsSent } })
      : await tx.budget.create({ data: { teamId, scope: input.scope, targetId, monthlyLimitMicros: BigInt(limit), alertsSent } });
    const previous = existing ? Number(existing.monthlyLimitMicros) : null;
    await appendAudit(tx, teamId, actor, {
      action: existing ? "budget.update" : "budget.create",
      targetType: input.scope === "team" ? "team" : input.scope,
      targetId: targetId ?? teamId,
      metadata: {
        budgetId: budget.id,
        scope: input.scope,
        previousLimitMicros: previous,
        monthlyLimitMicros: limit,
        spendMicros: spend,
        period,
        ...(unpriced.length ? { unpricedDeployments: unpriced.map((u) => u.slug) } : {}),
      },
    });
    const unblocked = wasBlocked && !keep.includes(100);
    if (unblocked) await usageLinks().bumpRouterConfigVersion(tx);
    return {
      id: budget.id,
      scope: budget.scope,
      targetId: budget.targetId,
      monthlyLimitMicros: limit,
      spendMicros: spend,
      unblocked,
      /** Deployments this budget cannot count in full, each named with what has no known price. */
      warnings: unpriced.map(unpricedWarning),
    };
  });
}

export async function deleteBudget(teamId: string, actor: AuditActor, budgetId: string) {
  return db.$transaction(async (tx) => {
    // Locked, so a 100% claimed concurrently is seen here and the routers are told the block is gone.
    const b = await lockBudget(tx, { id: budgetId, teamId });
    if (!b) throw notFound("Budget");
    await tx.budget.delete({ where: { id: b.id } });
    await appendAudit(tx, teamId, actor, {
      action: "budget.delete",
      targetType: b.scope === "team" ? "team" : b.scope,
      targetId: b.targetId ?? teamId,
      metadata: { budgetId: b.id, monthlyLimitMicros: Number(b.monthlyLimitMicros) },
    });
    if (sentIn(b.alertsSent, budgetPeriod(new Date())).includes(100)) await usageLinks().bumpRouterConfigVersion(tx);
    return { id: b.id };
  });
}

export async function listBudgets(teamId: string, opts: { now?: Date } = {}) {
  const now = opts.now ?? new Date();
  const period = budgetPeriod(now);
  const budgets = await db.budget.findMany({ where: { teamId }, orderBy: { createdAt: "asc" } });
  const spend = (await monthToDateSpend([teamId], now)).get(teamId);
  const [names, unpriced, keyReach] = await Promise.all([namesFor(budgets), budgets.length ? unpricedDeployments(teamId, spend) : [], keyReachOf(teamId, budgets)]);
  return budgets.map((b) => {
    const limit = Number(b.monthlyLimitMicros);
    const s = spendFor(spend, b.scope, b.targetId);
    const sent = sentIn(b.alertsSent, period);
    return {
      id: b.id,
      scope: b.scope,
      targetId: b.targetId,
      name: budgetSubject(b, names),
      period,
      monthlyLimitMicros: limit,
      spendMicros: s,
      percent: Math.round((s / limit) * 1000) / 10,
      alertsSent: sent,
      blocked: sent.includes(100),
      /** Deployments whose spend this budget cannot count in full (a part without a known price). */
      unpriced: coveredBy(unpriced, b, keyReach),
    };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Evaluate (cron)

export interface EvaluationResult {
  period: string;
  evaluated: number;
  alerts: Array<{ budgetId: string; teamId: string; threshold: Threshold; spendMicros: number; limitMicros: number }>;
  newlyBlocked: string[];
  /** Budgets blocked in an earlier period whose block lapsed with the new period. */
  lapsed: string[];
}

/**
 * Atomically records `threshold` as sent for `period`; false when another evaluator already did, or when the
 * limit is no longer `limitMicros` (the spend was compared with a limit an admin has changed since: the next
 * evaluation compares it with the new one). It merges into the row's current `alertsSent` and waits for a
 * `setBudget` holding the row (`lockBudget`), so neither erases the other's write.
 */
export async function claimThreshold(
  client: Pick<typeof db, "$queryRaw">,
  budgetId: string,
  period: string,
  threshold: number,
  limitMicros: number,
): Promise<boolean> {
  const rows = await client.$queryRaw<Array<{ id: string }>>`
    UPDATE "Budget"
    SET "alertsSent" = jsonb_set("alertsSent", ARRAY[${period}::text], COALESCE("alertsSent"->${period}::text, '[]'::jsonb) || jsonb_build_array(${threshold}::int)),
        "updatedAt" = ${new Date()}
    WHERE id = ${budgetId} AND "monthlyLimitMicros" = ${BigInt(limitMicros)}
      AND NOT (COALESCE("alertsSent"->${period}::text, '[]'::jsonb) @> jsonb_build_array(${threshold}::int))
    RETURNING id`;
  return rows.length === 1;
}

export async function evaluateBudgets(now: Date = new Date(), opts: { teamIds?: string[] } = {}): Promise<EvaluationResult> {
  const period = budgetPeriod(now);
  const budgets = await db.budget.findMany(opts.teamIds ? { where: { teamId: { in: opts.teamIds } } } : undefined);
  const result: EvaluationResult = { period, evaluated: budgets.length, alerts: [], newlyBlocked: [], lapsed: [] };
  if (budgets.length === 0) return result;

  // A block from an earlier period lapses now: forget old periods (once) and tell the routers.
  const stale = budgets.filter((b) => {
    const v = b.alertsSent as Record<string, unknown> | null;
    return v && typeof v === "object" && Object.keys(v).some((p) => p !== period);
  });
  if (stale.length) {
    await db.$transaction(async (tx) => {
      let bump = false;
      for (const b of stale) {
        const rows = await tx.$queryRaw<Array<{ id: string; old: Prisma.JsonValue }>>`
          UPDATE "Budget" u SET "alertsSent" = jsonb_build_object(${period}::text, COALESCE(u."alertsSent"->${period}::text, '[]'::jsonb))
          FROM "Budget" o WHERE u.id = ${b.id} AND o.id = u.id AND EXISTS (SELECT 1 FROM jsonb_object_keys(u."alertsSent") k WHERE k <> ${period}::text)
          RETURNING u.id, o."alertsSent" AS old`;
        const old = rows[0]?.old as Record<string, unknown> | undefined;
        if (old && Object.entries(old).some(([p, v]) => p !== period && Array.isArray(v) && v.includes(100))) {
          bump = true;
          result.lapsed.push(b.id);
        }
        if (old) b.alertsSent = { [period]: sentIn(old as Prisma.JsonValue, period) };
      }
      if (bump) await usageLinks().bumpRouterConfigVersion(tx);
    });
  }

  const spend = await monthToDateSpend([...new Set(budgets.map((b) => b.teamId))], now);
  const names = await namesFor(budgets);
  for (const b of budgets) {
    const limit = Number(b.monthlyLimitMicros);
    const s = spendFor(spend.get(b.teamId), b.scope, b.targetId);
    const already = sentIn(b.alertsSent, period);
    for (const threshold of THRESHOLDS) {
      if (s * 100 < threshold * limit || already.includes(threshold)) continue;
      let claimed: boolean;
      if (threshold === 100) {
        claimed = await db.$transaction(async (tx) => {
          const ok = await claimThreshold(tx, b.id, period, threshold, limit);
          if (ok) await usageLinks().bumpRouterConfigVersion(tx);
          return ok;
        });
        if (claimed) result.newlyBlocked.push(b.id);
      } else {
        claimed = await claimThreshold(db, b.id, period, threshold, limit);
      }
      if (!claimed) continue;
      result.alerts.push({ budgetId: b.id, teamId: b.teamId, threshold, spendMicros: s, limitMicros: limit });
      const subject = budgetSubject(b, names);
      const title =
        threshold === 100 ? budgetExceededMessage(subject, limit) : `${threshold}% of the monthly budget of ${subject} used`;
      const text =
        `${formatMicros(s)} of ${formatMicros(limit)} spent in ${period} (${Math.floor((s / limit) * 100)}%).` +
        (threshold === 100 ? ` Requests are refused until the period resets or an admin raises the budget.` : "");
      try {
        await usageLinks().notify(b.teamId, {
          type: "budget.threshold",
          ...(b.scope === "deployment" && b.targetId ? { deploymentId: b.targetId } : {}),
          title,
          text,
          budgetId: b.id,
          scope: b.scope,
          targetId: b.targetId,
          threshold,
          period,
          spendMicros: s,
          limitMicros: limit,
        });
      } catch (err) {
        // Recorded as sent: the alerts domain owns delivery retries; a crash here must not re-alert forever.
        console.error("[usage] budget alert failed:", (err as Error).message);
      }
    }
  }
  return result;
}

/**
 * Evaluation soon after usage arrives, for the teams it touched (the cron still evaluates everything):
 * enforcement then lags usage by the report period plus this delay, not by the cron period. At most one
 * evaluation runs at a time per process. Off under NODE_ENV=test, where tests evaluate explicitly.
 */
let evalDelayMs: number | null =
  process.env.TUNA_BUDGET_EVAL_DELAY_MS !== undefined ? Number(process.env.TUNA_BUDGET_EVAL_DELAY_MS) : process.env.NODE_ENV === "test" ? null : 5000;
const touchedTeams = new Set<string>();
let evalTimer: NodeJS.Timeout | null = null;
let evalRunning = false;

export function setBudgetEvaluationDelay(ms: number | null): void {
  evalDelayMs = ms;
}

export function budgetUsageArrived(teamIds: Iterable<string>): void {
  if (evalDelayMs === null) return;
  for (const t of teamIds) touchedTeams.add(t);
  if (evalTimer || evalRunning || touchedTeams.size === 0) return;
  evalTimer = setTimeout(runScheduledEvaluation, evalDelayMs);
  evalTimer.unref();
}

async function runScheduledEvaluation(): Promise<void> {
  evalTimer = null;
  const teamIds = [...touchedTeams];
  touchedTeams.clear();
  evalRunning = true;
  try {
    await evaluateBudgets(new Date(), { teamIds });
  } catch (err) {
    console.error("[usage] budget evaluation failed:", (err as Error).message);
  } finally {
    evalRunning = false;
    if (touchedTeams.size) budgetUsageArrived([]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Blocks: budgets at 100% this period (state recorded by evaluateBudgets, see the module comment)

interface BlockedBudgetRow {
  id: string;
  teamId: string;
  scope: BudgetScope;
  targetId: string | null;
  monthlyLimitMicros: bigint;
}

async function blockedBudgets(period: string, teamId: string | null = null): Promise<BlockedBudgetRow[]> {
  return db.$queryRaw<BlockedBudgetRow[]>`
    SELECT id, "teamId", scope, "targetId", "monthlyLimitMicros" FROM "Budget"
    WHERE COALESCE("alertsSent"->${period}::text, '[]'::jsonb) @> '[100]'::jsonb
      AND (${teamId}::text IS NULL OR "teamId" = ${teamId}::text)`;
}

export interface TeamBudgetBlock {
  budgetId: string;
  scope: BudgetScope;
  targetId: string | null;
  /** "team Acme", "deployment qwen-small", "key ci-bot". */
  name: string;
  monthlyLimitMicros: number;
  /** The message the router answers 429 insufficient_quota with. */
  message: string;
}

const SCOPE_ORDER: Record<BudgetScope, number> = { team: 0, deployment: 1, apikey: 2 };

/**
 * The team's budgets that refuse requests right now, the team budget first: what the dashboard shows so a
 * blocked team does not look healthy. Same state and messages as `budgetBlocks()` gives the routers.
 */
export async function teamBudgetBlocks(teamId: string, opts: { now?: Date } = {}): Promise<TeamBudgetBlock[]> {
  const blocked = await blockedBudgets(budgetPeriod(opts.now ?? new Date()), teamId);
  if (blocked.length === 0) return [];
  const names = await namesFor(blocked);
  return blocked
    .sort((a, b) => SCOPE_ORDER[a.scope] - SCOPE_ORDER[b.scope] || a.id.localeCompare(b.id))
    .map((b) => {
      const name = budgetSubject(b, names);
      const limit = Number(b.monthlyLimitMicros);
      return { budgetId: b.id, scope: b.scope, targetId: b.targetId, name, monthlyLimitMicros: limit, message: budgetExceededMessage(name, limit) };
    });
}

/** The block a deployment's requests get: its team's budget wins over its own, as in the router snapshot. */
export function blockForDeployment(blocks: TeamBudgetBlock[], deploymentId: string): TeamBudgetBlock | null {
  return blocks.find((b) => b.scope === "team") ?? blocks.find((b) => b.scope === "deployment" && b.targetId === deploymentId) ?? null;
}

// ---------------------------------------------------------------------------------------------------------
// Router snapshot

/**
 * What the snapshot builder marks `blocked`: keys over their key budget, deployments over their deployment
 * budget, and every deployment of a team over its team budget. Messages name the budget.
 */
export async function budgetBlocks(now: Date = new Date()): Promise<{ apiKeys: Map<string, BudgetBlock>; deployments: Map<string, BudgetBlock> }> {
  const blocked = await blockedBudgets(budgetPeriod(now));
  const apiKeys = new Map<string, BudgetBlock>();
  const deployments = new Map<string, BudgetBlock>();
  if (blocked.length === 0) return { apiKeys, deployments };
  const names = await namesFor(blocked);
  const block = (b: (typeof blocked)[number]): BudgetBlock => ({
    code: "budget_exceeded",
    message: budgetExceededMessage(budgetSubject(b, names), Number(b.monthlyLimitMicros)),
  });
  // Team budgets first so their (broader) message wins over a deployment's own.
  const teamBudgets = blocked.filter((b) => b.scope === "team");
  if (teamBudgets.length) {
    const deps = await db.deployment.findMany({ where: { teamId: { in: teamBudgets.map((b) => b.teamId) } }, select: { id: true, teamId: true } });
    for (const d of deps) deployments.set(d.id, block(teamBudgets.find((b) => b.teamId === d.teamId)!));
  }
  for (const b of blocked) {
    if (b.scope === "deployment" && b.targetId && !deployments.has(b.targetId)) deployments.set(b.targetId, block(b));
    if (b.scope === "apikey" && b.targetId) apiKeys.set(b.targetId, block(b));
  }
  return { apiKeys, deployments };
}
