import { defineConfig } from "prisma/config";
import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";

// `prisma generate`/`validate` need no database, but the CLI falls back to downloading a native engine
// when the datasource URL is unset. Give it a harmless default; commands that connect use the real one
// set by scripts/launch.ts or the test setup.
process.env.DATABASE_URL ??= "postgresql://tuna@127.0.0.1:5432/tuna";
process.env.CHECKPOINT_DISABLE ??= "1";

// Workarounds for Prisma 6.19.3's JS (wasm) schema engine with @prisma/adapter-pg (see STACK.md):
// 1. introspection returns catalog types `name` (oid 19) and `"char"` (oid 18) that the adapter can't
//    map -> report them as text.
// 2. the adapter's own shadow DB connects to the main DB and can't drop it -> create/drop it here.
class CatalogSafePool extends pg.Pool {
  override query(...args: any[]): any {
    const res = (pg.Pool.prototype.query as any).apply(this, args);
    if (!res || typeof res.then !== "function") return res;
    return res.then((r: any) => {
      for (const f of r?.fields ?? []) if (f.dataTypeID === 18 || f.dataTypeID === 19) f.dataTypeID = 25;
      return r;
    });
  }
}
function pgConfig(url: string): pg.PoolConfig {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
  };
}
async function admin(cfg: pg.PoolConfig, sql: string) {
  const c = new pg.Client({ ...cfg, database: "postgres" });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  async adapter() {
    const cfg = pgConfig(process.env.DATABASE_URL!);
    const factory = new PrismaPg(new CatalogSafePool(cfg));
    factory.connectToShadowDb = async () => {
      const name = `prisma_shadow_${process.pid}_${Date.now()}`;
      await admin(cfg, `CREATE DATABASE "${name}"`);
      const pool = new CatalogSafePool({ ...cfg, database: name });
      pool.on("error", () => {});
      const shadow = await new PrismaPg(pool).connect();
      const dispose = shadow.dispose.bind(shadow);
      shadow.dispose = async () => {
        await dispose();
        await pool.end();
        await admin(cfg, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      };
      return shadow;
    };
    return factory;
  },
});
