import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Creates the database named in `url` if it does not exist (connects to `postgres` to do so). */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  u.pathname = "/postgres";
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    const r = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (r.rowCount === 0) await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } finally {
    await c.end();
  }
}

/** `prisma migrate deploy`, then the idempotent SQL in prisma/sql (triggers Prisma cannot express). */
export async function migrateDatabase(url: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(ROOT, "node_modules/.bin/prisma"), ["migrate", "deploy"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url, CHECKPOINT_DISABLE: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`prisma migrate deploy failed (exit ${code}):\n${out.slice(-2000)}`)),
    );
  });
  const dir = path.join(ROOT, "prisma/sql");
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
      await c.query(readFileSync(path.join(dir, f), "utf8"));
    }
  } finally {
    await c.end();
  }
}
