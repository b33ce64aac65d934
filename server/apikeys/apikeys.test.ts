import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import superjson from "superjson";
import { rawClient, useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { verifyAuditChain } from "../audit";
import { encryptForTeam } from "../vault";
import { scanDatabaseFor } from "../vault/testing";
import { buildRouterSnapshot, handleRouterConfigRequest, recordKeysUsed, snapshotVersion, upstreamHeadersPurpose } from "../routerconfig";
import { startRouter, startSimulator } from "../../router-service/src/index";

await useTestDatabase();
process.env.TUNA_ROUTER_TOKEN = "rt_test_router_token_0123456789";

const code = outcomeCode;

async function makeDeployment(teamId: string, createdById: string, url: string, slug = "qwen-small") {
  const d = await db.deployment.create({
    data: { teamId, slug, model: "Qwen/Qwen3-0.6B", servedModelName: "Qwen/Qwen3-0.6B", mode: "serverless", status: "active", spec: { serverlessScaling: { maxWorkers: 2, concurrency: 8 } }, createdById },
  });
  await db.deploymentComponent.create({
    data: {
      deploymentId: d.id,
      kind: "serverless",
      provider: "local",
      status: "ready",
      endpointUrl: url,
      upstreamHeadersCipher: encryptForTeam(teamId, upstreamHeadersPurpose(d.id, "serverless"), JSON.stringify({ authorization: "Bearer upstream-secret-xyz" })) as object,
    },
  });
  await db.$executeRaw`INSERT INTO "Counter" (name, value) VALUES ('router-config', 1) ON CONFLICT (name) DO UPDATE SET value = "Counter".value + 1`;
  return d;
}

describe("router API keys", () => {
  test("created once with the tuna_sk_ prefix; only the SHA-256 is stored; list shows metadata", async () => {
    const f = await makeRoleFixture();
    const dev = callerFor(f.developer, f.team.id);
    const v0 = await snapshotVersion();
    const created = await dev.apiKeys.create({ label: "ci", rpm: 60, tpm: 10_000, maxConcurrent: 4 });
    assert.match(created.key, /^tuna_sk_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.apiKey.prefix, created.key.slice(0, 12));
    assert.ok((await snapshotVersion()) > v0, "creation bumps the router config version");
    const row = await db.apiKey.findUniqueOrThrow({ where: { id: created.apiKey.id } });
    assert.equal(row.hash, createHash("sha256").update(created.key).digest("hex"));
    const list = await callerFor(f.viewer, f.team.id).apiKeys.list();
    assert.deepEqual(list.map((k) => [k.label, k.status, k.rpm, k.deployments]), [["ci", "active", 60, "*"]]);
    assert.ok(!superjson.stringify(list).includes(created.key));
    assert.ok(!superjson.stringify(list).includes(row.hash), "the hash is not handed out either");
    assert.deepEqual(await scanDatabaseFor(await rawClient(), [created.key]), []);
    assert.equal(await code(callerFor(f.viewer, f.team.id).apiKeys.create({ label: "x" })), "FORBIDDEN");
    const actions = (await db.auditLog.findMany({ where: { teamId: f.team.id } })).map((a) => a.action);
    assert.deepEqual(actions, ["apikey.create"]);
    assert.ok(!JSON.stringify(await db.auditLog.findMany({ where: { teamId: f.team.id } })).includes(created.key));
  });

  test("scope, limits, revoke and expiry reach the snapshot", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    const dep = await makeDeployment(f.team.id, f.admin.id, "http://127.0.0.1:9/");
    const scoped = await admin.apiKeys.create({ label: "scoped", deployments: [dep.id], rpm: 5 });
    const soon = await admin.apiKeys.create({ label: "soon", expiresAt: new Date(Date.now() + 60_000) });
    let snap = await buildRouterSnapshot();
    const k = snap.apiKeys.find((x) => x.id === scoped.apiKey.id);
    assert.deepEqual(k?.deployments, [dep.id]);
    assert.deepEqual(k?.limits, { rpm: 5, tpm: null, maxConcurrent: null });
    const d = snap.deployments.find((x) => x.id === dep.id);
    assert.deepEqual(d?.models, ["qwen-small", "Qwen/Qwen3-0.6B"]);
    assert.equal(d?.backends[0].headers?.authorization, "Bearer upstream-secret-xyz");
    assert.equal(d?.backends[0].maxInflight, 16);
    await admin.apiKeys.revoke({ keyId: scoped.apiKey.id });
    assert.equal(await code(admin.apiKeys.revoke({ keyId: scoped.apiKey.id })), "PRECONDITION_FAILED");
    await db.apiKey.update({ where: { id: soon.apiKey.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    snap = await buildRouterSnapshot();
    assert.ok(!snap.apiKeys.some((x) => x.id === scoped.apiKey.id || x.id === soon.apiKey.id));
    const statuses = Object.fromEntries((await admin.apiKeys.list()).map((x) => [x.label, x.status]));
    assert.deepEqual(statuses, { scoped: "revoked", soon: "expired" });
    assert.equal(await code(admin.apiKeys.create({ label: "past", expiresAt: new Date(Date.now() - 1) })), "BAD_REQUEST");
    assert.equal((await verifyAuditChain(f.team.id)).ok, true);
  });

  test("cross-tenant: keys and deployment scopes of another team are out of reach", async () => {
    const f = await makeRoleFixture();
    const mine = await callerFor(f.admin, f.team.id).apiKeys.create({ label: "mine" });
    const theirDep = await makeDeployment(f.otherTeam.id, f.outsider.id, "http://127.0.0.1:9/", "theirs");
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    assert.deepEqual(await stranger.apiKeys.list(), []);
    assert.equal(await code(stranger.apiKeys.revoke({ keyId: mine.apiKey.id })), "NOT_FOUND");
    assert.equal(await code(stranger.apiKeys.update({ keyId: mine.apiKey.id, rpm: 1 })), "NOT_FOUND");
    assert.equal(await code(callerFor(f.admin, f.team.id).apiKeys.create({ label: "steal", deployments: [theirDep.id] })), "NOT_FOUND");
    assert.equal(await code(callerFor(f.outsider, f.team.id).apiKeys.list()), "NOT_FOUND");
    assert.equal((await db.apiKey.findUniqueOrThrow({ where: { id: mine.apiKey.id } })).revokedAt, null);
  });

  test("config endpoint: 401 without the router token, ETag and 304", async () => {
    const f = await makeRoleFixture();
    await callerFor(f.admin, f.team.id).apiKeys.create({ label: "k" });
    const url = "http://cp/api/router/config";
    assert.equal((await handleRouterConfigRequest(new Request(url))).status, 401);
    assert.equal((await handleRouterConfigRequest(new Request(url, { headers: { authorization: "Bearer wrong" } }))).status, 401);
    const auth = { authorization: `Bearer ${process.env.TUNA_ROUTER_TOKEN}` };
    const r1 = await handleRouterConfigRequest(new Request(url, { headers: auth }));
    assert.equal(r1.status, 200);
    const etag = r1.headers.get("etag") as string;
    const body = (await r1.json()) as { version: number; apiKeys: unknown[] };
    assert.equal(body.version, await snapshotVersion());
    assert.match(etag, new RegExp(`^"v${body.version}-`));
    const r2 = await handleRouterConfigRequest(new Request(url, { headers: { ...auth, "if-none-match": etag } }));
    assert.equal(r2.status, 304);
    await callerFor(f.admin, f.team.id).apiKeys.create({ label: "k2" });
    const r3 = await handleRouterConfigRequest(new Request(url, { headers: { ...auth, "if-none-match": etag } }));
    assert.equal(r3.status, 200, "a change makes the old ETag stale");
  });

  test("last used is batched: at most one write per key per minute", async () => {
    const f = await makeRoleFixture();
    const k = await callerFor(f.admin, f.team.id).apiKeys.create({ label: "k" });
    const t0 = new Date();
    assert.equal(await recordKeysUsed([k.apiKey.id, k.apiKey.id], t0), 1);
    assert.equal(await recordKeysUsed([k.apiKey.id], new Date(t0.getTime() + 10_000)), 0, "within the minute: no write");
    assert.equal((await db.apiKey.findUniqueOrThrow({ where: { id: k.apiKey.id } })).lastUsedAt?.getTime(), t0.getTime());
    assert.equal(await recordKeysUsed([k.apiKey.id], new Date(t0.getTime() + 61_000)), 1);
  });

  test("integration: a running router stops accepting a key within the poll interval after revoke and after expiry", async () => {
    const f = await makeRoleFixture();
    const sim = await startSimulator({ model: ["qwen-small", "Qwen/Qwen3-0.6B"] });
    after(() => sim.close());
    await makeDeployment(f.team.id, f.admin.id, sim.url);
    const admin = callerFor(f.admin, f.team.id);
    const revoked = await admin.apiKeys.create({ label: "to-revoke" });
    const expiring = await admin.apiKeys.create({ label: "to-expire", expiresAt: new Date(Date.now() + 60 * 60_000) });

    // The control plane: a node:http server serving the real handler.
    const cp = http.createServer(async (req, res) => {
      if (req.url?.startsWith("/api/router/config")) {
        const r = await handleRouterConfigRequest(new Request(`http://cp${req.url}`, { method: req.method, headers: req.headers as Record<string, string> }));
        res.writeHead(r.status, Object.fromEntries(r.headers));
        res.end(Buffer.from(await r.arrayBuffer()));
        return;
      }
      req.resume();
      res.writeHead(204).end(); // usage reports: not this test's concern
    });
    await new Promise<void>((r) => cp.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => cp.close(() => r())));
    const POLL_MS = 300;
    const router = await startRouter({
      controlPlaneUrl: `http://127.0.0.1:${(cp.address() as AddressInfo).port}`,
      routerToken: process.env.TUNA_ROUTER_TOKEN,
      configPollMs: POLL_MS,
      usageFlushMs: 60_000,
      logLevel: "silent",
      stateDir: mkdtempSync(path.join(os.tmpdir(), "tuna-rt-keys-")),
    });
    after(() => router.close());

    const chat = (key: string) =>
      fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
      }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    /** Polls until `status` is seen; returns how long it took. */
    async function until(key: string, status: number, limitMs: number): Promise<number> {
      const t0 = Date.now();
      for (;;) {
        const s = await chat(key);
        if (s === status) return Date.now() - t0;
        if (Date.now() - t0 > limitMs) assert.fail(`expected ${status} within ${limitMs} ms, last ${s}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    assert.equal(await chat(revoked.key), 200);
    assert.equal(await chat(expiring.key), 200);
    assert.equal(await chat("tuna_sk_not-a-key"), 401);

    await admin.apiKeys.revoke({ keyId: revoked.apiKey.id });
    const revokeMs = await until(revoked.key, 401, POLL_MS * 4 + 1500);
    assert.equal(await chat(expiring.key), 200, "other keys unaffected");

    // Expiry: move it to the past without any version bump; the snapshot's content (and ETag) still changes.
    await db.apiKey.update({ where: { id: expiring.apiKey.id }, data: { expiresAt: new Date(Date.now() + 500) } });
    const expireMs = await until(expiring.key, 401, POLL_MS * 4 + 2500);
    assert.ok(revokeMs < POLL_MS * 4 + 1500 && expireMs < POLL_MS * 4 + 2500, `${revokeMs} ${expireMs}`);
  });
});

describe("a key's scope by deployment name (QA audit)", () => {
  test("every role sees the names of the scoped deployments, team-scoped, and ended ones are marked", async () => {
    const f = await makeRoleFixture();
    const live = await makeDeployment(f.team.id, f.admin.id, "http://127.0.0.1:9", "live-one");
    const gone = await makeDeployment(f.team.id, f.admin.id, "http://127.0.0.1:9", "gone-one");
    const admin = callerFor(f.admin, f.team.id);
    const k = await admin.apiKeys.create({ label: "scoped", deployments: [live.id, gone.id] });
    await admin.apiKeys.create({ label: "all" });
    await db.deployment.update({ where: { id: gone.id }, data: { status: "destroyed", destroyedAt: new Date() } });
    for (const who of [f.viewer, f.developer, f.admin]) {
      const list = await callerFor(who, f.team.id).apiKeys.list();
      const scoped = list.find((x) => x.id === k.apiKey.id);
      assert.ok(scoped);
      assert.deepEqual(scoped.deployments, [live.id, gone.id]);
      assert.deepEqual(scoped.scope, [
        { id: live.id, name: "live-one", ended: false },
        { id: gone.id, name: "gone-one", ended: true },
      ]);
      assert.deepEqual(list.find((x) => x.label === "all")?.scope, []);
    }
    // A deployment id that is not the team's (planted directly: the API refuses it) gets no name.
    const theirs = await makeDeployment(f.otherTeam.id, f.outsider.id, "http://127.0.0.1:9", "their-secret-name");
    await db.apiKey.update({ where: { id: k.apiKey.id }, data: { deploymentIds: [live.id, theirs.id] } });
    const after = (await callerFor(f.viewer, f.team.id).apiKeys.list()).find((x) => x.id === k.apiKey.id);
    assert.deepEqual(after?.scope[1], { id: theirs.id, name: null, ended: true });
    assert.ok(!superjson.stringify(after).includes("their-secret-name"));
  });
});
