import { Prisma } from "@prisma/client";
import { appendAudit, type AuditActor } from "../audit";
import { db, type Tx } from "../db";
import { DomainError } from "../lib/errors";
import { type CredentialOutcome, credentialOutcomeOfError, credentialVerdict } from "../providers/base/credential-check";
import { defaultScaling } from "../providers/base/engine";
import { ProviderError } from "../providers/base/errors";
import type { DeploymentSpec, Finding, ProviderContext } from "../providers/base/types";
import { getProvider, hasProvider } from "../providers/registry";
import {
  blobAad,
  decryptValue,
  encryptValue,
  fromBlob,
  isEncryptedBlob,
  keyring,
  rewrapDataKey,
  secretAad,
  toBlob,
  VaultCryptoError,
  type EncryptedBlob,
} from "./crypto";
import {
  credentialsFromValue,
  displayLast4,
  KIND_SPECS,
  PROVIDER_DISPLAY,
  PROVIDER_SECRET_KIND,
  providersForKind,
  SECRET_KINDS,
  validateSecretValue,
  type SecretKind,
} from "./kinds";

export type SecretPurpose = "deploy" | "destroy" | "test" | "status" | "alert" | "reconcile" | "refresh" | "prices";

export interface SecretMetadata {
  id: string;
  kind: string;
  label: string;
  last4: string;
  currentVersion: number;
  createdById: string;
  createdByEmail: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  lastTestedAt: Date | null;
  /** true: passed, false: failed; null with lastTestedAt set: could not verify (provider not reached). */
  lastTestOk: boolean | null;
  /** lastTestOk read as the test's outcome; null when never tested (or rotated since). */
  lastTestOutcome: SecretTestOutcome | null;
  lastTestMessage: string | null;
  /** What stops working when this secret is deleted. */
  usedBy: SecretUsers;
}

export interface SecretUsers {
  /** Display names of the providers that deploy with this kind of secret ("RunPod"). */
  providers: string[];
  /** Names of the team's alert channels whose webhook URL this secret is. */
  alertChannels: string[];
}

/** lastUsedAt is written at most this often per secret (no write per decrypt). */
const LAST_USED_GRANULARITY_MS = 60_000;

const metadataSelect = {
  id: true,
  kind: true,
  label: true,
  last4: true,
  currentVersion: true,
  createdById: true,
  createdAt: true,
  lastUsedAt: true,
  lastTestedAt: true,
  lastTestOk: true,
  lastTestMessage: true,
} satisfies Prisma.SecretSelect;

type SecretRow = Prisma.SecretGetPayload<{ select: typeof metadataSelect }>;

async function withEmails(rows: SecretRow[]): Promise<SecretMetadata[]> {
  const ids = [...new Set(rows.map((r) => r.createdById))];
  const users = ids.length ? await db.user.findMany({ where: { id: { in: ids } }, select: { id: true, email: true } }) : [];
  const email = new Map(users.map((u) => [u.id, u.email]));
  const channels = rows.length
    ? await db.alertChannel.findMany({ where: { secretId: { in: rows.map((r) => r.id) } }, orderBy: [{ createdAt: "asc" }, { id: "asc" }], select: { secretId: true, name: true } })
    : [];
  const channelsOf = (id: string) => channels.filter((c) => c.secretId === id).map((c) => c.name);
  return rows.map((r) => ({
    ...r,
    createdByEmail: email.get(r.createdById) ?? null,
    lastTestOutcome: testOutcomeOf(r),
    usedBy: { providers: providersForKind(r.kind).map(providerDisplay), alertChannels: channelsOf(r.id) },
  }));
}

function assertKind(kind: string): asserts kind is SecretKind {
  if (!(SECRET_KINDS as readonly string[]).includes(kind)) {
    throw new DomainError("BAD_REQUEST", `Unknown secret kind "${kind}". Known kinds: ${SECRET_KINDS.join(", ")}.`, { reason: "unknown_kind" });
  }
}

function checkValue(kind: SecretKind, value: string): void {
  const problem = validateSecretValue(kind, value);
  if (problem) throw new DomainError("BAD_REQUEST", `Cannot store this ${KIND_SPECS[kind].displayName}: ${problem}.`, { reason: "invalid_value" });
}

async function storeVersion(tx: Tx, teamId: string, secretId: string, version: number, value: string, createdById: string): Promise<void> {
  const sealed = encryptValue(value, secretAad(teamId, secretId, version));
  await tx.secretVersion.create({
    data: {
      secretId,
      version,
      ciphertext: new Uint8Array(sealed.ciphertext),
      iv: new Uint8Array(sealed.iv),
      authTag: new Uint8Array(sealed.authTag),
      wrappedDataKey: new Uint8Array(sealed.wrappedDataKey),
      masterKeyId: sealed.masterKeyId,
      createdById,
    },
  });
}

function actorUserId(actor: AuditActor): string {
  return actor.userId ?? actor.label;
}

export async function createSecret(teamId: string, actor: AuditActor, input: { kind: string; label: string; value: string }): Promise<SecretMetadata> {
  assertKind(input.kind);
  const kind = input.kind;
  checkValue(kind, input.value);
  const label = input.label.trim();
  if (!label) throw new DomainError("BAD_REQUEST", "Give the secret a label.");
  const row = await db.$transaction(async (tx) => {
    const s = await tx.secret.create({
      data: { teamId, kind, label, currentVersion: 1, last4: displayLast4(kind, input.value), createdById: actorUserId(actor) },
      select: metadataSelect,
    });
    await storeVersion(tx, teamId, s.id, 1, input.value, actorUserId(actor));
    await appendAudit(tx, teamId, actor, { action: "secret.create", targetType: "secret", targetId: s.id, metadata: { kind, label } });
    return s;
  });
  return (await withEmails([row]))[0];
}

export async function rotateSecret(teamId: string, actor: AuditActor, secretId: string, value: string): Promise<SecretMetadata> {
  const row = await db.$transaction(async (tx) => {
    const existing = await tx.secret.findFirst({ where: { id: secretId, teamId, deletedAt: null }, select: { kind: true } });
    if (!existing) throw new DomainError("NOT_FOUND", "Secret not found.");
    assertKind(existing.kind);
    checkValue(existing.kind, value);
    // The increment is the lock: two concurrent rotations get distinct versions.
    const s = await tx.secret.update({
      where: { id: secretId },
      data: { currentVersion: { increment: 1 }, last4: displayLast4(existing.kind, value), lastTestedAt: null, lastTestOk: null, lastTestMessage: null },
      select: metadataSelect,
    });
    await storeVersion(tx, teamId, secretId, s.currentVersion, value, actorUserId(actor));
    await appendAudit(tx, teamId, actor, { action: "secret.rotate", targetType: "secret", targetId: secretId, metadata: { kind: s.kind, version: s.currentVersion } });
    return s;
  });
  return (await withEmails([row]))[0];
}

/** A new label (e.g. an alert channel was renamed); `tx` joins the caller's transaction. */
export async function relabelSecret(teamId: string, actor: AuditActor, secretId: string, label: string, tx?: Tx): Promise<void> {
  const next = label.trim();
  if (!next) throw new DomainError("BAD_REQUEST", "Give the secret a label.");
  const run = async (t: Tx) => {
    const r = await t.secret.updateMany({ where: { id: secretId, teamId, deletedAt: null }, data: { label: next } });
    if (r.count === 0) throw new DomainError("NOT_FOUND", "Secret not found.");
    await appendAudit(t, teamId, actor, { action: "secret.relabel", targetType: "secret", targetId: secretId, metadata: { label: next } });
  };
  if (tx) await run(tx);
  else await db.$transaction(run);
}

/** Whether the secret exists and is not deleted. */
export async function secretExists(teamId: string, secretId: string): Promise<boolean> {
  return (await db.secret.count({ where: { id: secretId, teamId, deletedAt: null } })) > 0;
}

/**
 * Soft delete: the secret disappears from lists and lookups; its versions stay for history. An alert channel whose
 * webhook URL it was keeps its settings and shows "webhook missing" until it gets a new URL (see `usedBy`).
 */
export async function deleteSecret(teamId: string, actor: AuditActor, secretId: string): Promise<{ id: string }> {
  return db.$transaction(async (tx) => {
    const r = await tx.secret.updateMany({ where: { id: secretId, teamId, deletedAt: null }, data: { deletedAt: new Date() } });
    if (r.count === 0) throw new DomainError("NOT_FOUND", "Secret not found.");
    await appendAudit(tx, teamId, actor, { action: "secret.delete", targetType: "secret", targetId: secretId });
    return { id: secretId };
  });
}

export async function listSecrets(teamId: string): Promise<SecretMetadata[]> {
  const rows = await db.secret.findMany({ where: { teamId, deletedAt: null }, orderBy: [{ createdAt: "asc" }, { id: "asc" }], select: metadataSelect });
  return withEmails(rows);
}

export async function getSecretMetadata(teamId: string, secretId: string): Promise<SecretMetadata> {
  const row = await db.secret.findFirst({ where: { id: secretId, teamId, deletedAt: null }, select: metadataSelect });
  if (!row) throw new DomainError("NOT_FOUND", "Secret not found.");
  return (await withEmails([row]))[0];
}

async function findSecret(teamId: string, ref: { id: string } | { kind: string }) {
  const where = "id" in ref ? { id: ref.id, teamId, deletedAt: null } : { kind: ref.kind, teamId, deletedAt: null };
  // By kind: the most recently added secret of that kind wins.
  return db.secret.findFirst({ where, orderBy: [{ createdAt: "desc" }, { id: "desc" }], select: { id: true, kind: true, currentVersion: true } });
}

/**
 * Decrypts a secret for the duration of `fn` only. Every decrypt is audited (`secret.use` with its purpose,
 * never the value) before the plaintext is handed out; lastUsedAt is bumped at most once a minute.
 */
export async function withSecret<T>(
  teamId: string,
  ref: { id: string } | { kind: string },
  purpose: SecretPurpose,
  actor: AuditActor,
  fn: (plaintext: string) => Promise<T>,
): Promise<T> {
  const secret = await findSecret(teamId, ref);
  if (!secret) throw new DomainError("NOT_FOUND", "id" in ref ? "Secret not found." : `No ${ref.kind} secret in this team's vault.`);
  const v = await db.secretVersion.findUnique({ where: { secretId_version: { secretId: secret.id, version: secret.currentVersion } } });
  if (!v) throw new DomainError("INTERNAL", "Secret version missing.");
  let plaintext: string | null;
  try {
    plaintext = decryptValue(
      { ciphertext: Buffer.from(v.ciphertext), iv: Buffer.from(v.iv), authTag: Buffer.from(v.authTag), wrappedDataKey: Buffer.from(v.wrappedDataKey), masterKeyId: v.masterKeyId },
      secretAad(teamId, secret.id, v.version),
    );
  } catch (e) {
    if (e instanceof VaultCryptoError) throw new DomainError("INTERNAL", `Secret ${secret.id} cannot be decrypted: ${e.message}.`, { reason: "decrypt_failed" });
    throw e;
  }
  const now = new Date();
  await db.$transaction(async (tx) => {
    await appendAudit(tx, teamId, actor, {
      action: "secret.use",
      targetType: "secret",
      targetId: secret.id,
      metadata: { purpose, kind: secret.kind, version: v.version },
    });
    await tx.secret.updateMany({
      where: { id: secret.id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: new Date(now.getTime() - LAST_USED_GRANULARITY_MS) } }] },
      data: { lastUsedAt: now },
    });
  });
  try {
    return await fn(plaintext);
  } finally {
    plaintext = null;
  }
}

function providerDisplay(name: string): string {
  return PROVIDER_DISPLAY[name] ?? name;
}

/**
 * The provider's credentials from the team's vault, shaped by its `credentialsSchema`, for the duration of
 * `fn`. Providers that need none (local, local-spot) get `{}`. A Hugging Face token, when the team has one,
 * is passed as the workload secret `HF_TOKEN`.
 */
export async function providerCredentials<T>(
  teamId: string,
  providerName: string,
  purpose: SecretPurpose,
  actor: AuditActor,
  fn: (creds: Record<string, unknown>) => Promise<T>,
  /** A particular secret of the provider's kind (the vault's Test button); default: the team's current one. */
  opts: { secretId?: string } = {},
): Promise<T> {
  if (!(providerName in PROVIDER_SECRET_KIND)) {
    throw new DomainError("BAD_REQUEST", `Provider "${providerName}" has no credential mapping in the vault.`, { reason: "unknown_provider" });
  }
  const kind = PROVIDER_SECRET_KIND[providerName];
  if (kind === null) return fn({});
  const secret = await findSecret(teamId, opts.secretId ? { id: opts.secretId } : { kind });
  if (!secret) {
    throw new DomainError("PRECONDITION_FAILED", `${KIND_SPECS[kind].addHint} to deploy on ${providerDisplay(providerName)}.`, {
      reason: "missing_credentials",
      details: { provider: providerName, kind },
    });
  }
  const hf = await findSecret(teamId, { kind: "huggingface" });
  return withSecret(teamId, { id: secret.id }, purpose, actor, async (value) => {
    const raw = credentialsFromValue(kind, value);
    if (hf && raw.secrets === undefined) {
      raw.secrets = await withSecret(teamId, { id: hf.id }, purpose, actor, async (token) => ({ HF_TOKEN: token.trim() }));
    }
    const schema = hasProvider(providerName) ? getProvider(providerName).credentialsSchema : null;
    if (!schema) return fn(raw);
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.map(String).join(".") || "(value)"))].join(", ");
      throw new DomainError(
        "PRECONDITION_FAILED",
        `The ${KIND_SPECS[kind].displayName} in the vault does not fit ${providerDisplay(providerName)} (check: ${fields}). Rotate the secret with a complete value.`,
        { reason: "invalid_credentials", details: { provider: providerName, kind } },
      );
    }
    return fn(parsed.data);
  });
}

function preflightSpec(teamId: string, gpu: string): DeploymentSpec {
  const scaling = defaultScaling();
  return {
    deploymentId: "vault-test",
    teamId,
    name: "tuna-vault-test",
    model: "Qwen/Qwen3-0.6B",
    servedModelName: "vault-test",
    gpu,
    gpuCount: 1,
    engine: { kind: "vllm", maxModelLen: 4096 },
    serverlessScaling: scaling.serverless,
    spotScaling: scaling.spot,
    port: 8000,
    secretNames: [],
  };
}

/**
 * "passed": the provider confirmed the credentials; "failed": it refused them (or they do not fit);
 * "unverified": the provider could not be reached (network error, timeout, 5xx) or did not say either way.
 */
export type SecretTestOutcome = CredentialOutcome;

export interface SecretTestResult {
  outcome: SecretTestOutcome;
  /** outcome === "passed". */
  ok: boolean;
  message: string;
  findings: Finding[];
}

/**
 * The outcome is stored without a schema change: lastTestOk true/false, and null (with lastTestedAt set)
 * for "could not verify". Rotation clears all three, so null without lastTestedAt still means "never tested".
 */
function storedTestOk(outcome: SecretTestOutcome): boolean | null {
  return outcome === "passed" ? true : outcome === "failed" ? false : null;
}

function testOutcomeOf(row: { lastTestedAt: Date | null; lastTestOk: boolean | null }): SecretTestOutcome | null {
  if (!row.lastTestedAt) return null;
  return row.lastTestOk === true ? "passed" : row.lastTestOk === false ? "failed" : "unverified";
}

function testResult(outcome: SecretTestOutcome, message: string, findings: Finding[]): SecretTestResult {
  return { outcome, ok: outcome === "passed", message, findings };
}

/** The provider's preflight findings → the test's outcome, by finding code (see `credentialVerdict`). */
function providerTestResult(providerName: string, findings: Finding[]): SecretTestResult {
  const name = providerDisplay(providerName);
  const { outcome, reasons } = credentialVerdict(findings);
  const detail = reasons.map((f) => f.message).join(" ");
  if (outcome === "passed") return testResult(outcome, `${name} accepted the credentials.`, findings);
  if (outcome === "failed") return testResult(outcome, detail, findings);
  return testResult(outcome, `${name} did not confirm the credentials${detail ? `: ${detail}` : "."}`, findings);
}

/**
 * "Test": runs the consuming provider's preflight with the decrypted credentials (a small plan on a GPU it
 * supports), records lastTested*, audits `secret.test`. Passes only when the provider confirmed the credentials;
 * kinds without a provider get a format check, which at best is "unverified" (see the vault README).
 */
export async function testSecret(teamId: string, actor: AuditActor, secretId: string, opts: { ctx?: ProviderContext } = {}): Promise<SecretTestResult> {
  const secret = await db.secret.findFirst({ where: { id: secretId, teamId, deletedAt: null }, select: { id: true, kind: true } });
  if (!secret) throw new DomainError("NOT_FOUND", "Secret not found.");
  assertKind(secret.kind);
  const kind = secret.kind;
  const providerName = providersForKind(kind).find((p) => hasProvider(p));
  let result: SecretTestResult;
  if (providerName) {
    const provider = getProvider(providerName);
    try {
      result = await providerCredentials(teamId, providerName, "test", actor, async (creds) => {
        const gpu = provider.supportedGpus()[0] ?? "L4";
        const plan = provider.plan(preflightSpec(teamId, gpu));
        // Findings about the sample plan (GPU stock, region) neither pass nor fail the credentials.
        return providerTestResult(providerName, await provider.preflight(plan, creds, opts.ctx));
      }, { secretId });
    } catch (e) {
      if (e instanceof ProviderError) {
        // A preflight that throws (e.g. a network error while signing in) did not get an answer about the key.
        const outcome = credentialOutcomeOfError(e);
        result = testResult(outcome, outcome === "failed" ? e.message : `${providerDisplay(providerName)} did not confirm the credentials: ${e.message}`, []);
      } else if (e instanceof DomainError && e.code !== "INTERNAL") {
        result = testResult("failed", e.message, []);
      } else {
        throw e;
      }
    }
  } else {
    result = await withSecret(teamId, { id: secretId }, "test", actor, async (value) => {
      const problem = validateSecretValue(kind, value);
      // Only the format is checked: nobody confirmed the value works, so this is never a pass.
      return problem
        ? testResult("failed", problem, [])
        : testResult("unverified", `${KIND_SPECS[kind].displayName} is well-formed; no provider check is available for this kind.`, []);
    });
  }
  const message = result.message.slice(0, 500);
  await db.$transaction(async (tx) => {
    await tx.secret.updateMany({ where: { id: secretId, teamId }, data: { lastTestedAt: new Date(), lastTestOk: storedTestOk(result.outcome), lastTestMessage: message } });
    await appendAudit(tx, teamId, actor, { action: "secret.test", targetType: "secret", targetId: secretId, metadata: { kind, ok: result.ok, outcome: result.outcome } });
  });
  return { ...result, message };
}

/** Seals a small value stored outside the vault tables (AAD = team id + purposeId). */
export function encryptForTeam(teamId: string, purposeId: string, plaintext: string): EncryptedBlob {
  return toBlob(encryptValue(plaintext, blobAad(teamId, purposeId)));
}

export function decryptForTeam(teamId: string, purposeId: string, blob: unknown): string {
  if (!isEncryptedBlob(blob)) throw new DomainError("INTERNAL", "Encrypted field is malformed.", { reason: "decrypt_failed" });
  try {
    return decryptValue(fromBlob(blob), blobAad(teamId, purposeId));
  } catch (e) {
    if (e instanceof VaultCryptoError) throw new DomainError("INTERNAL", `Encrypted field cannot be decrypted: ${e.message}.`, { reason: "decrypt_failed" });
    throw e;
  }
}

export interface RewrapResult {
  currentKeyId: string;
  secretVersions: { rewrapped: number; alreadyCurrent: number; failed: number };
  blobs: { rewrapped: number; alreadyCurrent: number; failed: number };
  failures: string[];
}

/**
 * Master-key rotation: re-wraps every data key still under an older key with the current one. Readers keep
 * working throughout (the old key stays in TUNA_MASTER_KEY_PREVIOUS until this reports no failures); each
 * row is updated only if it still carries the key id read, so a concurrent rotation of a secret is safe.
 */
export async function rewrapAllDataKeys(opts: { batchSize?: number } = {}): Promise<RewrapResult> {
  const ring = keyring();
  const batch = opts.batchSize ?? 200;
  const res: RewrapResult = {
    currentKeyId: ring.current.id,
    secretVersions: { rewrapped: 0, alreadyCurrent: 0, failed: 0 },
    blobs: { rewrapped: 0, alreadyCurrent: 0, failed: 0 },
    failures: [],
  };
  res.secretVersions.alreadyCurrent = await db.secretVersion.count({ where: { masterKeyId: ring.current.id } });
  let cursor: string | undefined;
  for (;;) {
    const rows = await db.secretVersion.findMany({
      where: { masterKeyId: { not: ring.current.id }, ...(cursor ? { id: { gt: cursor } } : {}) },
      orderBy: { id: "asc" },
      take: batch,
      select: { id: true, wrappedDataKey: true, masterKeyId: true },
    });
    for (const r of rows) {
      try {
        const w = rewrapDataKey(Buffer.from(r.wrappedDataKey), r.masterKeyId, ring);
        const u = await db.secretVersion.updateMany({
          where: { id: r.id, masterKeyId: r.masterKeyId },
          data: { wrappedDataKey: new Uint8Array(w.wrappedDataKey), masterKeyId: w.masterKeyId },
        });
        res.secretVersions.rewrapped += u.count;
      } catch (e) {
        res.secretVersions.failed++;
        res.failures.push(`secret version ${r.id}: ${(e as Error).message}`);
      }
    }
    if (rows.length < batch) break;
    cursor = rows[rows.length - 1].id;
  }
  // Encrypted fields stored elsewhere (upstream auth headers of deployment components).
  cursor = undefined;
  for (;;) {
    const rows: Array<{ id: string; upstreamHeadersCipher: Prisma.JsonValue }> = await db.deploymentComponent.findMany({
      where: { upstreamHeadersCipher: { not: Prisma.AnyNull }, ...(cursor ? { id: { gt: cursor } } : {}) },
      orderBy: { id: "asc" },
      take: batch,
      select: { id: true, upstreamHeadersCipher: true },
    });
    for (const r of rows) {
      const blob: unknown = r.upstreamHeadersCipher;
      if (!isEncryptedBlob(blob)) continue;
      if (blob.kid === ring.current.id) {
        res.blobs.alreadyCurrent++;
        continue;
      }
      try {
        const w = rewrapDataKey(Buffer.from(blob.wdk, "base64"), blob.kid, ring);
        const next: EncryptedBlob = { ...blob, kid: w.masterKeyId, wdk: w.wrappedDataKey.toString("base64") };
        const u = await db.deploymentComponent.updateMany({
          where: { id: r.id, upstreamHeadersCipher: { equals: blob as unknown as Prisma.InputJsonValue } },
          data: { upstreamHeadersCipher: next as unknown as Prisma.InputJsonValue },
        });
        res.blobs.rewrapped += u.count;
      } catch (e) {
        res.blobs.failed++;
        res.failures.push(`component ${r.id}: ${(e as Error).message}`);
      }
    }
    if (rows.length < batch) break;
    cursor = rows[rows.length - 1].id;
  }
  return res;
}

