import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";

/** Local state folder of the embedded default (database, generated keys). */
export function dataDir(): string {
  // turbopackIgnore: a runtime folder, not a source dependency (else the build traces the whole project).
  return path.resolve(/*turbopackIgnore: true*/ process.env.TUNA_DATA_DIR ?? path.join(process.cwd(), ".tuna"));
}

function parseKey(raw: string, name: string): Buffer {
  const s = raw.trim();
  const buf = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, "hex") : Buffer.from(s, "base64");
  if (buf.length !== 32) throw new Error(`${name} must be 32 bytes, base64 or hex encoded`);
  return buf;
}

const warned = new Set<string>();

/**
 * A 256-bit key from env `envVar`, or on the embedded default from a file generated once with mode 0600
 * (with a warning: production should keep keys in the platform's secret store).
 */
export function loadKey(envVar: string, fileName: string): Buffer {
  const fromEnv = process.env[envVar];
  if (fromEnv) return parseKey(fromEnv, envVar);
  const file = path.join(/*turbopackIgnore: true*/ dataDir(), fileName);
  if (!existsSync(/*turbopackIgnore: true*/ file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, randomBytes(32).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  }
  chmodSync(file, 0o600);
  if (!warned.has(envVar)) {
    warned.add(envVar);
    console.warn(`[tuna] ${envVar} is not set: using the key in ${file} (keep it safe and back it up; set ${envVar} in production)`);
  }
  return parseKey(readFileSync(/*turbopackIgnore: true*/ file, "utf8"), file);
}

export function keyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 12);
}
