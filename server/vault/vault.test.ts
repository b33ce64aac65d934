import { describe, test, after, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { TRPCError } from "@trpc/server";
import superjson from "superjson";
import { rawClient, useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { verifyAuditChain } from "../audit";
import { DomainError } from "../lib/errors";
import { hasProvider, registerProvider } from "../providers/registry";
import { RunpodFake } from "../providers/runpod/fake";
import { runpodProvider } from "../providers/runpod/index";
import {
  createSecret,
  decryptForTeam,
  encryptForTeam,
  listSecrets,
  providerCredentials,
  rewrapAllDataKeys,
  rotateSecret,
  testSecret,
  withSecret,
} from "./index";
import { captureLogs, scanDatabaseFor } from "./testing";

await useTestDatabase();

const actorOf = (u: { id: string; email: string }) => ({ userId: u.id, label: u.email });
const secretValue = (tag: string) => `${tag}_${randomBytes(16).toString("hex")}`;

const code = outcomeCode;

const read = (teamId: string, id: string, actor = { userId: null, label: "test" }) =>
  withSecret(teamId, { id }, "deploy", actor, async (v) => v);

let fake: RunpodFake;
const RUNPOD_KEY = secretValue("rpa");
/** RunPod's client tries a GET this many times (MAX_ATTEMPTS in providers/runpod/client.ts) before giving up. */
const RUNPOD_MAX_ATTEMPTS = 3;
before(async () => {
  fake = await new RunpodFake(RUNPOD_KEY).start();
  if (!hasProvider("runpod")) registerProvider(runpodProvider);
});
after(() => fake.close());

describe("vault", () => {
  test("plaintext never reaches the database, logs, tRPC responses or audit metadata", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    const plain = secretValue("rpa");
    const sa = JSON.stringify({
      type: "service_account",
      project_id: "demo-project",
      private_key_id: secretValue("pkid"),
      private_key: `-----BEGIN PRIVATE KEY-----\n${secretValue("KEYBODY")}\n-----END PRIVATE KEY-----\n`,
      client_email: "svc@demo-project.iam.gserviceaccount.com",
    });
    const saSecretPart = (JSON.parse(sa) as { private_key: string }).private_key.split("\n")[1];
    const webhook = `https://hooks.slack.com/services/T000/B000/${secretValue("hook")}`;
    const responses: unknown[] = [];
    const { output } = await captureLogs(async () => {
      const a = await admin.vault.create({ kind: "runpod", label: "RunPod prod", value: plain });
      const b = await admin.vault.create({ kind: "gcp-service-account", label: "GCP", value: sa });
      const c = await admin.vault.create({ kind: "slack-webhook", label: "Slack", value: webhook });
      responses.push(a, b, c);
      responses.push(await admin.vault.rotate({ secretId: a.id, value: `${plain}x` }));
      responses.push(await admin.vault.list());
      responses.push(await callerFor(f.developer, f.team.id).vault.list());
      responses.push(await admin.vault.test({ secretId: c.id }));
      responses.push(await admin.audit.list({}));
      // A bad value is refused without echoing it.
      responses.push(await code(admin.vault.create({ kind: "slack-webhook", label: "bad", value: `ftp://${plain}` })));
      try {
        await admin.vault.create({ kind: "gcp-service-account", label: "bad", value: `{"private_key":"${plain}"}` });
      } catch (e) {
        responses.push((e as Error).message, JSON.stringify((e as TRPCError).cause ?? null));
      }
      await withSecret(f.team.id, { id: a.id }, "deploy", actorOf(f.admin), async (v) => {
        assert.equal(v, `${plain}x`);
      });
    });
    const needles = [plain, saSecretPart, webhook, webhook.split("/").pop() as string];
    const wire = superjson.stringify(responses);
    for (const n of needles) {
      assert.ok(!wire.includes(n), "a tRPC response contains a plaintext secret");
      assert.ok(!output.includes(n), "a log line contains a plaintext secret");
    }
    const list = await listSecrets(f.team.id);
    assert.deepEqual(list.map((s) => [s.kind, s.label, s.currentVersion]), [["runpod", "RunPod prod", 2], ["gcp-service-account", "GCP", 1], ["slack-webhook", "Slack", 1]]);
    assert.equal(list[0].last4, `${plain}x`.slice(-4));
    assert.equal(list[0].createdByEmail, f.admin.email);
    const pg = await rawClient();
    assert.deepEqual(await scanDatabaseFor(pg, needles), [], "plaintext found in the database");
    // The scan can fail: plant a value and watch it being found.
    await pg.query(`UPDATE "Team" SET name = $1 WHERE id = $2`, [`leak ${plain}`, f.otherTeam.id]);
    assert.deepEqual(await scanDatabaseFor(pg, [plain]), ["Team.name"]);
    const audits = await db.auditLog.findMany({ where: { teamId: f.team.id } });
    assert.ok(audits.some((a) => a.action === "secret.use" && (a.metadata as { purpose?: string }).purpose === "deploy"));
    assert.ok(!JSON.stringify(audits.map((a) => a.metadata)).includes(plain));
    assert.equal((await verifyAuditChain(f.team.id)).ok, true);
  });

  test("tampering with ciphertext, AAD (secret id, version) or team id fails decryption", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const pg = await rawClient();
    const a = await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf a", value: secretValue("hf") });
    const b = await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf b", value: secretValue("hf") });
    assert.ok((await read(f.team.id, a.id)).startsWith("hf_"));

    // 1. A flipped ciphertext bit.
    await pg.query(`UPDATE "SecretVersion" SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE "secretId" = $1`, [a.id]);
    assert.equal(await code(read(f.team.id, a.id)), "INTERNAL");
    await pg.query(`UPDATE "SecretVersion" SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE "secretId" = $1`, [a.id]);
    assert.ok((await read(f.team.id, a.id)).startsWith("hf_"), "restoring the bit restores the value");

    // 2. AAD: b's sealed version copied under a's id does not open (bound to secret id).
    await pg.query(
      `UPDATE "SecretVersion" t SET ciphertext = s.ciphertext, iv = s.iv, "authTag" = s."authTag", "wrappedDataKey" = s."wrappedDataKey"
         FROM "SecretVersion" s WHERE t."secretId" = $1 AND s."secretId" = $2`,
      [a.id, b.id],
    );
    assert.equal(await code(read(f.team.id, a.id)), "INTERNAL");

    // 3. AAD: the version number is bound too.
    const c = await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf c", value: secretValue("hf") });
    await pg.query(`UPDATE "SecretVersion" SET version = 2 WHERE "secretId" = $1`, [c.id]);
    await pg.query(`UPDATE "Secret" SET "currentVersion" = 2 WHERE id = $1`, [c.id]);
    assert.equal(await code(read(f.team.id, c.id)), "INTERNAL");

    // 4. Team id: moving a secret to another team makes it unreadable there.
    const d = await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf d", value: secretValue("hf") });
    await pg.query(`UPDATE "Secret" SET "teamId" = $1 WHERE id = $2`, [f.otherTeam.id, d.id]);
    assert.equal(await code(read(f.otherTeam.id, d.id)), "INTERNAL");
    assert.equal(await code(read(f.team.id, d.id)), "NOT_FOUND");

    // 5. Small encrypted fields: AAD = team + purpose.
    const blob = encryptForTeam(f.team.id, "component:c1:headers", '{"authorization":"Bearer up"}');
    assert.equal(decryptForTeam(f.team.id, "component:c1:headers", blob), '{"authorization":"Bearer up"}');
    assert.throws(() => decryptForTeam(f.otherTeam.id, "component:c1:headers", blob), /cannot be decrypted/);
    assert.throws(() => decryptForTeam(f.team.id, "component:c2:headers", blob), /cannot be decrypted/);
    const ct = Buffer.from(blob.ct, "base64");
    ct[0] ^= 1;
    assert.throws(() => decryptForTeam(f.team.id, "component:c1:headers", { ...blob, ct: ct.toString("base64") }), /cannot be decrypted/);
  });

  test("rotation keeps history and serves the newest version", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const v1 = secretValue("rpa");
    const v2 = secretValue("rpa");
    const s = await createSecret(f.team.id, actor, { kind: "runpod", label: "rp", value: v1 });
    const r = await rotateSecret(f.team.id, actor, s.id, v2);
    assert.equal(r.currentVersion, 2);
    assert.equal(r.last4, v2.slice(-4));
    assert.equal(await read(f.team.id, s.id), v2);
    const versions = await db.secretVersion.findMany({ where: { secretId: s.id }, orderBy: { version: "asc" } });
    assert.deepEqual(versions.map((v) => v.version), [1, 2]);
    const actions = (await db.auditLog.findMany({ where: { teamId: f.team.id }, orderBy: { seq: "asc" } })).map((a) => a.action);
    assert.deepEqual(actions, ["secret.create", "secret.rotate", "secret.use"]);
  });

  test("master-key rotation re-wraps every data key and keeps every secret readable", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const oldKey = process.env.TUNA_MASTER_KEY as string;
    const values = [secretValue("a"), secretValue("b"), secretValue("c")];
    const ids: string[] = [];
    for (const v of values) ids.push((await createSecret(f.team.id, actor, { kind: "huggingface", label: v.slice(0, 5), value: v })).id);
    await rotateSecret(f.team.id, actor, ids[0], `${values[0]}-2`);
    values[0] = `${values[0]}-2`;
    const dep = await db.deployment.create({
      data: { teamId: f.team.id, slug: "d", model: "m", servedModelName: "m", mode: "serverless", status: "active", spec: {}, createdById: f.admin.id },
    });
    const comp = await db.deploymentComponent.create({
      data: { deploymentId: dep.id, kind: "serverless", provider: "local", upstreamHeadersCipher: encryptForTeam(f.team.id, "hdr", "Bearer upstream-xyz") as object },
    });
    const newKey = randomBytes(32).toString("base64");
    try {
      process.env.TUNA_MASTER_KEY = newKey;
      delete process.env.TUNA_MASTER_KEY_PREVIOUS;
      // Without the previous key nothing old can be opened: rotation really changed the key.
      assert.equal(await code(read(f.team.id, ids[1])), "INTERNAL");
      process.env.TUNA_MASTER_KEY_PREVIOUS = oldKey;
      // No downtime: with the old key in the keyring, reads work before the re-wrap.
      assert.equal(await read(f.team.id, ids[1]), values[1]);
      const res = await rewrapAllDataKeys({ batchSize: 2 });
      assert.equal(res.failures.length, 0);
      assert.ok(res.secretVersions.rewrapped >= 4, JSON.stringify(res));
      assert.ok(res.blobs.rewrapped >= 1);
      delete process.env.TUNA_MASTER_KEY_PREVIOUS;
      for (const [i, id] of ids.entries()) assert.equal(await read(f.team.id, id), values[i]);
      const stored = await db.deploymentComponent.findUniqueOrThrow({ where: { id: comp.id } });
      assert.equal(decryptForTeam(f.team.id, "hdr", stored.upstreamHeadersCipher), "Bearer upstream-xyz");
      const again = await rewrapAllDataKeys();
      assert.equal(again.secretVersions.rewrapped + again.blobs.rewrapped, 0, "a second run has nothing to do");
    } finally {
      process.env.TUNA_MASTER_KEY = oldKey;
      delete process.env.TUNA_MASTER_KEY_PREVIOUS;
    }
    // Rows are under the new key now; rotating back (old key current, new one previous) restores the
    // original state for the tests that follow, and shows rotation works in both directions.
    process.env.TUNA_MASTER_KEY_PREVIOUS = newKey;
    try {
      assert.equal(await read(f.team.id, ids[2]), values[2]);
      assert.equal((await rewrapAllDataKeys()).failures.length, 0);
    } finally {
      delete process.env.TUNA_MASTER_KEY_PREVIOUS;
    }
    assert.equal(await read(f.team.id, ids[0]), values[0]);
  });

  test("scripts/rotate-master-key.ts re-wraps everything and reports counts", async () => {
    const f = await makeRoleFixture();
    const value = secretValue("hf");
    const s = await createSecret(f.team.id, actorOf(f.admin), { kind: "huggingface", label: "hf", value });
    const oldKey = process.env.TUNA_MASTER_KEY as string;
    const newKey = randomBytes(32).toString("hex");
    const { execFile } = await import("node:child_process");
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(process.execPath, ["--import", "tsx", "scripts/rotate-master-key.ts"], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
        );
      });
    const missing = await run({ TUNA_MASTER_KEY: newKey, TUNA_MASTER_KEY_PREVIOUS: "" });
    assert.equal(missing.code, 1, missing.out);
    assert.match(missing.out, /still under an older key/);
    const ok = await run({ TUNA_MASTER_KEY: newKey, TUNA_MASTER_KEY_PREVIOUS: oldKey });
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /secret versions: [1-9]\d* re-wrapped/);
    assert.ok(!ok.out.includes(value) && !ok.out.includes(newKey) && !ok.out.includes(oldKey), "the script prints no secret or key");
    process.env.TUNA_MASTER_KEY = newKey;
    try {
      assert.equal(await read(f.team.id, s.id), value);
    } finally {
      process.env.TUNA_MASTER_KEY = oldKey;
    }
    // Put things back for the tests that follow (they run under the original key).
    const back = await run({ TUNA_MASTER_KEY: oldKey, TUNA_MASTER_KEY_PREVIOUS: newKey });
    assert.equal(back.code, 0, back.out);
  });

  test("permissions: viewers cannot even list; developers list but cannot write", async () => {
    const f = await makeRoleFixture();
    const s = await callerFor(f.admin, f.team.id).vault.create({ kind: "huggingface", label: "hf", value: secretValue("hf") });
    assert.equal(await code(callerFor(f.viewer, f.team.id).vault.list()), "FORBIDDEN");
    assert.equal((await callerFor(f.developer, f.team.id).vault.list()).length, 1);
    assert.equal(await code(callerFor(f.developer, f.team.id).vault.create({ kind: "huggingface", label: "x", value: "hf_abcdefghijklmnop" })), "FORBIDDEN");
    assert.equal(await code(callerFor(f.developer, f.team.id).vault.rotate({ secretId: s.id, value: "hf_abcdefghijklmnop" })), "FORBIDDEN");
  });

  test("cross-tenant: another team cannot read, rotate, test, delete or use a secret", async () => {
    const f = await makeRoleFixture();
    const value = secretValue("hf");
    const s = await callerFor(f.admin, f.team.id).vault.create({ kind: "huggingface", label: "hf", value });
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    assert.deepEqual(await stranger.vault.list(), []);
    assert.equal(await code(stranger.vault.rotate({ secretId: s.id, value: "hf_abcdefghijklmnop" })), "NOT_FOUND");
    assert.equal(await code(stranger.vault.test({ secretId: s.id })), "NOT_FOUND");
    assert.equal(await code(stranger.vault.delete({ secretId: s.id })), "NOT_FOUND");
    assert.equal(await code(callerFor(f.outsider, f.team.id).vault.list()), "NOT_FOUND");
    assert.equal(await code(read(f.otherTeam.id, s.id)), "NOT_FOUND");
    assert.equal(await code(withSecret(f.otherTeam.id, { kind: "huggingface" }, "deploy", actorOf(f.outsider), async (v) => v)), "NOT_FOUND");
    assert.equal(await read(f.team.id, s.id), value, "untouched");
  });

  test("delete is soft: gone from lists and lookups, history kept", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    const s = await admin.vault.create({ kind: "huggingface", label: "hf", value: secretValue("hf") });
    await admin.vault.delete({ secretId: s.id });
    assert.deepEqual(await admin.vault.list(), []);
    assert.equal(await code(read(f.team.id, s.id)), "NOT_FOUND");
    assert.equal(await db.secretVersion.count({ where: { secretId: s.id } }), 1);
    assert.equal(await code(admin.vault.delete({ secretId: s.id })), "NOT_FOUND");
  });

  test("providerCredentials maps provider to kind, shapes credentials, audits the purpose", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const err = await providerCredentials(f.team.id, "runpod", "deploy", actor, async () => "x").catch((e: DomainError) => e);
    assert.ok(err instanceof DomainError);
    assert.equal(err.code, "PRECONDITION_FAILED");
    assert.match(err.message, /Add a RunPod API key in the vault/);
    assert.deepEqual(await providerCredentials(f.team.id, "local", "deploy", actor, async (c) => c), {});
    const key = secretValue("rpa");
    const hf = secretValue("hf");
    await createSecret(f.team.id, actor, { kind: "runpod", label: "rp", value: key });
    await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf", value: hf });
    const creds = await providerCredentials(f.team.id, "runpod", "destroy", actor, async (c) => c);
    assert.deepEqual(creds, { apiKey: key, secrets: { HF_TOKEN: hf } });
    const uses = await db.auditLog.findMany({ where: { teamId: f.team.id, action: "secret.use" } });
    assert.deepEqual(uses.map((u) => (u.metadata as { purpose: string }).purpose), ["destroy", "destroy"]);
    // Wrong shape for the provider → actionable message naming fields, never the value.
    await createSecret(f.team.id, actor, { kind: "modal", label: "m", value: JSON.stringify({ tokenId: "ak-1", tokenSecret: "" }) }).catch(() => {});
    const cr = await providerCredentials(f.team.id, "cloudrun", "deploy", actor, async () => 1).catch((e: DomainError) => e);
    assert.ok(cr instanceof DomainError && /GCP service-account/.test(cr.message));
  });

  test("lastUsedAt is written at most once a minute", async () => {
    const f = await makeRoleFixture();
    const s = await createSecret(f.team.id, actorOf(f.admin), { kind: "huggingface", label: "hf", value: secretValue("hf") });
    await read(f.team.id, s.id);
    const first = (await db.secret.findUniqueOrThrow({ where: { id: s.id } })).lastUsedAt;
    assert.ok(first);
    await new Promise((r) => setTimeout(r, 20));
    await read(f.team.id, s.id);
    assert.deepEqual((await db.secret.findUniqueOrThrow({ where: { id: s.id } })).lastUsedAt, first);
  });

  test("test runs the provider's preflight and records the outcome", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
    const good = await createSecret(f.team.id, actor, { kind: "runpod", label: "good", value: RUNPOD_KEY });
    const r1 = await testSecret(f.team.id, actor, good.id, { ctx });
    assert.equal(r1.ok, true, r1.message);
    assert.ok(fake.requests.some((r) => r.headers.authorization === `Bearer ${RUNPOD_KEY}`), "preflight called the provider API");
    await rotateSecret(f.team.id, actor, good.id, secretValue("rpa"));
    const r2 = await testSecret(f.team.id, actor, good.id, { ctx });
    assert.equal(r2.ok, false);
    const meta = (await listSecrets(f.team.id))[0];
    assert.equal(meta.lastTestOk, false);
    assert.ok(meta.lastTestedAt);
    assert.match(meta.lastTestMessage ?? "", /RunPod/);
    const actions = (await db.auditLog.findMany({ where: { teamId: f.team.id }, orderBy: { seq: "asc" } })).map((a) => a.action);
    assert.deepEqual(actions.filter((a) => a.startsWith("secret.test")), ["secret.test", "secret.test"]);
  });

  test("test checks the secret it is given, not the team's newest of that kind", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
    const good = await createSecret(f.team.id, actor, { kind: "runpod", label: "good", value: RUNPOD_KEY });
    await new Promise((r) => setTimeout(r, 5));
    const bad = await createSecret(f.team.id, actor, { kind: "runpod", label: "newer, wrong", value: secretValue("rpa") });
    const before = fake.requests.length;
    const r = await testSecret(f.team.id, actor, good.id, { ctx });
    assert.equal(r.ok, true, r.message);
    assert.ok(fake.requests.slice(before).every((x) => x.headers.authorization === `Bearer ${RUNPOD_KEY}`), "only the tested key was sent");
    assert.equal((await testSecret(f.team.id, actor, bad.id, { ctx })).ok, false);
    const meta = new Map((await listSecrets(f.team.id)).map((m) => [m.id, m.lastTestOk]));
    assert.equal(meta.get(good.id), true);
    assert.equal(meta.get(bad.id), false);
  });

  test("test passes only when the provider confirmed the key; unreachable is 'could not verify'", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
    const s = await createSecret(f.team.id, actor, { kind: "runpod", label: "rp", value: RUNPOD_KEY });
    const stored = async () => {
      const meta = (await listSecrets(f.team.id)).find((x) => x.id === s.id)!;
      return { ok: meta.lastTestOk, outcome: meta.lastTestOutcome, tested: meta.lastTestedAt !== null, message: meta.lastTestMessage };
    };
    assert.equal((await stored()).outcome, null, "never tested");

    // Valid key, provider answers → passed.
    const passed = await testSecret(f.team.id, actor, s.id, { ctx });
    assert.equal(passed.outcome, "passed", passed.message);
    assert.equal(passed.ok, true);
    assert.deepEqual(await stored(), { ok: true, outcome: "passed", tested: true, message: "RunPod accepted the credentials." });

    // No network (the QA case: "fetch failed") → could not verify, not a pass and not a credential failure.
    const offline = await testSecret(f.team.id, actor, s.id, { ctx: { baseUrls: { api: "http://127.0.0.1:1/v2", runtime: "http://127.0.0.1:1/runtime/v2" }, sleep: async () => {} } });
    assert.equal(offline.outcome, "unverified", offline.message);
    assert.equal(offline.ok, false);
    assert.match(offline.message, /RunPod did not confirm the credentials: .*network error/);
    assert.deepEqual(offline.findings.map((x) => x.code), ["catalog_unavailable"]);
    assert.deepEqual({ ...(await stored()), message: undefined }, { ok: null, outcome: "unverified", tested: true, message: undefined });

    // RunPod up but failing (5xx on every retry) → could not verify.
    fake.failNext("GET", /^\/v2\/catalog\/gpus$/, { status: 503, times: RUNPOD_MAX_ATTEMPTS });
    const down = await testSecret(f.team.id, actor, s.id, { ctx });
    assert.equal(down.outcome, "unverified", down.message);
    assert.match(down.message, /HTTP 503/);
    assert.equal((await stored()).outcome, "unverified");

    // Refused key (403 from the provider) → failed, with the credential finding.
    fake.failNext("GET", /^\/v2\/catalog\/gpus$/, { status: 403 });
    const forbidden = await testSecret(f.team.id, actor, s.id, { ctx });
    assert.equal(forbidden.outcome, "failed", forbidden.message);
    assert.deepEqual(forbidden.findings.map((x) => x.code), ["unauthorized"]);
    assert.match(forbidden.message, /RunPod rejected the API key \(HTTP 403\)/);
    assert.deepEqual({ ...(await stored()), message: undefined }, { ok: false, outcome: "failed", tested: true, message: undefined });

    // Wrong key (401) → failed.
    await rotateSecret(f.team.id, actor, s.id, secretValue("rpa"));
    assert.equal((await stored()).outcome, null, "rotation clears the last test");
    const wrong = await testSecret(f.team.id, actor, s.id, { ctx });
    assert.equal(wrong.outcome, "failed");
    assert.match(wrong.message, /HTTP 401/);

    const audits = await db.auditLog.findMany({ where: { teamId: f.team.id, action: "secret.test" }, orderBy: { seq: "asc" } });
    assert.deepEqual(audits.map((a) => (a.metadata as { outcome: string }).outcome), ["passed", "unverified", "unverified", "failed", "failed"]);
  });

  test("a kind no provider can check is never reported as passed", async () => {
    const f = await makeRoleFixture();
    const actor = actorOf(f.admin);
    const hf = await createSecret(f.team.id, actor, { kind: "huggingface", label: "hf", value: secretValue("hf") });
    const r = await testSecret(f.team.id, actor, hf.id);
    assert.equal(r.outcome, "unverified");
    assert.equal(r.ok, false);
    assert.match(r.message, /well-formed/);
    assert.equal((await listSecrets(f.team.id))[0].lastTestOutcome, "unverified");
  });
});

describe("Slack webhook URLs must have Slack's incoming-webhook shape (QA audit)", () => {
  test("other hosts and paths are refused with a plain message; hooks.slack.com, hooks.slack-gov.com and an operator-allowed stand-in are accepted", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    const allowed = process.env.TUNA_ALLOW_PRIVATE_URLS;
    process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";
    try {
      for (const value of [
        "https://example.com/services/T0001/B0001/abcdefghijkl",
        "https://hooks.slack.com/foo",
        "https://hooks.slack.com/services/T0001/B0001",
        "https://hooks.slack.com/services/x/y/abcdefghijkl",
        "https://hooks.slack.com.evil.example/services/T0001/B0001/abcdefghijkl",
        "https://hooks.slack.com/workflows/T0001/A0001/123/abcdefghijkl",
        "https://8.8.8.8/services/T0001/B0001/abcdefghijkl",
      ]) {
        await assert.rejects(admin.vault.create({ kind: "slack-webhook", label: "s", value }), (e: Error) => {
          assert.equal(
            e.message,
            "Cannot store this Slack incoming webhook URL: it must look like https://hooks.slack.com/services/T…/B…/… (copy it from Incoming Webhooks in your Slack app's settings).",
            value,
          );
          return true;
        }, value);
      }
      for (const value of [
        "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/AbCdEfGhIjKlMnOpQrStUvWx",
        "https://hooks.slack-gov.com/services/T0A1B2C3D/B0A1B2C3D/AbCdEfGhIjKlMnOpQrStUvWx",
        "http://127.0.0.1:9/services/T0TEST/B0TEST/abcdefghijkl",
      ]) {
        assert.equal((await admin.vault.create({ kind: "slack-webhook", label: "s", value })).kind, "slack-webhook", value);
      }
      // A generic JSON webhook keeps taking any (allowed) https URL.
      assert.equal((await admin.vault.create({ kind: "webhook", label: "w", value: "https://example.com/services/anything" })).kind, "webhook");
      // The private-address check still comes first for Slack URLs.
      delete process.env.TUNA_ALLOW_PRIVATE_URLS;
      await assert.rejects(admin.vault.create({ kind: "slack-webhook", label: "s", value: "https://10.0.0.5/services/T0001/B0001/abcdefghijkl" }), /must not point at a private or loopback address/);
    } finally {
      if (allowed === undefined) delete process.env.TUNA_ALLOW_PRIVATE_URLS;
      else process.env.TUNA_ALLOW_PRIVATE_URLS = allowed;
    }
  });

  test("the list says what uses each secret: the providers of its kind, and the alert channels whose URL it is", async () => {
    const f = await makeRoleFixture();
    const admin = callerFor(f.admin, f.team.id);
    await admin.vault.create({ kind: "runpod", label: "RunPod", value: secretValue("rpa") });
    await admin.vault.create({ kind: "huggingface", label: "HF", value: secretValue("hf") });
    const list = await callerFor(f.developer, f.team.id).vault.list();
    assert.deepEqual(list.map((s) => [s.label, s.usedBy]), [
      ["RunPod", { providers: ["RunPod"], alertChannels: [] }],
      ["HF", { providers: [], alertChannels: [] }],
    ]);
  });
});
