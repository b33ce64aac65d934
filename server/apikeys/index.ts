import { createHash, randomBytes } from "node:crypto";
import type { ApiKey, DeploymentStatus } from "@prisma/client";
import { appendAudit, type AuditActor } from "../audit";
import { db, type Tx } from "../db";
import { DomainError } from "../lib/errors";
import { bumpRouterConfigVersion } from "../routerconfig";

/**
 * Router API keys: `tuna_sk_` + 32 random bytes (base64url), shown once, stored as SHA-256 of the whole
 * string. Every change bumps the router config version in its transaction, so routers see it on their
 * next poll.
 */

export const API_KEY_PREFIX = "tuna_sk_";
const DISPLAY_PREFIX_LEN = API_KEY_PREFIX.length + 4;

export type ApiKeyStatus = "active" | "expired" | "revoked";

export interface ApiKeyMetadata {
  id: string;
  label: string;
  /** "tuna_sk_ab12" — enough to recognise a key, useless to use it. */
  prefix: string;
  deployments: "*" | string[];
  rpm: number | null;
  tpm: number | null;
  maxConcurrent: number | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  createdById: string;
  createdAt: Date;
  status: ApiKeyStatus;
}

/** A deployment a key is scoped to, by name, for every role that can see the key. */
export interface ScopedDeployment {
  id: string;
  /** The deployment's name (slug); null when no deployment of the team has this id any more. */
  name: string | null;
  /** Destroyed, rejected or expired: the key no longer reaches it. */
  ended: boolean;
}

export interface ApiKeyListItem extends ApiKeyMetadata {
  /** `deployments` with names, in the same order; empty for "*". */
  scope: ScopedDeployment[];
}

const ENDED_STATUSES: DeploymentStatus[] = ["destroyed", "rejected", "expired"];

export interface ApiKeyInput {
  label: string;
  /** "*" (or empty) = every deployment of the team. */
  deployments?: "*" | string[];
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
  expiresAt?: Date | null;
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

function toMetadata(k: ApiKey, now = new Date()): ApiKeyMetadata {
  return {
    id: k.id,
    label: k.label,
    prefix: k.prefix,
    deployments: k.deploymentIds.length ? [...k.deploymentIds] : "*",
    rpm: k.rpm,
    tpm: k.tpm,
    maxConcurrent: k.maxConcurrent,
    expiresAt: k.expiresAt,
    revokedAt: k.revokedAt,
    lastUsedAt: k.lastUsedAt,
    createdById: k.createdById,
    createdAt: k.createdAt,
    status: k.revokedAt ? "revoked" : k.expiresAt && k.expiresAt <= now ? "expired" : "active",
  };
}

/** Deployment scope, checked against the team in the query itself (another team's id is NOT_FOUND). */
async function resolveScope(tx: Tx, teamId: string, deployments: "*" | string[] | undefined): Promise<string[]> {
  if (deployments === undefined || deployments === "*") return [];
  const ids = [...new Set(deployments)];
  if (ids.length === 0) return [];
  const found = await tx.deployment.count({ where: { teamId, id: { in: ids } } });
  if (found !== ids.length) throw new DomainError("NOT_FOUND", "Deployment not found.");
  return ids;
}

function checkLimits(input: Partial<ApiKeyInput>, now: Date): void {
  for (const f of ["rpm", "tpm", "maxConcurrent"] as const) {
    const v = input[f];
    if (v !== undefined && v !== null && (!Number.isInteger(v) || v <= 0)) {
      throw new DomainError("BAD_REQUEST", `${f} must be a positive whole number (or empty for no limit).`);
    }
  }
  if (input.expiresAt && input.expiresAt <= now) throw new DomainError("BAD_REQUEST", "The expiry must be in the future.");
}

export async function createApiKey(teamId: string, actor: AuditActor, input: ApiKeyInput): Promise<{ key: string; apiKey: ApiKeyMetadata }> {
  const now = new Date();
  checkLimits(input, now);
  const label = input.label.trim();
  if (!label) throw new DomainError("BAD_REQUEST", "Give the key a label.");
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  const row = await db.$transaction(async (tx) => {
    const deploymentIds = await resolveScope(tx, teamId, input.deployments);
    const k = await tx.apiKey.create({
      data: {
        teamId,
        label,
        prefix: key.slice(0, DISPLAY_PREFIX_LEN),
        hash: hashApiKey(key),
        deploymentIds,
        rpm: input.rpm ?? null,
        tpm: input.tpm ?? null,
        maxConcurrent: input.maxConcurrent ?? null,
        expiresAt: input.expiresAt ?? null,
        createdById: actor.userId ?? actor.label,
      },
    });
    await appendAudit(tx, teamId, actor, {
      action: "apikey.create",
      targetType: "apikey",
      targetId: k.id,
      metadata: { label, prefix: k.prefix, deployments: deploymentIds.length ? deploymentIds : "*", rpm: k.rpm, tpm: k.tpm, maxConcurrent: k.maxConcurrent, expiresAt: k.expiresAt?.toISOString() ?? null },
    });
    await bumpRouterConfigVersion(tx);
    return k;
  });
  return { key, apiKey: toMetadata(row) };
}

export async function listApiKeys(teamId: string): Promise<ApiKeyListItem[]> {
  const rows = await db.apiKey.findMany({ where: { teamId }, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
  const ids = [...new Set(rows.flatMap((r) => r.deploymentIds))];
  // Team-scoped: an id of another team's deployment gets no name.
  const deps = ids.length ? await db.deployment.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, slug: true, status: true } }) : [];
  const byId = new Map(deps.map((d) => [d.id, d]));
  const now = new Date();
  return rows.map((r) => ({
    ...toMetadata(r, now),
    scope: r.deploymentIds.map((id) => {
      const d = byId.get(id);
      return { id, name: d?.slug ?? null, ended: !d || ENDED_STATUSES.includes(d.status) };
    }),
  }));
}

/** Label, scope, limits and expiry of a key that is not revoked. */
export async function updateApiKey(teamId: string, actor: AuditActor, keyId: string, patch: Partial<ApiKeyInput>): Promise<ApiKeyMetadata> {
  checkLimits(patch, new Date());
  const row = await db.$transaction(async (tx) => {
    const existing = await tx.apiKey.findFirst({ where: { id: keyId, teamId } });
    if (!existing) throw new DomainError("NOT_FOUND", "API key not found.");
    if (existing.revokedAt) throw new DomainError("PRECONDITION_FAILED", "This key is revoked; create a new one.", { reason: "revoked" });
    const data = {
      ...(patch.label !== undefined ? { label: patch.label.trim() || existing.label } : {}),
      ...(patch.deployments !== undefined ? { deploymentIds: await resolveScope(tx, teamId, patch.deployments) } : {}),
      ...(patch.rpm !== undefined ? { rpm: patch.rpm } : {}),
      ...(patch.tpm !== undefined ? { tpm: patch.tpm } : {}),
      ...(patch.maxConcurrent !== undefined ? { maxConcurrent: patch.maxConcurrent } : {}),
      ...(patch.expiresAt !== undefined ? { expiresAt: patch.expiresAt } : {}),
    };
    const k = await tx.apiKey.update({ where: { id: keyId }, data });
    await appendAudit(tx, teamId, actor, {
      action: "apikey.update",
      targetType: "apikey",
      targetId: keyId,
      metadata: { changed: Object.keys(data), deployments: k.deploymentIds.length ? k.deploymentIds : "*", rpm: k.rpm, tpm: k.tpm, maxConcurrent: k.maxConcurrent, expiresAt: k.expiresAt?.toISOString() ?? null },
    });
    await bumpRouterConfigVersion(tx);
    return k;
  });
  return toMetadata(row);
}

export async function revokeApiKey(teamId: string, actor: AuditActor, keyId: string): Promise<ApiKeyMetadata> {
  const row = await db.$transaction(async (tx) => {
    const r = await tx.apiKey.updateMany({ where: { id: keyId, teamId, revokedAt: null }, data: { revokedAt: new Date() } });
    if (r.count === 0) {
      const exists = await tx.apiKey.findFirst({ where: { id: keyId, teamId }, select: { id: true } });
      if (!exists) throw new DomainError("NOT_FOUND", "API key not found.");
      throw new DomainError("PRECONDITION_FAILED", "This key is already revoked.", { reason: "revoked" });
    }
    await appendAudit(tx, teamId, actor, { action: "apikey.revoke", targetType: "apikey", targetId: keyId });
    await bumpRouterConfigVersion(tx);
    return tx.apiKey.findUniqueOrThrow({ where: { id: keyId } });
  });
  return toMetadata(row);
}
