import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { snapshotVersion } from "../routerconfig";
import { budgetBlocks, evaluateBudgets, listBudgets, setBudget } from "./budgets";
import { ingestUsageReport } from "./ingest";
import { type BudgetAlert, setUsageLinks } from "./links";
import { formatMicros } from "../catalog/money";
import { LOCAL_L4_MICROS_PER_HOUR, makeApiKey, makeDeployment, makeReport } from "./testing";

await useTestDatabase();

const alerts: Array<{ teamId: string; alert: BudgetAlert }> = [];
setUsageLinks({
  notify: async (teamId, alert) => {
    alerts.push({ teamId, alert });
  },
});

const MIN = 60_000;
/**
 * One "step" of traffic: 30 s of serverless busy time in its own minute, 10 minutes apart, so each is a
 * separate activation billed 30 s + 60 s idle window = 90 s of the local L4's hourly price.
 */
const STEP_MICROS = (90 * LOCAL_L4_MICROS_PER_HOUR) / 3600;
const BASE = Date.UTC(2026, 10, 10, 8, 0, 0);
const stepAt = (i: number) => new Date(BASE + i * 10 * MIN);
const evalAt = (i: number) => new Date(BASE + i * 10 * MIN + 5 * MIN);

async function fixture(name = "Acme") {
  const f = await makeRoleFixture(name);
  const dep = await makeDeployment(f.team.id, f.admin.id, { slug: `qwen-${name.toLowerCase()}` });
  const key = await makeApiKey(f.team.id, f.admin.id, `ci-bot-${name.toLowerCase()}`);
  const step = (i: number) =>
    ingestUsageReport(makeReport(stepAt(i), [{ keyId: key.id, deploymentId: dep.id, requests: 3, busyMs: 30_000 }]));
  return { ...f, dep, key, step };
}

const adminActor = (f: { admin: { id: string; email: string } }) => ({ userId: f.admin.id, label: f.admin.email });

describe("budgets", () => {
  test("80/90/100% alerts fire once each; at 100% the key is blocked with a message naming the budget", async () => {
    const f = await fixture("Acme");
    await setBudget(f.team.id, adminActor(f), { scope: "apikey", targetId: f.key.id, monthlyLimitMicros: 10 * STEP_MICROS }, { now: stepAt(0) });
    alerts.length = 0;
    const v0 = await snapshotVersion();
    const fired: number[][] = [];
    for (let i = 1; i <= 12; i++) {
      await f.step(i);
      const r = await evaluateBudgets(evalAt(i));
      await evaluateBudgets(evalAt(i)); // a second evaluator (another instance, or the next tick) adds nothing
      fired.push(r.alerts.filter((a) => a.teamId === f.team.id).map((a) => a.threshold));
    }
    assert.deepEqual(fired, [[], [], [], [], [], [], [], [80], [90], [100], [], []]);
    const mine = alerts.filter((a) => a.teamId === f.team.id);
    assert.equal(mine.length, 3);
    assert.deepEqual(mine.map((a) => a.alert.threshold), [80, 90, 100]);
    assert.ok(mine.every((a) => a.alert.type === "budget.threshold"));
    assert.equal(mine[2].alert.title, `Monthly budget of key ci-bot-acme (${formatMicros(10 * STEP_MICROS)}) reached`);
    assert.equal(await snapshotVersion(), v0 + 1, "crossing 100% bumps the router config version once");

    const blocks = await budgetBlocks(evalAt(12));
    assert.deepEqual(blocks.apiKeys.get(f.key.id), { code: "budget_exceeded", message: `Monthly budget of key ci-bot-acme (${formatMicros(10 * STEP_MICROS)}) reached` });
    assert.equal(blocks.deployments.has(f.dep.id), false);

    const [listed] = await listBudgets(f.team.id, { now: evalAt(12) });
    assert.equal(listed.spendMicros, 12 * STEP_MICROS);
    assert.equal(listed.blocked, true);
    assert.deepEqual(listed.alertsSent, [80, 90, 100]);
  });

  test("an admin raise unblocks (audited, routers told) and re-arms only the thresholds above the spend", async () => {
    const f = await fixture("Raise");
    await setBudget(f.team.id, adminActor(f), { scope: "apikey", targetId: f.key.id, monthlyLimitMicros: 5 * STEP_MICROS }, { now: stepAt(0) });
    for (let i = 1; i <= 5; i++) await f.step(i);
    await evaluateBudgets(evalAt(5));
    assert.ok((await budgetBlocks(evalAt(5))).apiKeys.has(f.key.id));
    const v0 = await snapshotVersion();
    // Raised to 6 steps: spend (5 steps) is at 83%: 80% stays sent, 90% and 100% are re-armed.
    const r = await setBudget(f.team.id, adminActor(f), { scope: "apikey", targetId: f.key.id, monthlyLimitMicros: 6 * STEP_MICROS }, { now: evalAt(5) });
    assert.equal(r.unblocked, true);
    assert.equal(await snapshotVersion(), v0 + 1);
    assert.equal((await budgetBlocks(evalAt(5))).apiKeys.has(f.key.id), false);
    const audit = await db.auditLog.findFirst({ where: { teamId: f.team.id, action: "budget.update" }, orderBy: { seq: "desc" } });
    assert.ok(audit);
    assert.equal(audit.actorId, f.admin.id);
    assert.deepEqual(
      [(audit.metadata as Record<string, unknown>).previousLimitMicros, (audit.metadata as Record<string, unknown>).monthlyLimitMicros],
      [5 * STEP_MICROS, 6 * STEP_MICROS],
    );
    alerts.length = 0;
    await f.step(6);
    const e = await evaluateBudgets(evalAt(6));
    assert.deepEqual(e.alerts.filter((a) => a.teamId === f.team.id).map((a) => a.threshold), [90, 100]);
    assert.ok((await budgetBlocks(evalAt(6))).apiKeys.has(f.key.id));
  });

  test("team and deployment budgets block the deployments, naming the budget; a new month lifts the block", async () => {
    const f = await fixture("Globex");
    const other = await makeDeployment(f.team.id, f.admin.id, { slug: "other" });
    await setBudget(f.team.id, adminActor(f), { scope: "deployment", targetId: f.dep.id, monthlyLimitMicros: 2 * STEP_MICROS }, { now: stepAt(0) });
    for (let i = 1; i <= 2; i++) await f.step(i);
    await evaluateBudgets(evalAt(2));
    let blocks = await budgetBlocks(evalAt(2));
    assert.equal(blocks.deployments.get(f.dep.id)?.message, `Monthly budget of deployment ${f.dep.slug} (${formatMicros(2 * STEP_MICROS)}) reached`);
    assert.equal(blocks.deployments.has(other.id), false);

    await setBudget(f.team.id, adminActor(f), { scope: "team", monthlyLimitMicros: 50_000_000 }, { now: evalAt(2) });
    await setBudget(f.team.id, adminActor(f), { scope: "team", monthlyLimitMicros: 3 * STEP_MICROS }, { now: evalAt(2) });
    assert.equal(await db.budget.count({ where: { teamId: f.team.id, scope: "team" } }), 1, "setting the team budget twice updates it");
    await f.step(3);
    await evaluateBudgets(evalAt(3));
    blocks = await budgetBlocks(evalAt(3));
    assert.equal(blocks.deployments.get(other.id)?.message, `Monthly budget of team Globex (${formatMicros(3 * STEP_MICROS)}) reached`);
    assert.equal(blocks.deployments.get(f.dep.id)?.message, `Monthly budget of team Globex (${formatMicros(3 * STEP_MICROS)}) reached`);

    const v0 = await snapshotVersion();
    const december = new Date(Date.UTC(2026, 11, 1, 0, 5));
    const r = await evaluateBudgets(december);
    assert.equal(r.period, "2026-12");
    assert.ok(r.lapsed.length >= 2);
    assert.equal(await snapshotVersion(), v0 + 1);
    blocks = await budgetBlocks(december);
    assert.equal(blocks.deployments.has(f.dep.id), false);
    assert.equal(blocks.deployments.has(other.id), false);
  });

  test("tRPC: viewers read, only admins set; another team can neither see nor target these budgets", async () => {
    const f = await fixture("Initech");
    const admin = callerFor(f.admin, f.team.id);
    const set = await admin.usage.budgets.set({ scope: "deployment", targetId: f.dep.id, monthlyLimitMicros: 1_000_000 });
    assert.equal(set.monthlyLimitMicros, 1_000_000);
    const list = await callerFor(f.viewer, f.team.id).usage.budgets.list();
    assert.equal(list.length, 1);
    assert.equal(list[0].name, `deployment ${f.dep.slug}`);
    await assert.rejects(callerFor(f.viewer, f.team.id).usage.budgets.set({ scope: "team", monthlyLimitMicros: 1 }), (e: TRPCError) => e.code === "FORBIDDEN");
    // Less than $0.01 ($0.001 typed in Settings) is refused, in words the form shows next to the field; $0.01 is taken.
    for (const tooSmall of [1_000, 9_999, 0]) {
      await assert.rejects(
        admin.usage.budgets.set({ scope: "team", monthlyLimitMicros: tooSmall }),
        (e: TRPCError) => e.code === "BAD_REQUEST" && e.message.includes("A monthly limit must be at least $0.01."),
      );
    }
    assert.equal((await admin.usage.budgets.set({ scope: "apikey", targetId: f.key.id, monthlyLimitMicros: 10_000 })).monthlyLimitMicros, 10_000);

    // The outsider administers the other team: targeting this team's deployment or key is NOT_FOUND.
    const outsider = callerFor(f.outsider, f.otherTeam.id);
    for (const [scope, targetId] of [["deployment", f.dep.id], ["apikey", f.key.id]] as const) {
      await assert.rejects(outsider.usage.budgets.set({ scope, targetId, monthlyLimitMicros: 1_000_000 }), (e: TRPCError) => e.code === "NOT_FOUND");
    }
    assert.deepEqual(await outsider.usage.budgets.list(), []);
    await assert.rejects(
      outsider.usage.deploymentSeries({ deploymentId: f.dep.id, from: new Date(BASE), to: new Date(BASE + 3_600_000) }),
      (e: TRPCError) => e.code === "NOT_FOUND",
    );
    await assert.rejects(callerFor(f.outsider, f.team.id).usage.budgets.list(), (e: TRPCError) => e.code === "NOT_FOUND");
    const other = await outsider.usage.budgets.list();
    assert.equal(other.length, 0);
    await assert.rejects(outsider.usage.budgets.delete({ budgetId: set.id }), (e: TRPCError) => e.code === "NOT_FOUND");
  });
});
