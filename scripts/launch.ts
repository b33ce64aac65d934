/**
 * `npm start` / `npm run dev`: the whole product on one machine.
 *  - PostgreSQL: DATABASE_URL, or an embedded PostgreSQL with its data in .tuna/pg (loopback only)
 *  - migrations applied on every start
 *  - secrets of the embedded default generated once into .tuna/ (0600): NextAuth secret, master key, router token,
 *    the token of the router's /metrics
 *  - the dashboard/API (Next.js) on http://localhost:3000 and a router on http://localhost:8080
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startEmbeddedPostgres, withDatabase } from "../server/db/embedded";
import { ensureDatabase, migrateDatabase } from "../server/db/migrate";
import { envInt } from "../server/lib/env";
import { supervise } from "./supervise";
import { loadKey } from "../server/lib/keys";

const ROOT = path.resolve(import.meta.dirname, "..");
const mode = process.argv[2] === "dev" ? "dev" : "start";
const DATA = path.resolve(process.env.TUNA_DATA_DIR ?? path.join(ROOT, ".tuna"));
const PORT = portFromEnv("PORT", 3000);
const ROUTER_PORT = portFromEnv("TUNA_ROUTER_PORT", 8080);
const PG_PORT = portFromEnv("TUNA_PG_PORT", 54329);
const log = (s: string) => console.log(`[tuna] ${s}`);

/** A port number from the environment; anything else stops the launcher with the variable's name. */
function portFromEnv(variable: string, fallback: number): number {
  try {
    return envInt(variable, fallback, 1, 65535);
  } catch (err) {
    console.error(`[tuna] failed to start: ${(err as Error).message}`);
    process.exit(1);
  }
}

function secretFile(name: string, make: () => string): string {
  const file = path.join(DATA, name);
  if (!existsSync(file)) writeFileSync(file, make() + "\n", { mode: 0o600, flag: "wx" });
  return readFileSync(file, "utf8").trim();
}

const children: ChildProcess[] = [];
let stopDb: (() => Promise<void>) | null = null;
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r)))));
  if (stopDb) await stopDb().catch(() => {});
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, name: string, opts: { restart?: boolean } = {}): void {
  supervise({ cmd, args, env, cwd: ROOT, name, restart: opts.restart }, { children, isStopping: () => stopping, log, stopAll: (code) => void shutdown(code) });
}

/** Whether `port` can be listened on at `host` right now. */
function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * Fails before anything starts when a port is taken (typically a second `npm start`), with the variable that
 * moves it, instead of a server's stack trace after the database has been started and migrated.
 */
async function checkPorts(): Promise<void> {
  const wanted: Array<{ port: number; host: string; variable: string; what: string }> = [
    { port: PORT, host: process.env.HOST ?? "127.0.0.1", variable: "PORT", what: "the dashboard" },
  ];
  if (process.env.TUNA_START_ROUTER !== "0")
    wanted.push({ port: ROUTER_PORT, host: process.env.HOST ?? "0.0.0.0", variable: "TUNA_ROUTER_PORT", what: "the router" });
  if (!process.env.DATABASE_URL)
    wanted.push({ port: PG_PORT, host: "127.0.0.1", variable: "TUNA_PG_PORT", what: "the embedded PostgreSQL" });
  for (const w of wanted) {
    if (await portFree(w.port, w.host)) continue;
    throw new Error(`port ${w.port} for ${w.what} is already in use (another \`npm start\`?): stop what uses it, or set ${w.variable} to a free port`);
  }
}

/** Runs a tool to completion; its output is shown only when it fails. */
function runQuiet(cmd: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, env: process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (c) => (out += c));
    p.stderr.on("data", (c) => (out += c));
    p.on("error", (err) => reject(new Error(`${what} could not run: ${err.message}`)));
    p.on("exit", (c) => (c === 0 ? resolve() : reject(new Error(`${what} failed (exit ${c}):\n${out.trim()}`))));
  });
}

/** The commit the checkout is at, so a build made from another one is redone; null outside git. */
function checkoutCommit(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim() || null;
  } catch {
    return null;
  }
}

async function main() {
  // Keys given in the environment are checked now, not at the first vault or audit write.
  for (const [variable, file] of [["TUNA_MASTER_KEY", "master.key"], ["TUNA_AUDIT_KEY", "audit.key"]] as const)
    if (process.env[variable]) loadKey(variable, file);
  await checkPorts();
  // The database client is generated from prisma/schema.prisma: npm does not do it on install, and a pull may
  // change the schema. About two seconds.
  await runQuiet(path.join(ROOT, "node_modules/.bin/prisma"), ["generate"], "prisma generate");
  mkdirSync(DATA, { recursive: true, mode: 0o755 });
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    log(`no DATABASE_URL: starting the embedded PostgreSQL (data in ${path.join(DATA, "pg")}, port ${PG_PORT})`);
    const pg = await startEmbeddedPostgres({ dataDir: path.join(DATA, "pg"), port: PG_PORT, log });
    stopDb = pg.stop;
    databaseUrl = withDatabase(pg.adminUrl, "tuna");
  }
  await ensureDatabase(databaseUrl);
  log("applying database migrations…");
  await migrateDatabase(databaseUrl);

  const firstRun = !existsSync(path.join(DATA, "nextauth.secret"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    TUNA_DATA_DIR: DATA,
    NEXTAUTH_URL: process.env.NEXTAUTH_URL ?? `http://localhost:${PORT}`,
    NEXTAUTH_SECRET: process.env.NEXTAUTH_SECRET ?? secretFile("nextauth.secret", () => randomBytes(32).toString("base64url")),
    TUNA_ROUTER_TOKEN: process.env.TUNA_ROUTER_TOKEN ?? secretFile("router.token", () => `rt_${randomBytes(24).toString("base64url")}`),
    TUNA_PUBLIC_ROUTER_URL: process.env.TUNA_PUBLIC_ROUTER_URL ?? `http://localhost:${ROUTER_PORT}`,
  };
  // No Inngest server configured: the app's local runner executes workflows (server/workflows/README.md), signing
  // its own calls; INNGEST_DEV is not set for it (the SDK's dev mode accepts unsigned calls from anyone).

  const nextBin = path.join(ROOT, "node_modules/.bin/next");
  if (mode === "start") {
    // Built once, and again when the checkout moved to another commit (a pull), so `npm start` never serves
    // an older version of the app than the code beside it.
    const commit = checkoutCommit();
    const stampFile = path.join(ROOT, ".next", "tuna-build-commit");
    const hasBuild = existsSync(path.join(ROOT, ".next/BUILD_ID"));
    const builtFrom = existsSync(stampFile) ? readFileSync(stampFile, "utf8").trim() : null;
    if (!hasBuild || (commit !== null && builtFrom !== commit)) {
      log(hasBuild ? "the checkout changed since the last build: running `next build` (about a minute)…" : "no production build yet: running `next build` (about a minute)…");
      await new Promise<void>((resolve, reject) => {
        const b = spawn(nextBin, ["build"], { cwd: ROOT, env, stdio: "inherit" });
        b.on("exit", (c) => (c === 0 ? resolve() : reject(new Error(`next build failed (${c})`))));
      });
      if (commit !== null) writeFileSync(stampFile, `${commit}\n`);
    }
  }
  const host = process.env.HOST ?? "127.0.0.1";
  run(nextBin, mode === "dev" ? ["dev", "-H", host, "-p", String(PORT)] : ["start", "-H", host, "-p", String(PORT)], env, "next");

  if (process.env.TUNA_START_ROUTER !== "0") {
    const controlPlane = `http://127.0.0.1:${PORT}`;
    run(process.execPath, ["--import", "tsx", "router-service/src/main.ts", "--port", String(ROUTER_PORT)], {
      ...env,
      TUNA_CONTROL_PLANE_URL: controlPlane,
      TUNA_ROUTER_STATE_DIR: path.join(DATA, "router"),
      // The router listens on all interfaces and its metrics name every team's deployments: closed by default.
      TUNA_METRICS_TOKEN: process.env.TUNA_METRICS_TOKEN ?? secretFile("metrics.token", () => `mt_${randomBytes(24).toString("base64url")}`),
    }, "router", { restart: true });
  }
  log(`dashboard: http://localhost:${PORT}${process.env.TUNA_START_ROUTER !== "0" ? `   router (OpenAI API): http://localhost:${ROUTER_PORT}/v1` : ""}`);
  if (firstRun) log(`first run: open http://localhost:${PORT}/signup to create your account (it gets a personal team).`);
}

main().catch(async (e) => {
  console.error(`[tuna] failed to start: ${e instanceof Error ? e.message : String(e)}`);
  await shutdown(1);
});
