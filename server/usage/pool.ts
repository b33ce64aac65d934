import pg from "pg";
import { envInt } from "../lib/env";

/**
 * A small node-postgres pool for the usage ingest hot path only. Measured on the embedded PostgreSQL
 * (bench/usage): the same INSERT through Prisma's query compiler and adapter ran at ~40% of the rate of
 * plain `pg`, and ingest is the one place where the control plane writes per router report. Everything
 * else in the domain goes through Prisma. Follows DATABASE_URL like the Prisma singleton does.
 */
const g = globalThis as unknown as { __tunaUsagePool?: pg.Pool; __tunaUsagePoolUrl?: string };

export function usagePool(): pg.Pool {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set");
  if (!g.__tunaUsagePool || g.__tunaUsagePoolUrl !== url) {
    const old = g.__tunaUsagePool;
    if (old) void old.end().catch(() => {});
    const pool = new pg.Pool({ connectionString: url, max: envInt("TUNA_USAGE_POOL", 3, 1) });
    // An idle connection dropped by the server (restart, test database dropped) must not crash the process.
    pool.on("error", () => {});
    g.__tunaUsagePool = pool;
    g.__tunaUsagePoolUrl = url;
  }
  return g.__tunaUsagePool;
}

export async function closeUsagePool(): Promise<void> {
  const p = g.__tunaUsagePool;
  g.__tunaUsagePool = undefined;
  g.__tunaUsagePoolUrl = undefined;
  if (p) await p.end();
}
