import { randomBytes } from "node:crypto";
import { after } from "node:test";
import pg from "pg";
import { getPrisma } from "../db/client";

/**
 * Gives the calling test file its own database, cloned from the migrated template that
 * scripts/run-tests.ts prepared (CREATE DATABASE … TEMPLATE: milliseconds, fully isolated).
 * Sets DATABASE_URL so services' `db` handle points at it. Dropped when the file's tests end.
 */
export async function useTestDatabase(): Promise<string> {
  const admin = process.env.TUNA_TEST_PG_URL;
  const template = process.env.TUNA_TEST_TEMPLATE_DB ?? "tuna_template";
  if (!admin) throw new Error("TUNA_TEST_PG_URL is not set: run tests with `npm test` or `npm run test:unit`");
  const name = `t_${randomBytes(6).toString("hex")}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  } finally {
    await c.end();
  }
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const url = u.toString();
  process.env.DATABASE_URL = url;
  after(async () => {
    await getPrisma().$disconnect().catch(() => {});
    const d = new pg.Client({ connectionString: admin });
    await d.connect();
    await d.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    await d.end();
  });
  return url;
}

/** A raw pg client on the test database (for tampering tests and column scans). */
export async function rawClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  after(() => c.end().catch(() => {}));
  return c;
}
