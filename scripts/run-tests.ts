/**
 * Unit + integration tests: node's test runner over every `*.test.ts` outside e2e/, against a real
 * PostgreSQL started here (embedded) and Redis servers the tests start themselves.
 * Usage: npm run test:unit [-- <file or folder filter>...]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startTestDatabase } from "./test-db";
import { stopAllSimulators } from "../server/providers/local/process";

const ROOT = path.resolve(import.meta.dirname, "..");
const SKIP = new Set(["node_modules", ".next", ".tuna", ".git", "e2e", "test-results", "playwright-report"]);

function findTests(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (name.endsWith(".test.ts")) out.push(path.relative(ROOT, p));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = findTests(ROOT)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}

const log = (s: string) => console.log(`[test-setup] ${s}`);
const dbServer = await startTestDatabase(log);
const dataDir = mkdtempSync(path.join(os.tmpdir(), "tuna-test-data-"));
let code = 1;
try {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, "--test-reporter=spec", ...files],
    {
      cwd: ROOT,
      stdio: "inherit",
      env: {
        ...process.env,
        NODE_ENV: "test",
        TUNA_TEST_PG_URL: dbServer.adminUrl,
        TUNA_TEST_TEMPLATE_DB: dbServer.templateDb,
        TUNA_DATA_DIR: dataDir,
        TUNA_MASTER_KEY: process.env.TUNA_MASTER_KEY ?? randomBytes(32).toString("base64"),
        TUNA_AUDIT_KEY: process.env.TUNA_AUDIT_KEY ?? randomBytes(32).toString("base64"),
        DATABASE_URL: "",
      },
    },
  );
  code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
} finally {
  const leftover = await stopAllSimulators(path.join(dataDir, "local-provider"));
  if (leftover) log(`stopped ${leftover} local-provider simulator(s) the run left running`);
  await dbServer.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
