import { createHmac } from "node:crypto";
import { loadKey } from "../lib/keys";

/**
 * The audit chain: each row's hash is HMAC-SHA256(auditKey, prevHash ‖ canonical(row)). The key lives
 * outside the database (TUNA_AUDIT_KEY or .tuna/audit.key), so someone with SQL access alone can neither
 * edit a row nor forge a new one without `verifyAuditChain` noticing.
 */
export const GENESIS = "0".repeat(64);

export interface ChainFields {
  teamId: string;
  seq: number;
  actorId: string | null;
  actorLabel: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  metadata: unknown;
  ip: string | null;
  userAgent: string | null;
  createdAt: Date;
}

/** JSON with object keys sorted at every level, so the same data always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(",")}}`;
}

let cachedKey: Buffer | undefined;
function auditKey(): Buffer {
  cachedKey ??= loadKey("TUNA_AUDIT_KEY", "audit.key");
  return cachedKey;
}

export function chainHash(prevHash: string, f: ChainFields): string {
  const body = canonicalJson({ ...f, createdAt: f.createdAt.toISOString() });
  return createHmac("sha256", auditKey()).update(prevHash).update("\n").update(body).digest("hex");
}

export function headMac(teamId: string, seq: number, hash: string): string {
  return createHmac("sha256", auditKey()).update(`head\n${teamId}\n${seq}\n${hash}`).digest("hex");
}
