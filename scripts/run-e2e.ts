/**
 * End-to-end tests: boots PostgreSQL (embedded, migrated template cloned), builds the app if needed,
 * starts `next start` and a router against it, then runs Playwright in Debian's Chromium.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort, startTestDatabase } from "./test-db";
import { stopAllSimulators } from "../server/providers/local/process";
import { withDatabase } from "../server/db/embedded";

const ROOT = path.resolve(import.meta.dirname, "..");
const log = (s: string) => console.log(`[e2e] ${s}`);
const children: ChildProcess[] = [];

async function waitFor(url: string, timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${url} did not come up within ${timeoutMs} ms`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, name: string, quiet = false): ChildProcess {
  const c = spawn(cmd, args, { cwd: ROOT, env, stdio: quiet ? ["ignore", "ignore", "inherit"] : "inherit", detached: true });
  c.on("exit", (code, sig) => code && log(`${name} exited with ${code ?? sig}`));
  children.push(c);
  return c;
}

const dbServer = await startTestDatabase(log);
const dataDir = mkdtempSync(path.join(os.tmpdir(), "tuna-e2e-"));
let code = 1;
try {
  const dbName = "tuna_e2e";
  const admin = new pg.Client({ connectionString: dbServer.adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}" TEMPLATE "${dbServer.templateDb}"`);
  await admin.end();
  const appPort = Number(process.env.E2E_PORT ?? (await freePort()));
  const routerPort = await freePort();
  const baseUrl = `http://127.0.0.1:${appPort}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    DATABASE_URL: withDatabase(dbServer.adminUrl, dbName),
    TUNA_DATA_DIR: dataDir,
    NEXTAUTH_URL: baseUrl,
    NEXTAUTH_SECRET: randomBytes(32).toString("base64url"),
    TUNA_MASTER_KEY: randomBytes(32).toString("base64"),
    TUNA_AUDIT_KEY: randomBytes(32).toString("base64"),
    TUNA_ROUTER_TOKEN: `rt_${randomBytes(16).toString("hex")}`,
    TUNA_PUBLIC_ROUTER_URL: `http://127.0.0.1:${routerPort}`,
    TUNA_LOCAL_PROVIDER_DIR: path.join(dataDir, "local-provider"),
    // The specs' alert webhooks are servers on loopback, which tenant URLs may not otherwise point at.
    TUNA_ALLOW_PRIVATE_URLS: "127.0.0.1",
  };
  if (!existsSync(path.join(ROOT, ".next/BUILD_ID")) || process.env.E2E_REBUILD === "1") {
    log("building the app (next build)…");
    await new Promise<void>((resolve, reject) => {
      const b = spawn(path.join(ROOT, "node_modules/.bin/next"), ["build"], { cwd: ROOT, env, stdio: "inherit" });
      b.on("exit", (c) => (c === 0 ? resolve() : reject(new Error(`next build failed (${c})`))));
    });
  }
  run(path.join(ROOT, "node_modules/.bin/next"), ["start", "-H", "127.0.0.1", "-p", String(appPort)], env, "next");
  await waitFor(`${baseUrl}/signin`, 60_000);
  log(`app up on ${baseUrl}`);
  if (existsSync(path.join(ROOT, "router-service/src/main.ts"))) {
    run(process.execPath, ["--import", "tsx", "router-service/src/main.ts", "--port", String(routerPort)], {
      ...env,
      NODE_ENV: "production",
      TUNA_CONTROL_PLANE_URL: baseUrl,
      TUNA_ROUTER_STATE_DIR: path.join(dataDir, "router"),
    }, "router", true);
  }
  mkdirSync(path.join(ROOT, "test-results/screenshots"), { recursive: true });
  const pw = spawn(path.join(ROOT, "node_modules/.bin/playwright"), ["test", ...process.argv.slice(2)], {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...env, E2E_BASE_URL: baseUrl, E2E_ROUTER_URL: `http://127.0.0.1:${routerPort}`, NODE_ENV: "test" },
  });
  code = await new Promise<number>((r) => pw.on("exit", (c) => r(c ?? 1)));
} finally {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, "SIGTERM");
    } catch {
      /* already gone */
    }
  }
  const leftover = await stopAllSimulators(path.join(dataDir, "local-provider"));
  if (leftover) log(`stopped ${leftover} local-provider simulator(s) the run left running`);
  await new Promise((r) => setTimeout(r, 500));
  await dbServer.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
