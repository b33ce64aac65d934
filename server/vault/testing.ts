import type pg from "pg";

/**
 * Test helper: looks for each needle in every column of every table of the current database (text as-is,
 * bytea both as raw bytes and as hex, JSON as text). Returns "table.column" hits.
 */
export async function scanDatabaseFor(client: pg.Client, needles: string[]): Promise<string[]> {
  const cols = await client.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name NOT LIKE '\\_prisma%' ORDER BY table_name, column_name`,
  );
  const hits: string[] = [];
  for (const c of cols.rows) {
    const col = `"${c.column_name}"`;
    const table = `"${c.table_name}"`;
    for (const needle of needles) {
      const hex = Buffer.from(needle, "utf8").toString("hex");
      const b64 = Buffer.from(needle, "utf8").toString("base64");
      const sql =
        c.data_type === "bytea"
          ? `SELECT 1 FROM ${table} WHERE position($1::bytea in ${col}) > 0 OR encode(${col}, 'hex') LIKE '%' || $2 || '%' LIMIT 1`
          : `SELECT 1 FROM ${table} WHERE strpos(${col}::text, $1) > 0 OR strpos(${col}::text, $2) > 0 OR strpos(${col}::text, $3) > 0 LIMIT 1`;
      const params = c.data_type === "bytea" ? [Buffer.from(needle, "utf8"), hex] : [needle, hex, b64];
      const r = await client.query(sql, params);
      if (r.rowCount) hits.push(`${c.table_name}.${c.column_name}`);
    }
  }
  return hits;
}

/**
 * Captures everything written through console.* while `fn` runs (process.stdout is left alone: the test
 * runner reports through it).
 */
export async function captureLogs<T>(fn: () => Promise<T>): Promise<{ result: T; output: string }> {
  const chunks: string[] = [];
  const methods = ["log", "info", "warn", "error", "debug"] as const;
  const saved = methods.map((m) => console[m]);
  for (const m of methods) console[m] = (...args: unknown[]) => void chunks.push(args.map((a) => (typeof a === "string" ? a : safeString(a))).join(" "));
  try {
    const result = await fn();
    return { result, output: chunks.join("\n") };
  } finally {
    for (const [i, m] of methods.entries()) console[m] = saved[i];
  }
}

function safeString(v: unknown): string {
  if (v instanceof Error) return `${v.name}: ${v.message}\n${v.stack ?? ""}`;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}
