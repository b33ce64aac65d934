import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import type { TRPCError } from "@trpc/server";
import { db } from "../../db";
import { deployComponent, startDeploying } from "../../deployments/lifecycle";
import { resolveDeployment } from "../../deployments/plan";
import { buildRouterSnapshot } from "../../routerconfig";
import { FakeSkyPilotServer } from "../../skypilot/fake";
import { useTestDatabase } from "../../test/db";
import { callerFor, makeRoleFixture } from "../../test/fixtures";
import { encryptValue, secretAad } from "../../vault/crypto";

/**
 * The auditor's SSRF finding, end to end: a team admin's SkyPilot secret must not make the control plane call
 * internal services and read their answers back (vault.test → lastTestMessage), and whatever a SkyPilot API
 * server answers as a service endpoint must not become a router backend on a private address.
 */
await useTestDatabase();

const ENV = "TUNA_ALLOW_PRIVATE_URLS";
const LEAK = "INTERNAL-ONLY: db_password=hunter2";
const TOKEN = "sky_ssrf_test_token_0123456789abcdef";

/** An internal admin service on loopback, as in the auditor's reproduction. */
let internal: Server;
let internalPort = 0;
const internalSeen: string[] = [];
let answer: (req: IncomingMessage, res: ServerResponse) => void;

before(async () => {
  internal = createServer((req, res) => {
    internalSeen.push(req.url ?? "");
    answer(req, res);
  });
  await new Promise<void>((r) => internal.listen(0, "127.0.0.1", r));
  internalPort = (internal.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => internal.close(() => r())));
beforeEach(() => {
  internalSeen.length = 0;
  delete process.env[ENV];
  answer = (_req, res) => res.writeHead(403, { "content-type": "text/plain" }).end(LEAK);
});

/** A secret as stored before this check existed (createSecret would refuse it now). */
async function storeUnchecked(teamId: string, userId: string, kind: string, value: string): Promise<string> {
  const s = await db.secret.create({ data: { teamId, kind, label: "stored before the fix", currentVersion: 1, last4: "", createdById: userId } });
  const sealed = encryptValue(value, secretAad(teamId, s.id, 1));
  await db.secretVersion.create({
    data: {
      secretId: s.id,
      version: 1,
      ciphertext: new Uint8Array(sealed.ciphertext),
      iv: new Uint8Array(sealed.iv),
      authTag: new Uint8Array(sealed.authTag),
      wrappedDataKey: new Uint8Array(sealed.wrappedDataKey),
      masterKeyId: sealed.masterKeyId,
      createdById: userId,
    },
  });
  return s.id;
}

describe("vault: a SkyPilot secret aimed at an internal service", () => {
  test("the auditor's URL (loopback, '#' swallowing the client's path) is refused when stored, and nothing is requested", async () => {
    const f = await makeRoleFixture("Ssrf");
    const admin = callerFor(f.admin, f.team.id);
    const attack = `http://127.0.0.1:${internalPort}/internal/admin/keys?all=1#`;
    for (const value of [JSON.stringify({ apiServerUrl: attack, token: TOKEN }), attack, JSON.stringify({ apiServerUrl: `http://127.0.0.1:${internalPort}`, token: TOKEN })]) {
      await assert.rejects(admin.vault.create({ kind: "skypilot", label: "sky", value }), (e: TRPCError) => {
        assert.equal(e.code, "BAD_REQUEST");
        assert.match(e.message, /^Cannot store this SkyPilot API server: the SkyPilot API server URL must not (contain a "#" fragment|point at a private or loopback address)/);
        return true;
      });
    }
    // Even the operator's allowlist does not let a fragment or query choose the path.
    process.env[ENV] = "127.0.0.1";
    await assert.rejects(admin.vault.create({ kind: "skypilot", label: "sky", value: JSON.stringify({ apiServerUrl: attack, token: TOKEN }) }), /must not contain a "#" fragment/);
    assert.deepEqual(internalSeen, []);
    assert.deepEqual(await admin.vault.list(), []);
  });

  test("one stored before the fix: vault.test fails with the reason, the internal service sees no request, nothing leaks to vault.list", async () => {
    const f = await makeRoleFixture("SsrfOld");
    const admin = callerFor(f.admin, f.team.id);
    // (One after the other: the provider check uses the team's newest secret of the kind.)
    const hashed = await storeUnchecked(f.team.id, f.admin.id, "skypilot", JSON.stringify({ apiServerUrl: `http://127.0.0.1:${internalPort}/internal/admin/keys?all=1#`, token: TOKEN }));
    const r1 = await admin.vault.test({ secretId: hashed });
    assert.equal(r1.outcome, "failed");
    assert.match(r1.message, /The SkyPilot API server URL must not contain a "#" fragment\./);
    const plain = await storeUnchecked(f.team.id, f.admin.id, "skypilot", JSON.stringify({ apiServerUrl: `http://0x7f.1:${internalPort}/internal/admin/keys`, token: TOKEN }));
    const r2 = await admin.vault.test({ secretId: plain });
    assert.equal(r2.outcome, "failed");
    assert.match(r2.message, /The SkyPilot API server URL must not point at a private or loopback address \(127\.0\.0\.1\)\./);
    assert.deepEqual(internalSeen, [], "the control plane called the internal service");

    const listed = JSON.stringify(await admin.vault.list());
    assert.ok(!listed.includes("hunter2") && !listed.includes("INTERNAL-ONLY"), listed);
  });
});

describe("vault.test: what a server answers is not echoed", () => {
  test("a non-2xx body (HTML or text) reaches neither vault.test nor lastTestMessage; the status does", async () => {
    // An API server on the operator's network, allowed by the operator: still, its error pages are not repeated.
    process.env[ENV] = "127.0.0.1";
    const f = await makeRoleFixture("SsrfEcho");
    const admin = callerFor(f.admin, f.team.id);
    const s = await admin.vault.create({ kind: "skypilot", label: "sky", value: JSON.stringify({ apiServerUrl: `http://127.0.0.1:${internalPort}`, token: TOKEN }) });

    answer = (_req, res) => res.writeHead(403, { "content-type": "text/html" }).end(`<html><body><pre>${LEAK}</pre></body></html>`);
    const forbidden = await admin.vault.test({ secretId: s.id });
    assert.equal(forbidden.outcome, "failed");
    assert.match(forbidden.message, /HTTP 403/);

    answer = (_req, res) => res.writeHead(500, { "content-type": "text/plain" }).end(LEAK);
    const broken = await admin.vault.test({ secretId: s.id });
    assert.match(broken.message, /HTTP 500/);

    answer = (_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<html>${LEAK}</html>`);
    const notJson = await admin.vault.test({ secretId: s.id });
    assert.match(notJson.message, /the SkyPilot API server answered something that is not JSON \(HTTP 200\)/);

    for (const r of [forbidden, broken, notJson]) assert.ok(!JSON.stringify(r).includes("hunter2"), JSON.stringify(r));
    const [row] = await admin.vault.list();
    assert.ok(row.lastTestMessage && !row.lastTestMessage.includes("hunter2") && !row.lastTestMessage.includes("INTERNAL-ONLY"), row.lastTestMessage ?? "");
    assert.deepEqual(internalSeen, ["/api/health", "/api/health", "/api/health"]);
  });
});

describe("SkyServe endpoints and the router snapshot", () => {
  test("an endpoint on a private address fails the component with a clear timeline message and never reaches the snapshot", async () => {
    // The API server itself is allowed (loopback fake); the endpoint it reports (10.0.0.5) is not.
    process.env[ENV] = "127.0.0.1";
    const fake = new FakeSkyPilotServer({ token: TOKEN, observationsToFinish: 0, endpointFor: () => "http://10.0.0.5:30001" });
    await fake.start();
    try {
      const f = await makeRoleFixture("SsrfRouter");
      await callerFor(f.admin, f.team.id).vault.create({ kind: "skypilot", label: "sky", value: JSON.stringify({ apiServerUrl: fake.url, token: TOKEN }) });
      const r = resolveDeployment(f.team.id, { model: "Qwen/Qwen3-0.6B", mode: "spot", gpu: "T4", spotProvider: "skyserve", spotClouds: ["aws"] });
      const d = await db.deployment.create({
        data: {
          teamId: f.team.id,
          slug: r.slug,
          model: r.model,
          servedModelName: r.servedModelName,
          mode: r.mode,
          status: "queued",
          serverlessProvider: r.serverlessProvider,
          serverlessGpu: r.serverlessGpu,
          spotGpu: r.spotGpu,
          spotClouds: r.spotClouds,
          spotRegions: r.spotRegions,
          region: r.region,
          gpuCount: r.gpuCount,
          spec: r.spec as object,
          createdById: f.admin.id,
        },
      });
      assert.equal((await startDeploying(d.id)).proceed, true);
      await assert.rejects(deployComponent(d.id, "spot"), /must not point at a private or loopback address \(10\.0\.0\.5\)/);
      assert.equal(fake.requestsTo("/serve/up").length, 1, "the API server was asked (it is allowed)");

      const c = await db.deploymentComponent.findUniqueOrThrow({ where: { deploymentId_kind: { deploymentId: d.id, kind: "spot" } } });
      assert.equal(c.status, "failed");
      assert.equal(c.endpointUrl, null);
      const events = await db.deploymentEvent.findMany({ where: { deploymentId: d.id, step: "deploy-spot" }, orderBy: { at: "asc" } });
      const failed = events.find((e) => e.status === "failed");
      assert.ok(failed, JSON.stringify(events));
      assert.match(failed.message ?? "", /The SkyServe service endpoint returned by the SkyPilot API server must not point at a private or loopback address \(10\.0\.0\.5\)\./);

      // Even if the deployment were serving, there is no backend to publish.
      await db.deployment.update({ where: { id: d.id }, data: { status: "active" } });
      const snap = await buildRouterSnapshot();
      assert.ok(!snap.deployments.some((x) => x.id === d.id));
      assert.ok(!JSON.stringify(snap).includes("10.0.0.5"));
    } finally {
      await fake.close();
    }
  });
});
