import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { budgetPeriod, claimThreshold, setBudget } from "./budgets";
import { ingestUsageReport } from "./ingest";
import { setUsageLinks } from "./links";
import { LOCAL_L4_MICROS_PER_HOUR, makeApiKey, makeDeployment, makeReport } from "./testing";
import { priceMs } from "./cost";

await useTestDatabase();
const bumps: string[] = [];
setUsageLinks({ notify: async () => {}, bumpRouterConfigVersion: async () => void bumps.push("bump") });

const MIN = 60_000;
const BASE = Date.UTC(2026, 10, 10, 8, 0, 0);
const STEP = priceMs(90_000, 1, LOCAL_L4_MICROS_PER_HOUR);
const NOW = new Date(BASE + 5 * MIN);
const PERIOD = budgetPeriod(NOW);

async function budgetAt(name: string, spentSteps: number, limitMicros: number, sent: number[]) {
  const f = await makeRoleFixture(name);
  const dep = await makeDeployment(f.team.id, f.admin.id, { slug: name.toLowerCase() });
  const key = await makeApiKey(f.team.id, f.admin.id);
  for (let i = 0; i < spentSteps; i++) {
    await ingestUsageReport(makeReport(new Date(BASE - (i + 1) * 10 * MIN), [{ keyId: key.id, deploymentId: dep.id, requests: 1, busyMs: 30_000 }]));
  }
  const b = await db.budget.create({ data: { teamId: f.team.id, scope: "team", monthlyLimitMicros: BigInt(limitMicros), alertsSent: { [PERIOD]: sent } } });
  return { ...f, budget: b, actor: { userId: f.admin.id, label: f.admin.email } };
}

const sentNow = async (id: string) => ((await db.budget.findUniqueOrThrow({ where: { id } })).alertsSent as Record<string, number[]>)[PERIOD];

/** Resolves once another session of this database waits on a lock (the writer under test is then parked). */
async function someoneWaitsOnALock(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [r] = await db.$queryRaw<Array<{ n: number }>>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    if (r.n > 0) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error("nobody waited on a lock");
}

describe("setBudget and an evaluator's claim, interleaved", () => {
  test("a threshold claimed while an admin saves the budget stays claimed (it is not re-sent, a 100% block does not vanish)", async () => {
    // Spend 10 steps of a 10-step limit: 80 and 90 alerted earlier, the evaluator now claims 100.
    const f = await budgetAt("Claimed", 10, 10 * STEP, [80, 90]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let claimedInside!: () => void;
    const claimDone = new Promise<void>((r) => (claimedInside = r));
    // The evaluator's transaction: its claim is written, not yet committed.
    const evaluator = db.$transaction(
      async (tx) => {
        const ok = await claimThreshold(tx, f.budget.id, PERIOD, 100, 10 * STEP);
        claimedInside();
        await gate;
        return ok;
      },
      { timeout: 30_000 },
    );
    await claimDone;
    // The admin saves the budget (same limit, e.g. a form resubmitted) while the claim is in flight.
    const saving = setBudget(f.team.id, f.actor, { scope: "team", monthlyLimitMicros: 10 * STEP }, { now: NOW });
    await someoneWaitsOnALock();
    release();
    assert.equal(await evaluator, true);
    const saved = await saving;
    assert.deepEqual(await sentNow(f.budget.id), [80, 90, 100], "the claim made while saving is kept");
    assert.equal(saved.unblocked, false);
  });

  test("a claim computed against the limit before an admin changed it does not land", async () => {
    const f = await budgetAt("Stale", 10, 10 * STEP, [80, 90]);
    // The admin doubles the limit: spend is now at 50%, nothing stays sent.
    await setBudget(f.team.id, f.actor, { scope: "team", monthlyLimitMicros: 20 * STEP }, { now: NOW });
    assert.deepEqual(await sentNow(f.budget.id), []);
    // An evaluator that read the old limit (10 steps, 100% crossed) tries to claim 100%: refused.
    assert.equal(await claimThreshold(db, f.budget.id, PERIOD, 100, 10 * STEP), false);
    assert.deepEqual(await sentNow(f.budget.id), []);
    // Against the current limit the claim works as before, once.
    assert.equal(await claimThreshold(db, f.budget.id, PERIOD, 80, 20 * STEP), true);
    assert.equal(await claimThreshold(db, f.budget.id, PERIOD, 80, 20 * STEP), false);
  });
});
