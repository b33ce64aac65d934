import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor } from "../test/fixtures";
import { finishDestroy, markTeamDestroying } from "./lifecycle";
import { captureEvents, recInput, workflowFixture } from "../workflows/test/setup";

await useTestDatabase();
captureEvents();
const f = await workflowFixture();

describe("deployments.get: who destroyed it", () => {
  test("nobody before a destroy; the requester of a destroy; the admin of a destroy-all that swept it", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const developer = callerFor(f.developer, f.team.id);
    const one = await admin.deployments.create(recInput({ slug: "by-one" }));
    assert.equal((await developer.deployments.get({ id: one.id })).destroyRequestedBy, null);
    await developer.deployments.destroy({ id: one.id });
    await finishDestroy(one.id);
    const d = await admin.deployments.get({ id: one.id });
    assert.equal(d.status, "destroyed");
    assert.ok(d.destroyedAt);
    assert.equal(d.destroyRequestedBy, f.developer.email);

    const two = await developer.deployments.create(recInput({ slug: "by-all" }));
    await admin.deployments.destroyAll({ confirm: "destroy all" });
    await markTeamDestroying(f.team.id); // what the destroy-all workflow does first
    assert.equal((await developer.deployments.get({ id: two.id })).destroyRequestedBy, f.admin.email);
    // The earlier, single destroy keeps its own requester.
    assert.equal((await developer.deployments.get({ id: one.id })).destroyRequestedBy, f.developer.email);
  });
});
