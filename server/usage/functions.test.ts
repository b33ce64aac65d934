import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { InngestTestEngine } from "@inngest/test";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { evaluateBudgetsFunction, pruneUsageFunction } from "./functions";

await useTestDatabase();

describe("usage cron functions", () => {
  test("prune-usage removes batch ids past retention and keeps recent ones", async () => {
    const old = new Date(Date.now() - 30 * 86400_000);
    await db.usageBatch.createMany({ data: [{ batchId: "old-1", routerId: "r", receivedAt: old }, { batchId: "new-1", routerId: "r" }] });
    const t = new InngestTestEngine({ function: pruneUsageFunction });
    const { result } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: {} }] });
    assert.ok(result && typeof result === "object");
    assert.deepEqual((await db.usageBatch.findMany({ orderBy: { batchId: "asc" } })).map((b) => b.batchId), ["new-1"]);
  });

  test("evaluate-budgets runs over every team and returns JSON-safe counts", async () => {
    const t = new InngestTestEngine({ function: evaluateBudgetsFunction });
    const { result } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: {} }] });
    assert.doesNotThrow(() => JSON.stringify(result));
    assert.equal(typeof result, "object");
  });
});
