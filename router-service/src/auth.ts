// API key authentication: keys are looked up by SHA-256 of the whole key string, never stored or logged.
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { ApiKeyConfig } from "./contract.js";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/**
 * Hashes of keys that recently authenticated, so a busy key is not re-hashed on every request. Only keys that
 * matched a configured hash get in (junk keys cannot flush it), it is bounded (oldest out first), lives only
 * in memory, and it caches the hash only: revocation, expiry and config swaps are still decided per request
 * by the `keysByHash` lookup.
 */
const HASH_CACHE_MAX = 4096;
const hashCache = new Map<string, string>();
function rememberHash(raw: string, hash: string): void {
  if (hashCache.size >= HASH_CACHE_MAX) hashCache.delete(hashCache.keys().next().value as string);
  hashCache.set(raw, hash);
}

export function extractApiKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = headers["x-api-key"];
  if (typeof x === "string" && x.trim()) return x.trim();
  return undefined;
}

export type AuthResult = { ok: true; key: ApiKeyConfig } | { ok: false; reason: "missing" | "invalid" };

export function authenticate(headers: IncomingHttpHeaders, keysByHash: Map<string, ApiKeyConfig>, now = Date.now()): AuthResult {
  const raw = extractApiKey(headers);
  if (!raw) return { ok: false, reason: "missing" };
  // A hash-keyed Map lookup: the secret is never compared byte by byte, so there is no timing oracle on it.
  const cached = hashCache.get(raw);
  const hash = cached ?? hashApiKey(raw);
  const key = keysByHash.get(hash);
  if (!key || key.revoked) return { ok: false, reason: "invalid" };
  if (cached === undefined) rememberHash(raw, hash);
  if (key.expiresAt && Date.parse(key.expiresAt) <= now) return { ok: false, reason: "invalid" };
  return { ok: true, key };
}

export function keyMayUse(key: ApiKeyConfig, deploymentId: string, teamId: string): boolean {
  if (key.teamId !== teamId) return false;
  return key.deployments === "*" || key.deployments.includes(deploymentId);
}
