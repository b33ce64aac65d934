import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, withDatabase } from "../server/db/embedded";
import { migrateDatabase } from "../server/db/migrate";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The test database server: TUNA_TEST_PG_URL (an admin URL of any PostgreSQL with CREATEDB) or an
 * embedded PostgreSQL in a temporary folder. A migrated template database is made once; each test file
 * clones it (server/test/db.ts).
 */
export async function startTestDatabase(log: (s: string) => void): Promise<{ adminUrl: string; templateDb: string; stop(): Promise<void> }> {
  let adminUrl = process.env.TUNA_TEST_PG_URL;
  let stop = async () => {};
  if (!adminUrl) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-test-pg-"));
    chmodSync(dir, 0o755); // PostgreSQL runs as the `postgres` user when we are root: it must reach the data dir
    const t0 = Date.now();
    const pgServer = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port: await freePort(), log });
    log(`embedded PostgreSQL on port ${pgServer.port} (${Date.now() - t0} ms)`);
    adminUrl = pgServer.adminUrl;
    stop = async () => {
      await pgServer.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const templateDb = `tuna_template_${process.pid}`;
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS "${templateDb}" WITH (FORCE)`);
  await c.query(`CREATE DATABASE "${templateDb}"`);
  await c.end();
  const t1 = Date.now();
  await migrateDatabase(withDatabase(adminUrl, templateDb));
  log(`template database ${templateDb} migrated (${Date.now() - t1} ms)`);
  const prevStop = stop;
  stop = async () => {
    const d = new pg.Client({ connectionString: adminUrl });
    await d.connect().catch(() => {});
    await d.query(`DROP DATABASE IF EXISTS "${templateDb}" WITH (FORCE)`).catch(() => {});
    await d.end().catch(() => {});
    await prevStop();
  };
  return { adminUrl, templateDb, stop };
}
