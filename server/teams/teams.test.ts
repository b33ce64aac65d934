import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TRPCError } from "@trpc/server";
import { z, ZodError } from "zod";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, makeUser, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { verifyAuditChain } from "../audit";

await useTestDatabase();

const code = outcomeCode;

describe("teams", () => {
  test("create team makes the creator admin and audits it", async () => {
    const u = await makeUser("founder");
    const team = await callerFor(u).me.createTeam({ name: "Platform" });
    const teams = await callerFor(u).me.teams();
    assert.deepEqual(teams.map((t) => [t.name, t.role]), [["Platform", "admin"]]);
    const log = await callerFor(u, team.id).audit.list({});
    assert.deepEqual(log.items.map((i) => i.action), ["team.create"]);
  });

  test("rename: admins only, trimmed, audited from → to; a short name is a field error in the create-team words", async () => {
    const f = await makeRoleFixture("Before");
    const admin = callerFor(f.admin, f.team.id);
    assert.deepEqual(await admin.team.rename({ name: "  After  " }), { id: f.team.id, name: "After" });
    assert.equal((await callerFor(f.viewer, f.team.id).team.get()).name, "After");
    assert.deepEqual((await callerFor(f.viewer).me.teams()).map((t) => t.name), ["After"]);
    const entry = (await admin.audit.list({ action: "team.rename" })).items[0];
    assert.deepEqual(entry?.metadata, { from: "Before", to: "After" });

    for (const who of [f.developer, f.viewer]) {
      assert.equal(await code(callerFor(who, f.team.id).team.rename({ name: "Mine now" })), "FORBIDDEN");
    }
    for (const name of ["", " x "]) {
      await assert.rejects(admin.team.rename({ name }), (e: unknown) => {
        assert.ok(e instanceof TRPCError && e.code === "BAD_REQUEST", String(e));
        assert.ok(e.cause instanceof ZodError);
        assert.deepEqual(z.flattenError(e.cause).fieldErrors, { name: ["Use at least 2 characters"] });
        return true;
      });
    }
    assert.equal((await db.team.findUniqueOrThrow({ where: { id: f.team.id } })).name, "After");
  });

  test("invite by link: single use, role applied, both actions audited", async () => {
    const f = await makeRoleFixture();
    const inv = await callerFor(f.admin, f.team.id).team.invite({ role: "developer" });
    assert.match(inv.token, /^inv_/);
    const stored = await db.invitation.findUniqueOrThrow({ where: { id: inv.id } });
    assert.notEqual(stored.tokenHash, inv.token, "only the hash is stored");
    const newbie = await makeUser("newbie");
    const preview = await callerFor(newbie).invite.preview({ token: inv.token });
    assert.deepEqual({ valid: preview.valid, role: preview.valid ? preview.role : null }, { valid: true, role: "developer" });
    await callerFor(newbie).invite.accept({ token: inv.token });
    const members = await callerFor(f.admin, f.team.id).team.members();
    assert.equal(members.find((m) => m.userId === newbie.id)?.role, "developer");
    const second = await makeUser("second");
    assert.equal(await code(callerFor(second).invite.accept({ token: inv.token })), "PRECONDITION_FAILED");
    const actions = (await callerFor(f.admin, f.team.id).audit.list({})).items.map((i) => i.action);
    assert.deepEqual(actions, ["member.join", "member.invite"]);
    assert.equal((await verifyAuditChain(f.team.id)).ok, true);
  });

  test("expired and revoked invitations are refused", async () => {
    const f = await makeRoleFixture();
    const inv = await callerFor(f.admin, f.team.id).team.invite({ role: "viewer", ttlHours: 1 });
    await db.invitation.update({ where: { id: inv.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const u = await makeUser("late");
    assert.equal(await code(callerFor(u).invite.accept({ token: inv.token })), "PRECONDITION_FAILED");
    const inv2 = await callerFor(f.admin, f.team.id).team.invite({ role: "viewer" });
    await callerFor(f.admin, f.team.id).team.revokeInvite({ inviteId: inv2.id });
    assert.equal(await code(callerFor(u).invite.accept({ token: inv2.token })), "PRECONDITION_FAILED");
    assert.equal(await code(callerFor(u).invite.accept({ token: "inv_doesnotexist" })), "PRECONDITION_FAILED");
  });

  test("concurrent accepts of one invitation: exactly one wins", async () => {
    const f = await makeRoleFixture();
    const inv = await callerFor(f.admin, f.team.id).team.invite({ role: "viewer" });
    const users = await Promise.all([1, 2, 3, 4].map((i) => makeUser(`racer${i}`)));
    const results = await Promise.all(users.map((u) => code(callerFor(u).invite.accept({ token: inv.token }))));
    assert.equal(results.filter((r) => r === "OK").length, 1, results.join(","));
  });

  test("the last admin cannot be demoted, removed or leave", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    assert.equal(await code(admin.team.changeRole({ userId: f.admin.id, role: "developer" })), "PRECONDITION_FAILED");
    assert.equal(await code(admin.team.removeMember({ userId: f.admin.id })), "PRECONDITION_FAILED");
    assert.equal(await code(admin.team.leave()), "PRECONDITION_FAILED");
    // With a second admin, the first may step down.
    await admin.team.changeRole({ userId: f.developer.id, role: "admin" });
    await admin.team.changeRole({ userId: f.admin.id, role: "viewer" });
    const members = await callerFor(f.developer, f.team.id).team.members();
    assert.equal(members.find((m) => m.userId === f.admin.id)?.role, "viewer");
  });

  test("concurrent demotions cannot leave a team without an admin", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    await admin.team.changeRole({ userId: f.developer.id, role: "admin" });
    const [a, b] = await Promise.all([
      code(callerFor(f.admin, f.team.id).team.changeRole({ userId: f.developer.id, role: "viewer" })),
      code(callerFor(f.developer, f.team.id).team.changeRole({ userId: f.admin.id, role: "viewer" })),
    ]);
    assert.deepEqual([a, b].sort(), ["OK", "PRECONDITION_FAILED"]);
    assert.equal(await db.membership.count({ where: { teamId: f.team.id, role: "admin" } }), 1);
  });

  test("remove member and leave", async () => {
    const f = await makeRoleFixture();
    await callerFor(f.admin, f.team.id).team.removeMember({ userId: f.viewer.id });
    await callerFor(f.developer, f.team.id).team.leave();
    const members = await callerFor(f.admin, f.team.id).team.members();
    assert.deepEqual(members.map((m) => m.userId), [f.admin.id]);
    // Once removed, the team is gone for them (NOT_FOUND, not FORBIDDEN).
    assert.equal(await code(callerFor(f.viewer, f.team.id).team.get()), "NOT_FOUND");
  });
});

describe("cross-tenant: a member of team B learns nothing of team A", () => {
  test("every read and write on A's id through B's membership is NOT_FOUND", async () => {
    const f = await makeRoleFixture("A");
    const inv = await callerFor(f.admin, f.team.id).team.invite({ role: "viewer" });
    // The outsider is admin of their own team B and targets team A's ids.
    const asOutsiderOnA = callerFor(f.outsider, f.team.id);
    for (const call of [
      () => asOutsiderOnA.team.get(),
      () => asOutsiderOnA.team.members(),
      () => asOutsiderOnA.team.invites(),
      () => asOutsiderOnA.team.rename({ name: "pwned" }),
      () => asOutsiderOnA.team.invite({ role: "admin" }),
      () => asOutsiderOnA.team.revokeInvite({ inviteId: inv.id }),
      () => asOutsiderOnA.team.changeRole({ userId: f.admin.id, role: "viewer" }),
      () => asOutsiderOnA.team.removeMember({ userId: f.admin.id }),
      () => asOutsiderOnA.audit.list({}),
      () => asOutsiderOnA.audit.verify(),
    ]) {
      assert.equal(await code(call()), "NOT_FOUND", call.toString());
    }
    // And acting on their own team B with A's member/invite ids finds nothing either.
    const asOutsiderOnB = callerFor(f.outsider, f.otherTeam.id);
    assert.equal(await code(asOutsiderOnB.team.changeRole({ userId: f.admin.id, role: "viewer" })), "NOT_FOUND");
    assert.equal(await code(asOutsiderOnB.team.removeMember({ userId: f.viewer.id })), "NOT_FOUND");
    assert.equal(await code(asOutsiderOnB.team.revokeInvite({ inviteId: inv.id })), "NOT_FOUND");
    const bLog = await asOutsiderOnB.audit.list({});
    assert.ok(bLog.items.every((i) => i.targetId !== f.team.id));
    // Nothing changed in A.
    const a = await db.team.findUniqueOrThrow({ where: { id: f.team.id } });
    assert.equal(a.name, "A");
    assert.equal(await db.membership.count({ where: { teamId: f.team.id } }), 3);
  });
});
