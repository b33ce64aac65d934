import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import { useTestDatabase } from "../test/db";
import { callerFor } from "../test/fixtures";
import { db } from "../db";
import { checkCredentials } from "./service";
import { THROTTLE } from "./throttle";
import { hashPassword, verifyPassword } from "./password";

await useTestDatabase();

describe("sign-up and sign-in", () => {
  test("sign-up creates the user, a personal team with them as admin, and audit rows", async () => {
    const r = await callerFor(null).auth.signUp({ name: "Ada Lovelace", email: "Ada@Example.test", password: "correct horse battery" });
    const user = await db.user.findUniqueOrThrow({ where: { email: "ada@example.test" } });
    assert.match(user.passwordHash ?? "", /^scrypt\$/);
    assert.ok(!(user.passwordHash ?? "").includes("correct horse"));
    const m = await db.membership.findFirstOrThrow({ where: { userId: user.id }, include: { team: true } });
    assert.deepEqual({ role: m.role, personal: m.team.personal, teamId: m.teamId }, { role: "admin", personal: true, teamId: r.teamId });
    const actions = (await db.auditLog.findMany({ where: { teamId: r.teamId }, orderBy: { seq: "asc" } })).map((a) => a.action);
    assert.deepEqual(actions, ["user.signup", "team.create"]);
  });

  test("short passwords and bad emails are refused with field errors", async () => {
    try {
      await callerFor(null).auth.signUp({ name: "B", email: "not-an-email", password: "short" });
      assert.fail("should have thrown");
    } catch (e) {
      assert.ok(e instanceof TRPCError);
      assert.equal(e.code, "BAD_REQUEST");
    }
  });

  test("a password of only whitespace is refused; spaces inside a password are kept", async () => {
    for (const password of [" ".repeat(10), " \t ".repeat(5), "\u00a0".repeat(12)]) {
      await assert.rejects(
        callerFor(null).auth.signUp({ name: "W", email: "w@example.test", password }),
        (e: unknown) =>
          e instanceof TRPCError && e.code === "BAD_REQUEST" && e.cause instanceof ZodError && e.cause.issues.every((i) => i.path[0] === "password"),
        JSON.stringify(password),
      );
    }
    assert.equal(await db.user.count({ where: { email: "w@example.test" } }), 0);
    // Not trimmed either: the spaces around this one are part of it.
    await callerFor(null).auth.signUp({ name: "W", email: "w@example.test", password: "  spaced out words  " });
    assert.equal((await checkCredentials("w@example.test", "  spaced out words  ", "1.1.1.2")).ok, true);
    assert.equal((await checkCredentials("w@example.test", "spaced out words", "1.1.1.2")).ok, false);
  });

  test("duplicate email on sign-up is a conflict", async () => {
    await callerFor(null).auth.signUp({ name: "C", email: "c@example.test", password: "0123456789abc" });
    await assert.rejects(callerFor(null).auth.signUp({ name: "C2", email: "c@example.test", password: "0123456789abc" }), (e: unknown) => e instanceof TRPCError && e.code === "CONFLICT");
  });

  test("concurrent sign-ups with one email: one account, the others get the same conflict, not a 500", async () => {
    for (const email of ["race1@example.test", "race2@example.test", "race3@example.test"]) {
      const attempt = (i: number) => callerFor(null).auth.signUp({ name: `Racer ${i}`, email, password: "0123456789abc" });
      const results = await Promise.allSettled([1, 2, 3, 4].map(attempt));
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        const e = r.reason;
        assert.ok(e instanceof TRPCError, String(e));
        assert.deepEqual({ code: e.code, message: e.message }, { code: "CONFLICT", message: "An account with this email already exists. Sign in instead." });
      }
      assert.equal(await db.user.count({ where: { email } }), 1);
    }
  });

  test("credentials: right password passes; wrong password and unknown email look the same", async () => {
    await callerFor(null).auth.signUp({ name: "D", email: "d@example.test", password: "a-long-password" });
    assert.equal((await checkCredentials("D@example.test", "a-long-password", "1.1.1.1")).ok, true);
    assert.deepEqual(await checkCredentials("d@example.test", "wrong-password", "1.1.1.1"), { ok: false, reason: "invalid" });
    assert.deepEqual(await checkCredentials("nobody@example.test", "wrong-password", "1.1.1.1"), { ok: false, reason: "invalid" });
  });

  test("per-account lockout after repeated failures, even with the right password", async () => {
    await callerFor(null).auth.signUp({ name: "E", email: "e@example.test", password: "the-right-password" });
    for (let i = 0; i < THROTTLE.account.maxFailures; i++) {
      await checkCredentials("e@example.test", `wrong-${i}`, `10.0.0.${i}`);
    }
    assert.deepEqual(await checkCredentials("e@example.test", "the-right-password", "10.0.1.1"), { ok: false, reason: "locked" });
    // Other accounts are unaffected.
    await callerFor(null).auth.signUp({ name: "F", email: "f@example.test", password: "the-right-password" });
    assert.equal((await checkCredentials("f@example.test", "the-right-password", "10.0.1.1")).ok, true);
  });

  test("per-IP lockout across many accounts", async () => {
    await callerFor(null).auth.signUp({ name: "G", email: "g@example.test", password: "the-right-password" });
    for (let i = 0; i < THROTTLE.ip.maxFailures; i++) {
      await checkCredentials(`spray${i}@example.test`, "guess", "203.0.113.9");
    }
    assert.deepEqual(await checkCredentials("g@example.test", "the-right-password", "203.0.113.9"), { ok: false, reason: "locked" });
    assert.equal((await checkCredentials("g@example.test", "the-right-password", "203.0.113.10")).ok, true);
  });

  test("password hashes verify only the right password", async () => {
    const h = await hashPassword("pässwörd-ünïcode");
    assert.equal(await verifyPassword("pässwörd-ünïcode", h), true);
    assert.equal(await verifyPassword("passwörd-ünïcode", h), false);
    assert.equal(await verifyPassword("x", "garbage"), false);
  });
});
