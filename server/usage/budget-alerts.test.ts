import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { setEventSink } from "../workflows/events";
import { FakeSlack } from "../alerts/fake-slack";
import { evaluateBudgets, setBudget } from "./budgets";
import { ingestUsageReport } from "./ingest";
import { formatMicros } from "../catalog/money";
import { LOCAL_L4_MICROS_PER_HOUR, makeApiKey, makeDeployment, makeReport } from "./testing";

// The fake Slack and webhook servers are on loopback, which tenant URLs may not otherwise point at.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";
await useTestDatabase();

// The real alerts domain (no link overridden): threshold alerts become deliveries on the team's channels.
const sent: Array<{ name: string; data: Record<string, unknown> }> = [];
setEventSink(async (name, data) => void sent.push({ name, data }));
after(() => setEventSink(null));
const slack = await new FakeSlack().start();
after(() => slack.close());

const BASE = Date.UTC(2026, 10, 10, 8, 0, 0);
const at = (i: number, plusMin = 0) => new Date(BASE + i * 600_000 + plusMin * 60_000);

describe("budget alerts through the alert channels", () => {
  test("80/90/100% each queue one delivery on a channel subscribed to budget thresholds", async () => {
    const f = await makeRoleFixture("Umbrella");
    const admin = callerFor(f.admin, f.team.id);
    await admin.alerts.create({ name: "#spend", kind: "slack", url: slack.newWebhook(), events: ["budget.threshold"] });
    await admin.alerts.create({ name: "#deploys", kind: "slack", url: slack.newWebhook(), events: ["deployment.failed"] });
    const dep = await makeDeployment(f.team.id, f.admin.id, { slug: "umbrella-llm" });
    const key = await makeApiKey(f.team.id, f.admin.id);
    // Each step is one activation: 30 s busy + 60 s idle window at the local L4's price; budget = 10 steps.
    const budget = 10 * ((90 * LOCAL_L4_MICROS_PER_HOUR) / 3600);
    await setBudget(f.team.id, { userId: f.admin.id, label: f.admin.email }, { scope: "deployment", targetId: dep.id, monthlyLimitMicros: budget }, { now: at(0) });
    for (let i = 1; i <= 11; i++) {
      await ingestUsageReport(makeReport(at(i), [{ keyId: key.id, deploymentId: dep.id, requests: 2, busyMs: 30_000 }]));
      await evaluateBudgets(at(i, 5));
    }
    const deliveries = await db.alertDelivery.findMany({ where: { channel: { teamId: f.team.id } }, include: { channel: true }, orderBy: { createdAt: "asc" } });
    assert.equal(deliveries.length, 3);
    assert.ok(deliveries.every((d) => d.channel.name === "#spend" && d.event === "budget.threshold"));
    const titles = deliveries.map((d) => (d.payload as { event: { title: string } }).event.title);
    assert.deepEqual(titles, [
      "80% of the monthly budget of deployment umbrella-llm used",
      "90% of the monthly budget of deployment umbrella-llm used",
      `Monthly budget of deployment umbrella-llm (${formatMicros(budget)}) reached`,
    ]);
    assert.equal(sent.filter((e) => e.name === "alert/send" && e.data.teamId === f.team.id).length, 3);
  });
});
