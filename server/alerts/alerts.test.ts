import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { InngestTestEngine } from "@inngest/test";
import superjson from "superjson";
import { rawClient, useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { setEventSink } from "../workflows/events";
import { scanDatabaseFor } from "../vault/testing";
import { buildSlackMessage, deliverAlertNow, notify, type AlertEventType } from "./index";
import { deliverAlert } from "./functions";
import { FakeSlack } from "./fake-slack";

// Outbound URLs to private addresses need the operator's allowlist: the fake Slack and the JSON webhook receivers listen on loopback.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";

await useTestDatabase();

const sent: Array<{ name: string; data: Record<string, unknown> }> = [];
setEventSink(async (name, data) => void sent.push({ name, data }));
after(() => setEventSink(null));

let slack: FakeSlack;
before(async () => {
  slack = await new FakeSlack().start();
});
after(() => slack.close());
beforeEach(() => {
  slack.posts.length = 0;
  slack.script.length = 0;
  sent.length = 0;
});

const code = outcomeCode;

/** Records requested sleeps instead of sleeping. */
function recorder() {
  const sleeps: number[] = [];
  return { sleeps, opts: { sleep: async (ms: number) => void sleeps.push(ms), random: () => 0.5 } };
}

async function setup(events: string[] = ["deployment.failed", "approval.decided"]) {
  const f = await makeRoleFixture();
  const url = slack.newWebhook();
  const admin = callerFor(f.admin, f.team.id);
  const channel = await admin.alerts.create({ name: "#ops", kind: "slack", url, events: events as AlertEventType[] });
  const dep = await db.deployment.create({
    data: { teamId: f.team.id, slug: "qwen-small", model: "m", servedModelName: "m", mode: "hybrid", status: "failed", spec: {}, createdById: f.admin.id },
  });
  return { f, url, admin, channel, dep };
}

async function queueOne(teamId: string, deploymentId: string) {
  const r = await notify(teamId, { type: "deployment.failed", deploymentId, title: "Deployment failed", text: "Step deploy-serverless failed: quota.", costPerHourMicros: 1_250_000 });
  assert.equal(r.queued, 1);
  const ev = sent.find((s) => s.name === "alert/send");
  assert.ok(ev);
  return ev.data.deliveryId as string;
}

describe("Slack message (pure)", () => {
  test("Block Kit with title, text, team, deployment, cost and a dashboard link", () => {
    const m = buildSlackMessage(
      { type: "deployment.failed", deploymentId: "dep_1", title: "Deployment failed", text: "Step <deploy> & co failed", costPerHourMicros: 1_250_000 },
      { teamName: "Acme", deploymentSlug: "qwen-small", dashboardUrl: "https://tuna.example/deployments/dep_1", at: new Date("2026-11-27T04:00:00Z") },
    );
    assert.equal(m.text, "Deployment failed: Step <deploy> & co failed (Acme / qwen-small)");
    assert.deepEqual(m.blocks.map((b) => b.type), ["header", "section", "section", "actions", "context"]);
    assert.deepEqual(m.blocks[0], { type: "header", text: { type: "plain_text", text: "Deployment failed", emoji: true } });
    assert.equal((m.blocks[1] as { text: { text: string } }).text.text, ":x: Step &lt;deploy&gt; &amp; co failed");
    assert.deepEqual((m.blocks[2] as { fields: Array<{ text: string }> }).fields.map((x) => x.text), ["*Team*\nAcme", "*Deployment*\nqwen-small", "*Cost*\n$1.25/h", "*Event*\n`deployment.failed`"]);
    assert.equal((m.blocks[3] as { elements: Array<{ url: string }> }).elements[0].url, "https://tuna.example/deployments/dep_1");
    assert.match(JSON.stringify(m.blocks[4]), /2026-11-27T04:00:00.000Z/);
  });

  test("long titles and texts are clipped to Block Kit limits", () => {
    const m = buildSlackMessage({ type: "deployment.stuck", title: "t".repeat(400), text: "x".repeat(10_000) }, { teamName: "Acme", dashboardUrl: "https://t/" });
    assert.equal(((m.blocks[0] as { text: { text: string } }).text.text).length, 150);
    assert.ok(((m.blocks[1] as { text: { text: string } }).text.text).length <= 3000);
    assert.ok(m.text.length <= 4000);
  });
});

describe("alert channels and delivery", () => {
  test("notify queues one delivery per subscribed, enabled channel of the team only", async () => {
    const { f, admin, channel, dep } = await setup();
    const other = await admin.alerts.create({ name: "#budget", kind: "slack", url: slack.newWebhook(), events: ["budget.threshold"] });
    const off = await admin.alerts.create({ name: "#off", kind: "slack", url: slack.newWebhook(), events: ["deployment.failed"] });
    await admin.alerts.update({ channelId: off.id, enabled: false });
    const theirs = await callerFor(f.outsider, f.otherTeam.id).alerts.create({ name: "#theirs", kind: "slack", url: slack.newWebhook(), events: ["deployment.failed"] });
    const r = await notify(f.team.id, { type: "deployment.failed", deploymentId: dep.id, title: "Deployment failed", text: "boom" });
    assert.deepEqual(r, { queued: 1, event: "deployment.failed" });
    const events = sent.filter((s) => s.name === "alert/send");
    assert.deepEqual(events.map((e) => [e.data.teamId, e.data.channelId, e.data.type]), [[f.team.id, channel.id, "deployment.failed"]]);
    assert.equal(await db.alertDelivery.count({ where: { channelId: { in: [other.id, off.id, theirs.id] } } }), 0);
    // Aliases used by the workflows map to their subscription.
    assert.equal((await notify(f.team.id, { type: "deployment.rejected", title: "x", text: "y" })).queued, 1);
    assert.deepEqual(await notify(f.team.id, { type: "no.such.event", title: "x", text: "y" }), { queued: 0, event: null });
  });

  test("delivered through the fake Slack: payload shape, status visible on the channel", async () => {
    const { f, admin, channel, dep } = await setup();
    const deliveryId = await queueOne(f.team.id, dep.id);
    const r = await deliverAlertNow(deliveryId, recorder().opts);
    assert.deepEqual(r, { status: "delivered", attempts: 1, lastError: null });
    assert.equal(slack.posts.length, 1);
    const body = slack.posts[0].body as { text: string; blocks: Array<{ type: string }> };
    assert.equal(slack.posts[0].contentType, "application/json");
    assert.match(body.text, /Deployment failed/);
    assert.deepEqual(body.blocks.map((b) => b.type), ["header", "section", "section", "actions", "context"]);
    assert.match(JSON.stringify(body.blocks), /qwen-small/);
    assert.match(JSON.stringify(body.blocks), /\$1\.25\/h/);
    assert.match(JSON.stringify(body.blocks), new RegExp(`/deployments/${dep.id}`));
    const [view] = await admin.alerts.list();
    assert.equal(view.id, channel.id);
    assert.equal(view.lastDeliveryStatus, "delivered");
    assert.ok(view.lastDeliveryAt);
    const again = await deliverAlertNow(deliveryId, recorder().opts);
    assert.equal(again.status, "delivered");
    assert.equal(slack.posts.length, 1, "a delivered alert is not sent twice");
  });

  test("429 honours Retry-After, 5xx backs off exponentially, then it goes through", async () => {
    const { f, dep } = await setup();
    const deliveryId = await queueOne(f.team.id, dep.id);
    slack.script.push({ status: 429, body: "rate_limited", headers: { "retry-after": "3" } }, { status: 500, body: "rollup_error" }, { status: 503, body: "" });
    const rec = recorder();
    const r = await deliverAlertNow(deliveryId, rec.opts);
    assert.deepEqual(r, { status: "delivered", attempts: 4, lastError: null });
    assert.deepEqual(rec.sleeps, [3000, 2000, 4000], "Retry-After (3 s), then 1 s·2^1, 1 s·2^2");
    assert.equal(slack.posts.length, 4);
    const d = await db.alertDelivery.findUniqueOrThrow({ where: { id: deliveryId } });
    assert.equal(d.status, "delivered");
    assert.equal(d.attempts, 4);
  });

  test("after the retries are exhausted the failure is visible on the channel and the delivery", async () => {
    const { f, admin, channel, dep } = await setup();
    const deliveryId = await queueOne(f.team.id, dep.id);
    for (let i = 0; i < 5; i++) slack.script.push({ status: 500, body: "rollup_error" });
    const rec = recorder();
    const r = await deliverAlertNow(deliveryId, rec.opts);
    assert.equal(r.status, "failed");
    assert.equal(r.attempts, 5);
    assert.deepEqual(rec.sleeps, [1000, 2000, 4000, 8000]);
    const [view] = await admin.alerts.list();
    assert.equal(view.lastDeliveryStatus, "failed");
    assert.equal(view.lastDeliveryError, "HTTP 500 rollup_error after 5 attempts");
    assert.equal(view.enabled, true);
    const [d] = await admin.alerts.deliveries({ channelId: channel.id });
    assert.deepEqual([d.status, d.attempts, d.lastError], ["failed", 5, "HTTP 500 rollup_error after 5 attempts"]);
  });

  test("a failed answer's body is shown only when it is an error code, never as text (no reading other services' pages)", async () => {
    const { f, admin, dep } = await setup();
    slack.script.push({ status: 400, body: "<html>internal admin panel SECRETBODY</html>" });
    const r = await deliverAlertNow(await queueOne(f.team.id, dep.id), recorder().opts);
    assert.equal(r.lastError, "HTTP 400 after 1 attempt");
    const [view] = await admin.alerts.list();
    assert.ok(!JSON.stringify(view).includes("SECRETBODY"));
    const [d] = await admin.alerts.deliveries({ channelId: view.id });
    assert.ok(!JSON.stringify(d).includes("SECRETBODY"));
  });

  test("4xx is not retried; a revoked webhook (404 no_service) disables the channel", async () => {
    const { f, admin, url, dep } = await setup();
    slack.script.push({ status: 400, body: "invalid_blocks" });
    const rec = recorder();
    const r1 = await deliverAlertNow(await queueOne(f.team.id, dep.id), rec.opts);
    assert.deepEqual([r1.status, r1.attempts, rec.sleeps.length], ["failed", 1, 0]);
    slack.revoke(url);
    sent.length = 0;
    const r2 = await deliverAlertNow(await queueOne(f.team.id, dep.id), rec.opts);
    assert.deepEqual([r2.status, r2.attempts, r2.lastError], ["failed", 1, "HTTP 404 no_service after 1 attempt"]);
    const [view] = await admin.alerts.list();
    assert.equal(view.enabled, false);
    assert.match(view.lastDeliveryError ?? "", /channel was disabled/);
    assert.deepEqual(await notify(f.team.id, { type: "deployment.failed", title: "x", text: "y" }), { queued: 0, event: "deployment.failed" });
  });

  test("send test: a real message, and the webhook URL never leaves the vault", async () => {
    const { f, admin, url, channel } = await setup();
    const r = await admin.alerts.sendTest({ channelId: channel.id });
    assert.equal(r.status, "delivered");
    assert.equal(slack.posts.length, 1);
    assert.match(String(slack.posts[0].body.text), /Tuna test alert/);
    const token = url.split("/").pop() as string;
    const wire = superjson.stringify([await admin.alerts.list(), await admin.alerts.deliveries({ channelId: channel.id }), channel, r]);
    assert.ok(!wire.includes(token), "webhook token in a tRPC response");
    assert.deepEqual(await scanDatabaseFor(await rawClient(), [token]), [], "webhook token stored in plaintext");
    const uses = await db.auditLog.findMany({ where: { teamId: f.team.id, action: "secret.use" } });
    assert.deepEqual(uses.map((u) => (u.metadata as { purpose: string }).purpose), ["alert"]);
  });

  test("generic JSON webhook (Discord-compatible)", async () => {
    const f = await makeRoleFixture();
    const got: unknown[] = [];
    const srv = createServer((req, res) => {
      let b = "";
      req.on("data", (c) => (b += c));
      req.on("end", () => {
        got.push(JSON.parse(b));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => srv.close(() => r())));
    const admin = callerFor(f.admin, f.team.id);
    const ch = await admin.alerts.create({ name: "discord", kind: "webhook", url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/api/webhooks/1/abc`, events: ["budget.threshold"] });
    await notify(f.team.id, { type: "budget.threshold", title: "80% of the March budget", text: "Team spend reached $800 of $1000." });
    const ev = sent.find((s) => s.name === "alert/send" && s.data.channelId === ch.id);
    assert.ok(ev);
    assert.equal((await deliverAlertNow(ev.data.deliveryId as string, recorder().opts)).status, "delivered");
    const body = got[0] as { content: string; embeds: Array<{ title: string; fields: Array<{ name: string }> }>; tuna: { type: string } };
    assert.match(body.content, /80% of the March budget/);
    assert.equal(body.embeds[0].title, "80% of the March budget");
    assert.deepEqual(body.embeds[0].fields.map((x) => x.name), ["Team"]);
    assert.equal(body.tuna.type, "budget.threshold");
  });

  test("webhooks to loopback, private or metadata addresses are refused unless the operator allowed them; nothing is sent", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    const hits: string[] = [];
    const srv = createServer((req, res) => {
      hits.push(req.url ?? "");
      res.writeHead(200).end("INTERNAL-ONLY: db_password=hunter2");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => srv.close(() => r())));
    const port = (srv.address() as AddressInfo).port;
    const allowed = process.env.TUNA_ALLOW_PRIVATE_URLS;
    try {
      delete process.env.TUNA_ALLOW_PRIVATE_URLS;
      for (const [kind, url] of [
        ["webhook", `http://127.0.0.1:${port}/internal`],
        ["webhook", `https://localhost:${port}/internal`],
        ["webhook", "https://169.254.169.254/latest/meta-data/"],
        ["webhook", "https://10.0.0.5/hook"],
        ["webhook", `https://2130706433:${port}/`],
        ["slack", `https://[::ffff:127.0.0.1]:${port}/services/T/B/x`],
      ] as const) {
        await assert.rejects(admin.alerts.create({ name: "x", kind, url, events: ["budget.threshold"] }), (e: Error) => {
          assert.match(e.message, /the webhook URL must (not point at a private or loopback address|use https)/, url);
          assert.ok(!e.message.includes(String(port)) && !e.message.includes("/internal"), e.message);
          return true;
        }, url);
      }
      // A channel stored while the address was allowed (or before this check) is not delivered to any more.
      process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";
      const ch = await admin.alerts.create({ name: "internal", kind: "webhook", url: `http://127.0.0.1:${port}/internal`, events: ["budget.threshold"] });
      delete process.env.TUNA_ALLOW_PRIVATE_URLS;
      const r = await callerFor(f.admin, f.team.id).alerts.sendTest({ channelId: ch.id });
      assert.equal(r.status, "failed");
      assert.equal(r.attempts, 1, "a refused URL is not retried");
      assert.match(r.lastError ?? "", /The webhook URL must not point at a private or loopback address\./);
      assert.ok(!(r.lastError ?? "").includes("hunter2"));
      assert.deepEqual(hits, []);
    } finally {
      if (allowed === undefined) delete process.env.TUNA_ALLOW_PRIVATE_URLS;
      else process.env.TUNA_ALLOW_PRIVATE_URLS = allowed;
    }
  });

  test("the Inngest function delivers through its step", async () => {
    const { f, dep } = await setup();
    const deliveryId = await queueOne(f.team.id, dep.id);
    const ev = sent.find((s) => s.name === "alert/send");
    const t = new InngestTestEngine({ function: deliverAlert });
    const { result } = await t.execute({ events: [{ name: "alert/send", data: ev?.data as Record<string, unknown> }] });
    assert.deepEqual(result, { status: "delivered", attempts: 1, lastError: null });
    assert.equal(slack.posts.length, 1);
    assert.equal((await db.alertDelivery.findUniqueOrThrow({ where: { id: deliveryId } })).status, "delivered");
  });

  test("permissions and cross-tenant isolation", async () => {
    const { f, channel } = await setup();
    assert.equal(await code(callerFor(f.viewer, f.team.id).alerts.list()), "FORBIDDEN");
    assert.equal((await callerFor(f.developer, f.team.id).alerts.list()).length, 1);
    assert.equal(await code(callerFor(f.developer, f.team.id).alerts.sendTest({ channelId: channel.id })), "FORBIDDEN");
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    assert.deepEqual(await stranger.alerts.list(), []);
    assert.equal(await code(stranger.alerts.update({ channelId: channel.id, enabled: false })), "NOT_FOUND");
    assert.equal(await code(stranger.alerts.delete({ channelId: channel.id })), "NOT_FOUND");
    assert.equal(await code(stranger.alerts.sendTest({ channelId: channel.id })), "NOT_FOUND");
    assert.equal(await code(stranger.alerts.deliveries({ channelId: channel.id })), "NOT_FOUND");
    assert.equal(slack.posts.length, 0);
    assert.equal((await db.alertChannel.findUniqueOrThrow({ where: { id: channel.id } })).enabled, true);
  });

  test("deleting a channel removes it and soft-deletes its webhook secret", async () => {
    const { f, admin, channel } = await setup();
    await admin.alerts.delete({ channelId: channel.id });
    assert.deepEqual(await admin.alerts.list(), []);
    const s = await db.secret.findFirstOrThrow({ where: { teamId: f.team.id, kind: "slack-webhook" } });
    assert.ok(s.deletedAt);
  });
});

describe("a channel whose webhook URL was deleted from the vault (QA audit)", () => {
  test("the vault names the channel using the secret; afterwards the channel shows the URL missing, Send test says so plainly, and a new URL fixes it", async () => {
    const { f, admin, channel, dep } = await setup();
    const secret = (await admin.vault.list()).find((s) => s.label === "Alert channel: #ops");
    assert.ok(secret);
    assert.deepEqual(secret.usedBy.alertChannels, ["#ops"], "the vault says which channel uses the secret");
    await admin.vault.delete({ secretId: secret.id });

    const [view] = await admin.alerts.list();
    assert.equal(view.webhookMissing, true);
    assert.equal(view.urlLast4, "", "no last 4 of a deleted URL");

    await assert.rejects(admin.alerts.sendTest({ channelId: channel.id }), (e: Error) => {
      assert.match(e.message, /webhook URL of “#ops” was deleted from the vault\. Set a new URL \(Edit\), then send the test again\./);
      assert.doesNotMatch(e.message, /Secret not found/);
      return true;
    });
    assert.equal(await code(admin.alerts.sendTest({ channelId: channel.id })), "PRECONDITION_FAILED");

    // A queued alert fails at once with the same reason, not retried.
    const deliveryId = await queueOne(f.team.id, dep.id);
    const rec = recorder();
    const r = await deliverAlertNow(deliveryId, rec.opts);
    assert.equal(r.status, "failed");
    assert.equal(r.attempts, 0);
    assert.match(r.lastError ?? "", /^webhook missing: /);
    assert.deepEqual(rec.sleeps, []);
    assert.match((await admin.alerts.list())[0].lastDeliveryError ?? "", /webhook missing/);
    assert.equal(slack.posts.length, 0);

    // A new URL becomes a new secret (the old one cannot be rotated); the channel works again.
    const fixed = await admin.alerts.update({ channelId: channel.id, url: slack.newWebhook() });
    assert.equal(fixed.webhookMissing, false);
    assert.ok(fixed.urlLast4.length === 4);
    assert.equal((await admin.alerts.sendTest({ channelId: channel.id })).status, "delivered");
    const labels = (await admin.vault.list()).map((s) => s.label);
    assert.deepEqual(labels, ["Alert channel: #ops"]);
  });

  test("renaming a channel renames its vault secret", async () => {
    const { admin, channel } = await setup();
    await admin.alerts.update({ channelId: channel.id, name: "#platform" });
    assert.deepEqual((await admin.vault.list()).map((s) => [s.label, s.usedBy.alertChannels]), [["Alert channel: #platform", ["#platform"]]]);
  });

  test("channel names are unique within a team, with a plain message; other teams may reuse them", async () => {
    const { f, admin, channel } = await setup();
    for (const name of ["#ops", "#OPS", " #ops "]) {
      await assert.rejects(admin.alerts.create({ name, kind: "slack", url: slack.newWebhook(), events: [] }), (e: Error) => {
        assert.equal(e.message, "There is already a channel named “#ops” in this team. Choose another name.");
        return true;
      });
    }
    assert.equal((await admin.vault.list()).length, 1, "no orphan secret from a refused channel");
    const other = await admin.alerts.create({ name: "#budget", kind: "slack", url: slack.newWebhook(), events: [] });
    assert.equal(await code(admin.alerts.update({ channelId: other.id, name: "#Ops" })), "CONFLICT");
    assert.equal((await admin.alerts.update({ channelId: channel.id, name: "#Ops" })).name, "#Ops", "a channel may change the case of its own name");
    await callerFor(f.outsider, f.otherTeam.id).alerts.create({ name: "#ops", kind: "slack", url: slack.newWebhook(), events: [] });
  });
});
