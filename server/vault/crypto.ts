import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { dataDir, keyId, loadKey } from "../lib/keys";

/**
 * Envelope encryption (DESIGN.md §5): every secret version gets a random 256-bit data key; the value is
 * sealed with AES-256-GCM under that data key with an AAD naming the team and the object it belongs to;
 * the data key is itself sealed (AES-256-GCM) under the master key. Rotating the master key re-wraps data
 * keys only, so ciphertexts never change and old + new keys can both be in the keyring meanwhile.
 */

const DEK_AAD = Buffer.from("tuna:dek:v1");
const IV_LEN = 12;
const TAG_LEN = 16;

export interface MasterKey {
  id: string;
  key: Buffer;
}

export interface Keyring {
  current: MasterKey;
  byId: Map<string, Buffer>;
}

function parseKeyMaterial(raw: string, name: string): Buffer {
  const s = raw.trim();
  const buf = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, "hex") : Buffer.from(s, "base64");
  if (buf.length !== 32) throw new Error(`${name} must contain 32-byte keys, base64 or hex encoded`);
  return buf;
}

let cached: { sig: string; ring: Keyring } | null = null;

/**
 * Current master key (TUNA_MASTER_KEY, or the generated `master.key` file of the embedded default) plus the
 * older keys listed in TUNA_MASTER_KEY_PREVIOUS, indexed by key id. Re-read when the environment changes.
 */
export function keyring(): Keyring {
  const sig = `${process.env.TUNA_MASTER_KEY ?? ""}|${process.env.TUNA_MASTER_KEY_PREVIOUS ?? ""}|${process.env.TUNA_DATA_DIR ?? ""}`;
  if (cached && cached.sig === sig) return cached.ring;
  const key = loadKey("TUNA_MASTER_KEY", "master.key");
  const current = { id: keyId(key), key };
  const byId = new Map<string, Buffer>([[current.id, key]]);
  for (const part of (process.env.TUNA_MASTER_KEY_PREVIOUS ?? "").split(",")) {
    if (!part.trim()) continue;
    const k = parseKeyMaterial(part, "TUNA_MASTER_KEY_PREVIOUS");
    if (!byId.has(keyId(k))) byId.set(keyId(k), k);
  }
  // Moving from the embedded default's generated key to TUNA_MASTER_KEY: the file's key stays readable
  // until `scripts/rotate-master-key.ts` has re-wrapped everything under the new one.
  const file = path.join(dataDir(), "master.key");
  if (process.env.TUNA_MASTER_KEY && existsSync(file)) {
    try {
      const k = parseKeyMaterial(readFileSync(file, "utf8"), file);
      if (!byId.has(keyId(k))) byId.set(keyId(k), k);
    } catch {
      /* an unreadable old key file only matters if rows still need it: unwrap reports that */
    }
  }
  const ring = { current, byId };
  cached = { sig, ring };
  return ring;
}

function seal(key: Buffer, plaintext: Buffer, aad: Buffer): { iv: Buffer; ct: Buffer; tag: Buffer } {
  const iv = randomBytes(IV_LEN);
  const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_LEN });
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return { iv, ct, tag: c.getAuthTag() };
}

function open(key: Buffer, iv: Buffer, ct: Buffer, tag: Buffer, aad: Buffer): Buffer {
  const d = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_LEN });
  d.setAAD(aad);
  d.setAuthTag(tag);
  return Buffer.concat([d.update(ct), d.final()]);
}

export class VaultCryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VaultCryptoError";
  }
}

/** Wrapped data key layout: iv(12) ‖ tag(16) ‖ sealed key(32). */
export function wrapDataKey(dataKey: Buffer, master: MasterKey): Buffer {
  const { iv, ct, tag } = seal(master.key, dataKey, DEK_AAD);
  return Buffer.concat([iv, tag, ct]);
}

export function unwrapDataKey(wrapped: Buffer, masterKeyId: string, ring: Keyring = keyring()): Buffer {
  const key = ring.byId.get(masterKeyId);
  if (!key) {
    throw new VaultCryptoError(
      `master key ${masterKeyId} is not available: set it in TUNA_MASTER_KEY_PREVIOUS until rotation has re-wrapped every data key`,
    );
  }
  try {
    return open(key, wrapped.subarray(0, IV_LEN), wrapped.subarray(IV_LEN + TAG_LEN), wrapped.subarray(IV_LEN, IV_LEN + TAG_LEN), DEK_AAD);
  } catch {
    throw new VaultCryptoError("data key could not be unwrapped (wrong master key or tampered data)");
  }
}

export interface Sealed {
  ciphertext: Buffer;
  iv: Buffer;
  authTag: Buffer;
  wrappedDataKey: Buffer;
  masterKeyId: string;
}

export function encryptValue(plaintext: string, aad: string, ring: Keyring = keyring()): Sealed {
  const dataKey = randomBytes(32);
  try {
    const pt = Buffer.from(plaintext, "utf8");
    const { iv, ct, tag } = seal(dataKey, pt, Buffer.from(aad, "utf8"));
    pt.fill(0);
    return { ciphertext: ct, iv, authTag: tag, wrappedDataKey: wrapDataKey(dataKey, ring.current), masterKeyId: ring.current.id };
  } finally {
    dataKey.fill(0);
  }
}

export function decryptValue(s: Sealed, aad: string, ring: Keyring = keyring()): string {
  const dataKey = unwrapDataKey(s.wrappedDataKey, s.masterKeyId, ring);
  let pt: Buffer;
  try {
    pt = open(dataKey, s.iv, s.ciphertext, s.authTag, Buffer.from(aad, "utf8"));
  } catch {
    throw new VaultCryptoError("value could not be decrypted (tampered ciphertext, or it belongs to another team or object)");
  } finally {
    dataKey.fill(0);
  }
  const out = pt.toString("utf8");
  pt.fill(0);
  return out;
}

/** Re-seals a wrapped data key under the current master key (ciphertext untouched). */
export function rewrapDataKey(wrapped: Buffer, masterKeyId: string, ring: Keyring = keyring()): { wrappedDataKey: Buffer; masterKeyId: string } {
  const dataKey = unwrapDataKey(wrapped, masterKeyId, ring);
  try {
    return { wrappedDataKey: wrapDataKey(dataKey, ring.current), masterKeyId: ring.current.id };
  } finally {
    dataKey.fill(0);
  }
}

export function secretAad(teamId: string, secretId: string, version: number): string {
  return `tuna:secret:v1|${teamId}|${secretId}|${version}`;
}

export function blobAad(teamId: string, purposeId: string): string {
  return `tuna:blob:v1|${teamId}|${purposeId}`;
}

/** JSON-safe sealed value for small encrypted fields stored outside the vault tables. */
export interface EncryptedBlob {
  v: 1;
  kid: string;
  iv: string;
  tag: string;
  ct: string;
  wdk: string;
}

export function toBlob(s: Sealed): EncryptedBlob {
  return {
    v: 1,
    kid: s.masterKeyId,
    iv: s.iv.toString("base64"),
    tag: s.authTag.toString("base64"),
    ct: s.ciphertext.toString("base64"),
    wdk: s.wrappedDataKey.toString("base64"),
  };
}

export function isEncryptedBlob(v: unknown): v is EncryptedBlob {
  const b = v as Partial<EncryptedBlob> | null;
  return !!b && typeof b === "object" && b.v === 1 && ["kid", "iv", "tag", "ct", "wdk"].every((k) => typeof (b as Record<string, unknown>)[k] === "string");
}

export function fromBlob(b: EncryptedBlob): Sealed {
  return {
    masterKeyId: b.kid,
    iv: Buffer.from(b.iv, "base64"),
    authTag: Buffer.from(b.tag, "base64"),
    ciphertext: Buffer.from(b.ct, "base64"),
    wrappedDataKey: Buffer.from(b.wdk, "base64"),
  };
}
