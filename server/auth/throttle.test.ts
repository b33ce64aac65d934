import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor } from "../test/fixtures";
import { db } from "../db";
import { type CredentialCheck, checkCredentials } from "./service";
import { THROTTLE } from "./throttle";

await useTestDatabase();

const PASSWORD = "the-right-password";
const MAX = THROTTLE.account.maxFailures;

async function signUp(email: string) {
  await callerFor(null).auth.signUp({ name: "Racer", email, password: PASSWORD });
}

function tally(results: CredentialCheck[]) {
  return {
    ok: results.filter((r) => r.ok).length,
    invalid: results.filter((r) => !r.ok && r.reason === "invalid").length,
    locked: results.filter((r) => !r.ok && r.reason === "locked").length,
  };
}

async function lockRow(key: string) {
  return db.authThrottle.findUnique({ where: { key } });
}

describe("sign-in limits under concurrency", () => {
  test("a burst of parallel wrong guesses gets maxFailures evaluations, then the account is locked", async () => {
    await signUp("burst@example.test");
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => checkCredentials("burst@example.test", `wrong-${i}`, `10.1.0.${i}`)));
    assert.deepEqual(tally(burst), { ok: 0, invalid: MAX, locked: 40 - MAX });
    assert.deepEqual(await checkCredentials("burst@example.test", PASSWORD, "10.1.1.1"), { ok: false, reason: "locked" });
  });

  test("the right password sent at the end of a burst is refused, and the account stays locked", async () => {
    await signUp("late@example.test");
    const guesses = Array.from({ length: 40 }, (_, i) => checkCredentials("late@example.test", `wrong-${i}`, `10.2.0.${i}`));
    const right = checkCredentials("late@example.test", PASSWORD, "10.2.1.1");
    const results = await Promise.all([...guesses, right]);
    assert.deepEqual(results.at(-1), { ok: false, reason: "locked" });
    assert.deepEqual(tally(results), { ok: 0, invalid: MAX, locked: 41 - MAX });
    const row = await lockRow("acct:late@example.test");
    assert.ok(row?.lockedUntil && row.lockedUntil > new Date(), "locked");
    assert.deepEqual(await checkCredentials("late@example.test", PASSWORD, "10.2.1.2"), { ok: false, reason: "locked" });
  });

  test("a right password that raced in does not unlock the account or wipe the other attempts", async () => {
    await signUp("first@example.test");
    // The right password first: it may get one of the evaluations, but never more than maxFailures run.
    const results = await Promise.all([
      checkCredentials("first@example.test", PASSWORD, "10.3.1.1"),
      ...Array.from({ length: 40 }, (_, i) => checkCredentials("first@example.test", `wrong-${i}`, `10.3.0.${i}`)),
    ]);
    const t = tally(results);
    assert.ok(t.ok + t.invalid <= MAX, JSON.stringify(t));
    assert.equal(t.ok + t.invalid + t.locked, 41);
    const row = await lockRow("acct:first@example.test");
    assert.ok(row?.lockedUntil && row.lockedUntil > new Date(), "still locked after the success");
    assert.ok(row.failures >= MAX - 1, `the failed attempts stay counted (${row.failures})`);
    assert.deepEqual(await checkCredentials("first@example.test", PASSWORD, "10.3.1.2"), { ok: false, reason: "locked" });
  });

  test("the right password on a locked account neither signs in nor lifts the lock", async () => {
    await signUp("locked@example.test");
    for (let i = 0; i < MAX; i++) await checkCredentials("locked@example.test", `wrong-${i}`, "10.4.0.1");
    const before = await lockRow("acct:locked@example.test");
    assert.ok(before?.lockedUntil);
    assert.deepEqual(await checkCredentials("locked@example.test", PASSWORD, "10.4.0.2"), { ok: false, reason: "locked" });
    assert.deepEqual(await lockRow("acct:locked@example.test"), before);
  });

  test("a burst from one IP across many accounts gets the per-IP number of evaluations and no more", async () => {
    await signUp("ipvictim@example.test");
    const n = THROTTLE.ip.maxFailures + 20;
    const burst = await Promise.all(Array.from({ length: n }, (_, i) => checkCredentials(`spray${i}@example.test`, "guess-guess", "203.0.113.77")));
    assert.deepEqual(tally(burst), { ok: 0, invalid: THROTTLE.ip.maxFailures, locked: 20 });
    assert.deepEqual(await checkCredentials("ipvictim@example.test", PASSWORD, "203.0.113.77"), { ok: false, reason: "locked" });
    // The attempts the IP limit refused did not count against the accounts they named.
    const sprayed = await db.authThrottle.findMany({ where: { key: { startsWith: "acct:spray" } } });
    assert.deepEqual([sprayed.filter((r) => r.failures === 1).length, sprayed.filter((r) => r.failures === 0).length], [THROTTLE.ip.maxFailures, 20]);
    assert.equal((await checkCredentials("ipvictim@example.test", PASSWORD, "203.0.113.78")).ok, true);
  });

  test("successful sign-ins do not use up the limits (each takes back its own attempt)", async () => {
    await signUp("often@example.test");
    for (let i = 0; i < THROTTLE.ip.maxFailures + 2; i++) {
      assert.equal((await checkCredentials("often@example.test", PASSWORD, "198.51.100.20")).ok, true, `sign-in ${i}`);
    }
    assert.equal((await lockRow("acct:often@example.test"))?.failures, 0);
    assert.equal((await lockRow("ip:198.51.100.20"))?.failures, 0);
  });
});

describe("a locked account is in its teams' audit log", () => {
  async function lockAudits(email: string) {
    const user = await db.user.findUniqueOrThrow({ where: { email }, select: { id: true, memberships: { select: { teamId: true } } } });
    const rows = await db.auditLog.findMany({ where: { action: "auth.sign_in_locked", targetId: user.id }, orderBy: { seq: "asc" } });
    return { rows, teams: user.memberships.map((m) => m.teamId) };
  }

  test("one entry per lock, in each of the user's teams, with the guessing IP; not one per refused guess", async () => {
    await signUp("locked-audit@example.test");
    for (let i = 0; i < MAX - 1; i++) assert.equal((await checkCredentials("locked-audit@example.test", `wrong-${i}`, "10.9.0.1")).ok, false);
    assert.equal((await lockAudits("locked-audit@example.test")).rows.length, 0, "not locked yet");
    await checkCredentials("locked-audit@example.test", "wrong-last", "10.9.0.2");
    for (let i = 0; i < 5; i++) assert.deepEqual(await checkCredentials("locked-audit@example.test", `more-${i}`, "10.9.0.3"), { ok: false, reason: "locked" });
    const { rows, teams } = await lockAudits("locked-audit@example.test");
    assert.deepEqual(rows.map((r) => r.teamId), teams);
    assert.equal(rows[0].actorId, null);
    assert.equal(rows[0].ip, "10.9.0.2");
    assert.deepEqual(rows[0].metadata, { failedAttempts: MAX, lockedMinutes: THROTTLE.account.lockMs / 60_000 });
    const text = JSON.stringify(rows);
    for (const guess of ["wrong-last", "wrong-0", PASSWORD]) assert.ok(!text.includes(guess), "no password in the log");
  });

  test("a parallel burst that locks the account writes one entry", async () => {
    await signUp("burst-audit@example.test");
    await Promise.all(Array.from({ length: 30 }, (_, i) => checkCredentials("burst-audit@example.test", `wrong-${i}`, `10.8.0.${i}`)));
    assert.equal((await lockAudits("burst-audit@example.test")).rows.length, 1);
  });

  test("guessing an email that has no account writes nothing", async () => {
    const before = await db.auditLog.count({ where: { action: "auth.sign_in_locked" } });
    for (let i = 0; i <= MAX + 1; i++) await checkCredentials("nobody-here@example.test", `wrong-${i}`, "10.7.0.1");
    assert.equal(await db.auditLog.count({ where: { action: "auth.sign_in_locked" } }), before);
  });
});
