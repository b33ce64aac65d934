/**
 * Master-key rotation for the vault (server/vault/README.md):
 *   npx tsx scripts/rotate-master-key.ts --generate     print a fresh 32-byte key (base64)
 *   npx tsx scripts/rotate-master-key.ts                re-wrap every data key under TUNA_MASTER_KEY
 * The re-wrap reads old keys from TUNA_MASTER_KEY_PREVIOUS (comma-separated) and, when moving off the
 * embedded default, from the generated master.key file. Exit code 1 if anything could not be re-wrapped.
 */
import { embeddedDefaultDatabaseUrl } from "../server/db/embedded";
import { randomBytes } from "node:crypto";
import { keyring, rewrapAllDataKeys } from "../server/vault";
import { getPrisma } from "../server/db";

const args = process.argv.slice(2);
if (args.includes("--generate")) {
  console.log(randomBytes(32).toString("base64"));
  process.exit(0);
}
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: rotate-master-key.ts [--generate]   (needs DATABASE_URL, TUNA_MASTER_KEY, TUNA_MASTER_KEY_PREVIOUS)");
  process.exit(0);
}
if (!process.env.DATABASE_URL) {
  // The embedded default's database, while `npm start` is running.
  process.env.DATABASE_URL = embeddedDefaultDatabaseUrl();
}
let exitCode = 0;
const ring = keyring();
console.log(`current master key id: ${ring.current.id}; keys available: ${[...ring.byId.keys()].join(", ")}`);
try {
  const res = await rewrapAllDataKeys();
  console.log(
    `secret versions: ${res.secretVersions.rewrapped} re-wrapped, ${res.secretVersions.alreadyCurrent} already current, ${res.secretVersions.failed} failed`,
  );
  console.log(`encrypted fields: ${res.blobs.rewrapped} re-wrapped, ${res.blobs.alreadyCurrent} already current, ${res.blobs.failed} failed`);
  for (const f of res.failures) console.error(`  ${f}`);
  if (res.failures.length) {
    console.error("some data keys are still under an older key: keep it in TUNA_MASTER_KEY_PREVIOUS and run again");
    exitCode = 1;
  } else {
    console.log("done: every data key is under the current master key; older keys can be removed from TUNA_MASTER_KEY_PREVIOUS");
  }
} catch (e) {
  console.error(`rotation failed: ${(e as Error).message}`);
  exitCode = 1;
} finally {
  await getPrisma().$disconnect();
}
process.exit(exitCode);
