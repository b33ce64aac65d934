import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { formatMicros } from "../catalog/money";
import { budgetBlocks, evaluateBudgets, setBudget } from "./budgets";
import { ingestUsageReport } from "./ingest";
import { setUsageLinks } from "./links";
import { makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();
setUsageLinks({ notify: async () => {} });

const MIN = 60_000;

/** A team whose deployment `blocked` served traffic a few minutes ago, through key `ci-bot-<name>`. */
async function fixture(name: string) {
  const now = new Date();
  const f = await makeRoleFixture(name);
  const createdAt = new Date(now.getTime() - 30 * MIN);
  const blocked = await makeDeployment(f.team.id, f.admin.id, { slug: `qwen-${name.toLowerCase()}`, createdAt });
  const fine = await makeDeployment(f.team.id, f.admin.id, { slug: `fine-${name.toLowerCase()}`, createdAt });
  const key = await makeApiKey(f.team.id, f.admin.id, `ci-bot-${name.toLowerCase()}`);
  await ingestUsageReport(makeReport(new Date(now.getTime() - 5 * MIN), [{ keyId: key.id, deploymentId: blocked.id, requests: 3, busyMs: 30_000 }]));
  const actor = { userId: f.admin.id, label: f.admin.email };
  /** A budget of one micro-dollar, crossed by the traffic above once evaluated. */
  const exhaust = async (scope: "team" | "deployment" | "apikey", targetId: string | null) => {
    await setBudget(f.team.id, actor, { scope, targetId, monthlyLimitMicros: 1 });
    await evaluateBudgets(new Date(), { teamIds: [f.team.id] });
  };
  return { ...f, blocked, fine, key, actor, exhaust };
}

describe("budget blocks on the dashboard (teamOverview, deployments.get)", () => {
  test("a deployment budget at 100%: named on the Overview and on that deployment only, as the router names it", async () => {
    const f = await fixture("Initech");
    const viewer = callerFor(f.viewer, f.team.id);
    assert.deepEqual((await viewer.usage.teamOverview()).budgetBlocks, []);
    assert.equal((await viewer.deployments.get({ id: f.blocked.id })).budgetBlock, null);

    await f.exhaust("deployment", f.blocked.id);
    const message = `Monthly budget of deployment ${f.blocked.slug} (${formatMicros(1)}) reached`;
    assert.equal((await budgetBlocks()).deployments.get(f.blocked.id)?.message, message, "the router's message");
    const overview = await viewer.usage.teamOverview();
    assert.deepEqual(
      overview.budgetBlocks.map((b) => ({ scope: b.scope, targetId: b.targetId, name: b.name, message: b.message })),
      [{ scope: "deployment", targetId: f.blocked.id, name: `deployment ${f.blocked.slug}`, message }],
    );
    assert.equal((await viewer.deployments.get({ id: f.blocked.id })).budgetBlock?.message, message);
    assert.equal((await viewer.deployments.get({ id: f.fine.id })).budgetBlock, null);

    // Another team sees nothing of it.
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    assert.deepEqual((await stranger.usage.teamOverview()).budgetBlocks, []);
    await assert.rejects(stranger.deployments.get({ id: f.blocked.id }), (e: TRPCError) => e.code === "NOT_FOUND");

    // Raised above the spend: the block and the banner go.
    await setBudget(f.team.id, f.actor, { scope: "deployment", targetId: f.blocked.id, monthlyLimitMicros: 50_000_000 });
    assert.deepEqual((await viewer.usage.teamOverview()).budgetBlocks, []);
    assert.equal((await viewer.deployments.get({ id: f.blocked.id })).budgetBlock, null);
  });

  test("key and team budgets: the Overview lists the team's first; every deployment shows the team's block", async () => {
    const f = await fixture("Hooli");
    await f.exhaust("apikey", f.key.id);
    let overview = await callerFor(f.developer, f.team.id).usage.teamOverview();
    assert.deepEqual(overview.budgetBlocks.map((b) => b.name), [`key ${f.key.label}`]);
    // A key budget refuses that key, not the deployment.
    assert.equal((await callerFor(f.developer, f.team.id).deployments.get({ id: f.blocked.id })).budgetBlock, null);

    await f.exhaust("team", null);
    overview = await callerFor(f.developer, f.team.id).usage.teamOverview();
    assert.deepEqual(overview.budgetBlocks.map((b) => b.scope), ["team", "apikey"]);
    const teamMessage = `Monthly budget of team Hooli (${formatMicros(1)}) reached`;
    assert.equal(overview.budgetBlocks[0].message, teamMessage);
    for (const id of [f.blocked.id, f.fine.id]) {
      assert.equal((await callerFor(f.developer, f.team.id).deployments.get({ id })).budgetBlock?.message, teamMessage);
    }
  });

  test("top deployments: a destroyed deployment and its replacement with the same slug carry their own id and status", async () => {
    const f = await fixture("Umbrella");
    await db.deployment.update({ where: { id: f.blocked.id }, data: { status: "destroyed", destroyedAt: new Date(Date.now() - MIN) } });
    const replacement = await makeDeployment(f.team.id, f.admin.id, { slug: f.blocked.slug, createdAt: new Date(Date.now() - 2 * MIN) });
    const top = (await callerFor(f.viewer, f.team.id).usage.teamOverview()).topDeployments.filter((d) => d.slug === f.blocked.slug);
    assert.deepEqual(
      top.map((d) => [d.deploymentId, d.status, d.destroyedAt !== null]).sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
      [
        [replacement.id, "active", false],
        [f.blocked.id, "destroyed", true],
      ],
    );
  });
});
