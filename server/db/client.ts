import { PrismaClient } from "@prisma/client";
import { PrismaPg } from "@prisma/adapter-pg";
import { envInt } from "../lib/env";

/**
 * One PrismaClient per process, created on first use from DATABASE_URL (set by scripts/launch.ts on the
 * embedded default, or by the operator). Survives Next.js hot reload through globalThis.
 */
const g = globalThis as unknown as { __tunaPrisma?: PrismaClient; __tunaPrismaUrl?: string };

export function getPrisma(): PrismaClient {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: start the product with `npm start` or set DATABASE_URL");
  if (!g.__tunaPrisma || g.__tunaPrismaUrl !== url) {
    g.__tunaPrisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: envInt("TUNA_DB_POOL", 10, 1) }) });
    g.__tunaPrismaUrl = url;
  }
  return g.__tunaPrisma;
}

/** Lazy handle: `db.user.findMany()` resolves the client at call time, so tests can set DATABASE_URL first. */
export const db = new Proxy({} as PrismaClient, {
  get(_t, prop) {
    const client = getPrisma() as unknown as Record<string | symbol, unknown>;
    const v = client[prop];
    return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(client) : v;
  },
});

export type Db = PrismaClient;
export type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];
