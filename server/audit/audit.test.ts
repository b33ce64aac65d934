import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase, rawClient } from "../test/db";
import { TRPCError } from "@trpc/server";
import { z, ZodError } from "zod";
import { callerFor, makeTeam, makeUser } from "../test/fixtures";
import { db } from "../db";
import { appendAudit, listAudit, verifyAuditChain } from "./index";

await useTestDatabase();

async function teamWithLog(n: number) {
  const u = await makeUser("auditor");
  const team = await makeTeam([{ user: u, role: "admin" }]);
  for (let i = 0; i < n; i++) {
    await db.$transaction((tx) => appendAudit(tx, team.id, { userId: u.id, label: u.email, ip: "10.0.0.1" }, { action: `thing.${i}`, metadata: { i, nested: { b: 2, a: 1 } } }));
  }
  return team;
}

/** Tampering the way an attacker with SQL access would: bypass the append-only trigger first. */
async function tamper(sql: string, params: unknown[] = []) {
  const c = await rawClient();
  await c.query("BEGIN");
  await c.query(`ALTER TABLE "AuditLog" DISABLE TRIGGER USER`);
  await c.query(sql, params);
  await c.query(`ALTER TABLE "AuditLog" ENABLE TRIGGER USER`);
  await c.query("COMMIT");
}

describe("audit chain", () => {
  test("an untouched chain verifies", async () => {
    const team = await teamWithLog(5);
    const r = await verifyAuditChain(team.id);
    assert.deepEqual(r, { ok: true, checked: 5, problems: [] });
  });

  test("the database refuses UPDATE and DELETE", async () => {
    const team = await teamWithLog(2);
    const c = await rawClient();
    await assert.rejects(c.query(`UPDATE "AuditLog" SET action = 'x' WHERE "teamId" = $1`, [team.id]), /append-only/);
    await assert.rejects(c.query(`DELETE FROM "AuditLog" WHERE "teamId" = $1`, [team.id]), /append-only/);
  });

  test("an edited row is detected", async () => {
    const team = await teamWithLog(5);
    await tamper(`UPDATE "AuditLog" SET metadata = '{"i": 99}' WHERE "teamId" = $1 AND seq = 3`, [team.id]);
    const r = await verifyAuditChain(team.id);
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.seq]), [["edited", 3]]);
  });

  test("an edited actor or IP is detected", async () => {
    const team = await teamWithLog(3);
    await tamper(`UPDATE "AuditLog" SET ip = '1.2.3.4' WHERE "teamId" = $1 AND seq = 1`, [team.id]);
    assert.deepEqual((await verifyAuditChain(team.id)).problems.map((p) => p.kind), ["edited"]);
  });

  test("a deleted row in the middle is detected", async () => {
    const team = await teamWithLog(5);
    await tamper(`DELETE FROM "AuditLog" WHERE "teamId" = $1 AND seq = 2`, [team.id]);
    const r = await verifyAuditChain(team.id);
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.kind === "deleted" && p.seq === 2), JSON.stringify(r.problems));
  });

  test("deleting the newest rows is detected through the chain head", async () => {
    const team = await teamWithLog(5);
    await tamper(`DELETE FROM "AuditLog" WHERE "teamId" = $1 AND seq >= 4`, [team.id]);
    const r = await verifyAuditChain(team.id);
    assert.ok(r.problems.some((p) => p.kind === "deleted" && p.seq === 4), JSON.stringify(r.problems));
  });

  test("an inserted row is detected, even with a well-formed sha256", async () => {
    const team = await teamWithLog(3);
    const c = await rawClient();
    const last = await c.query(`SELECT hash FROM "AuditLog" WHERE "teamId" = $1 AND seq = 3`, [team.id]);
    await tamper(
      `INSERT INTO "AuditLog" (id, "teamId", seq, "actorLabel", action, metadata, "createdAt", "prevHash", hash)
       VALUES ('forged', $1, 4, 'mallory', 'deployment.approve', '{}', now(), $2, encode(sha256('x'), 'hex'))`,
      [team.id, last.rows[0].hash],
    );
    const r = await verifyAuditChain(team.id);
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.kind === "edited" && p.seq === 4), JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.kind === "inserted"), JSON.stringify(r.problems));
  });

  test("a row inserted with a duplicate sequence number is detected", async () => {
    const team = await teamWithLog(3);
    const c = await rawClient();
    await c.query(`ALTER TABLE "AuditLog" DROP CONSTRAINT IF EXISTS "AuditLog_teamId_seq_key"`).catch(() => {});
    await c.query(`DROP INDEX IF EXISTS "AuditLog_teamId_seq_key"`);
    await tamper(
      `INSERT INTO "AuditLog" (id, "teamId", seq, "actorLabel", action, metadata, "createdAt", "prevHash", hash)
       SELECT 'dup', "teamId", seq, 'mallory', 'x', '{}', now(), "prevHash", hash FROM "AuditLog" WHERE "teamId" = $1 AND seq = 2`,
      [team.id],
    );
    const r = await verifyAuditChain(team.id);
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.kind === "inserted" || p.kind === "edited"), JSON.stringify(r.problems));
  });

  test("chains are per team: another team's rows do not interfere", async () => {
    const a = await teamWithLog(2);
    const b = await teamWithLog(2);
    await tamper(`UPDATE "AuditLog" SET action = 'evil' WHERE "teamId" = $1 AND seq = 1`, [a.id]);
    assert.equal((await verifyAuditChain(a.id)).ok, false);
    assert.equal((await verifyAuditChain(b.id)).ok, true);
  });

  test("concurrent appends keep one gap-free chain", async () => {
    const u = await makeUser("c");
    const team = await makeTeam([{ user: u, role: "admin" }]);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => db.$transaction((tx) => appendAudit(tx, team.id, { userId: u.id, label: u.email }, { action: `c.${i}` }))),
    );
    const r = await verifyAuditChain(team.id);
    assert.deepEqual({ ok: r.ok, checked: r.checked }, { ok: true, checked: 20 });
  });

  test("listing: newest first, cursor pages, actor/action/date filters", async () => {
    const team = await teamWithLog(7);
    // Back-date rows 1..3 by a year (bypassing the trigger, as only this test may).
    await tamper(`UPDATE "AuditLog" SET "createdAt" = "createdAt" - interval '365 days' WHERE "teamId" = $1 AND seq <= 3`, [team.id]);
    const p1 = await listAudit({ teamId: team.id, limit: 3 });
    assert.deepEqual(p1.items.map((i) => i.seq), [7, 6, 5]);
    const p2 = await listAudit({ teamId: team.id, limit: 3, cursor: p1.nextCursor! });
    assert.deepEqual(p2.items.map((i) => i.seq), [4, 3, 2]);
    const p3 = await listAudit({ teamId: team.id, limit: 3, cursor: p2.nextCursor! });
    assert.deepEqual({ seqs: p3.items.map((i) => i.seq), next: p3.nextCursor }, { seqs: [1], next: null });
    const monthAgo = new Date(Date.now() - 30 * 86400_000);
    const old = await listAudit({ teamId: team.id, limit: 10, to: monthAgo });
    assert.deepEqual(old.items.map((i) => i.seq), [3, 2, 1]);
    const oldPage = await listAudit({ teamId: team.id, limit: 2, to: monthAgo });
    assert.deepEqual(oldPage.items.map((i) => i.seq), [3, 2]);
    const oldPage2 = await listAudit({ teamId: team.id, limit: 2, to: monthAgo, cursor: oldPage.nextCursor! });
    assert.deepEqual(oldPage2.items.map((i) => i.seq), [1]);
    const recent = await listAudit({ teamId: team.id, limit: 10, from: monthAgo });
    assert.deepEqual(recent.items.map((i) => i.seq), [7, 6, 5, 4]);
    assert.deepEqual((await listAudit({ teamId: team.id, limit: 10, to: new Date(Date.now() - 400 * 86400_000) })).items, []);
    assert.deepEqual((await listAudit({ teamId: team.id, limit: 10, action: "thing.4" })).items.map((i) => i.seq), [5]);
    const other = await makeUser("other");
    assert.deepEqual((await listAudit({ teamId: team.id, limit: 10, actorId: other.id })).items, []);
  });

  test("listing over tRPC: a From date after the To date is a field error on To, not an empty page", async () => {
    const team = await teamWithLog(2);
    const admin = (await db.membership.findFirstOrThrow({ where: { teamId: team.id }, include: { user: true } })).user;
    const caller = callerFor({ id: admin.id, email: admin.email ?? "", name: admin.name }, team.id);
    const day = (d: string) => new Date(`${d}T00:00:00Z`);
    await assert.rejects(caller.audit.list({ from: day("2026-03-02"), to: day("2026-03-01") }), (e: unknown) => {
      assert.ok(e instanceof TRPCError && e.code === "BAD_REQUEST", String(e));
      assert.ok(e.cause instanceof ZodError);
      assert.deepEqual(z.flattenError(e.cause).fieldErrors, { to: ["Must be on or after the From date."] });
      return true;
    });
    // One day (from its start to its end) and open ranges still list.
    assert.equal((await caller.audit.list({ from: day("2020-01-01"), to: new Date(Date.now() + 86_400_000) })).items.length, 2);
    assert.equal((await caller.audit.list({ from: day("2026-03-02"), to: day("2026-03-02") })).items.length, 0);
    assert.equal((await caller.audit.list({ to: day("2020-01-01") })).items.length, 0);
  });
});
