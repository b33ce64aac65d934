import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "@/server/test/db";
import { callerFor, makeRoleFixture } from "@/server/test/fixtures";
import { contextFor } from "@/server/trpc/context";
import type { SessionUser } from "@/server/trpc";
import { TEAM_HEADER } from "@/server/teams/cookie";
import { handleAuditExport } from "./handler";
import { EXPORT_MAX_ROWS_HEADER, EXPORT_ROWS_HEADER, EXPORT_TRUNCATED_HEADER } from "./headers";

await useTestDatabase();

const APP = "http://tuna.test:3000";

/** GET /api/audit/export as `user` (null: signed out), naming `teamId` as the audit page does. */
function get(user: SessionUser | null, teamId: string, query = "") {
  const req = new Request(`${APP}/api/audit/export${query}`, { headers: { [TEAM_HEADER]: teamId } });
  return handleAuditExport(req, (r) => contextFor(r, user));
}

async function errorOf(res: Response) {
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

describe("GET /api/audit/export", () => {
  test("an admin downloads the team's filtered log as CSV, with the row count", async () => {
    const f = await makeRoleFixture("Download");
    const admin = callerFor(f.admin, f.team.id);
    await admin.apiKeys.create({ label: "first" });
    await admin.apiKeys.create({ label: "second" });
    await admin.team.rename({ name: "Download Co" });
    const res = await get(f.admin, f.team.id, "?action=APIKEY.");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/csv; charset=utf-8");
    assert.match(res.headers.get("content-disposition") ?? "", /^attachment; filename="tuna-audit-download-[0-9a-f]{8}-\d{4}-\d{2}-\d{2}\.csv"$/);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual([res.headers.get(EXPORT_ROWS_HEADER), res.headers.get(EXPORT_TRUNCATED_HEADER), res.headers.get(EXPORT_MAX_ROWS_HEADER)], ["2", "0", "50000"]);
    const lines = (await res.text()).split("\r\n");
    assert.equal(lines[0], "seq,time,actor,actor_id,action,target_type,target_id,target_name,ip,user_agent,details,prev_hash,hash");
    assert.deepEqual(lines.slice(1, -1).map((l) => l.split(",")[4]), ["apikey.create", "apikey.create"]);
    assert.equal(lines.at(-1), "");
    // Dates are instants (the page sends its local days as ISO times).
    const future = await get(f.admin, f.team.id, `?from=${encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString())}`);
    assert.equal(future.headers.get(EXPORT_ROWS_HEADER), "0");
  });

  test("the same permission as the audit page: 403 naming it, 404 for strangers, 401 signed out", async () => {
    const f = await makeRoleFixture("Denied");
    for (const role of ["developer", "viewer"] as const) {
      const e = await errorOf(await get(f[role], f.team.id));
      assert.deepEqual([e.status, e.code], [403, "FORBIDDEN"], role);
      assert.match(e.message, /does not have the permission "audit\.read"/);
    }
    const stranger = await errorOf(await get(f.outsider, f.team.id));
    assert.deepEqual([stranger.status, stranger.code, stranger.message], [404, "NOT_FOUND", "Team not found."]);
    const out = await errorOf(await get(null, f.team.id));
    assert.deepEqual([out.status, out.code], [401, "UNAUTHORIZED"]);
  });

  test("bad filters are a plain 400, not a stack trace", async () => {
    const f = await makeRoleFixture("Filters");
    const e = await errorOf(await get(f.admin, f.team.id, "?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z"));
    assert.deepEqual([e.status, e.message], [400, "These filters cannot be exported (to: Must be on or after the From date.)."]);
    const bad = await errorOf(await get(f.admin, f.team.id, "?from=yesterday"));
    assert.equal(bad.status, 400);
    assert.match(bad.message, /^These filters cannot be exported \(from: /);
  });
});
