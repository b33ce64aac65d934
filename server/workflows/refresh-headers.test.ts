import { after, before, describe, test } from "node:test";
import { Prisma } from "@prisma/client";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { InngestTestEngine } from "@inngest/test";
import { useTestDatabase } from "../test/db";
import { makeTeam, makeUser } from "../test/fixtures";
import { db } from "../db";
import { createChannel } from "../alerts";
import { createSecret, decryptForTeam } from "../vault";
import { buildRouterSnapshot, snapshotVersion, upstreamHeadersPurpose } from "../routerconfig";
import { lifecycle } from "../deployments";
import { refreshComponentHeaders } from "../deployments/upstream-headers";
import { makeTestSpec } from "../providers/base/testing";
import { registerProvider, unregisterProvider, type Provider } from "../providers";
import { CloudrunFake } from "../providers/cloudrun/fake";
import { cloudrunProvider } from "../providers/cloudrun/index";
import { planCloudrun } from "../providers/cloudrun/plan";
import { captureEvents } from "./test/setup";
import { createRecordingProvider } from "./test/recording-provider";
import { refreshUpstreamHeadersFunction } from "./functions";

await useTestDatabase();
const sent = captureEvents();

const MIN = 60_000;

/** One Google project per team: its own service-account key, its own fake token endpoint and Cloud Run. */
function gcpAccount(project: string) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const email = `deployer@${project}.iam.gserviceaccount.com`;
  const fake = new CloudrunFake({ project, clientEmail: email, publicKeyPem: publicKey });
  const saJson = () => JSON.stringify({ type: "service_account", project_id: project, private_key_id: `kid-${project}`, private_key: privateKey, client_email: email, token_uri: fake.tokenUri });
  return { project, email, privateKey, keyLine: privateKey.split("\n")[1], fake, saJson };
}
type Account = ReturnType<typeof gcpAccount>;

const accA = gcpAccount("proj-team-a");
const accB = gcpAccount("proj-team-b");
const accC = gcpAccount("proj-team-c");

/** The claims of a JWT (the fake's ID tokens carry aud = service URL and email = the key's account). */
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString()) as Record<string, unknown>;
/** target_audience and iss of every ID-token request a fake received. */
const idTokenRequests = (acc: Account) =>
  acc.fake.requests
    .filter((r) => r.path === "/token")
    .map((r) => claimsOf(new URLSearchParams(r.raw).get("assertion") ?? ""))
    .filter((c) => typeof c.target_audience === "string")
    .map((c) => ({ aud: c.target_audience as string, iss: c.iss as string }));

let n = 0;
/**
 * A serving Cloud Run deployment as the deploy workflow leaves it: the service really created on the team's
 * fake, the component row with its plan, ids and sealed headers, minted `ageMin` minutes ago.
 */
async function servingCloudrun(team: { id: string }, userId: string, acc: Account, ageMin: number, opts: { public?: boolean } = {}) {
  const name = `tuna-refresh-${++n}-${randomBytes(2).toString("hex")}`;
  const plan = planCloudrun({ ...makeTestSpec({ name }), ...(opts.public ? { cloudrun: { public: true } } : {}) });
  const comp = await cloudrunProvider.deploy(plan, { serviceAccountJson: acc.saJson() }, { baseUrls: acc.fake.baseUrls, sleep: async () => {} });
  const d = await db.deployment.create({
    data: { teamId: team.id, slug: name, model: "Qwen/Qwen3-0.6B", servedModelName: "qwen", mode: "serverless", status: "active", serverlessProvider: "cloudrun", serverlessGpu: "L4", spec: {}, createdById: userId },
  });
  const c = await db.deploymentComponent.create({
    data: {
      deploymentId: d.id,
      kind: "serverless",
      provider: "cloudrun",
      status: "ready",
      endpointUrl: comp.endpointUrl,
      externalIds: comp.externalIds,
      plan: plan as object,
      ...lifecycle.sealUpstreamHeaders(team.id, d.id, "serverless", comp.upstreamHeaders, new Date(Date.now() - ageMin * MIN)),
    },
  });
  return { deploymentId: d.id, componentId: c.id, uri: comp.externalIds.uri, headers: comp.upstreamHeaders };
}

const storedRow = (componentId: string) => db.deploymentComponent.findUniqueOrThrow({ where: { id: componentId } });
const storedHeaders = async (teamId: string, x: { deploymentId: string; componentId: string }) =>
  JSON.parse(decryptForTeam(teamId, upstreamHeadersPurpose(x.deploymentId, "serverless"), (await storedRow(x.componentId)).upstreamHeadersCipher)) as Record<string, string>;
const snapshotHeaders = async (deploymentId: string) => (await buildRouterSnapshot()).deployments.find((d) => d.id === deploymentId)?.backends[0]?.headers;
const timeline = (deploymentId: string) => db.deploymentEvent.findMany({ where: { deploymentId, step: "refresh-headers-serverless" }, orderBy: { at: "asc" } });
const refreshUses = (teamId: string) =>
  db.auditLog.findMany({ where: { teamId, action: "secret.use", metadata: { path: ["purpose"], equals: "refresh" } }, select: { targetId: true } });

/** Everything written to the console while `fn` runs. */
async function captureConsole<T>(fn: () => Promise<T>): Promise<{ value: T; logged: string }> {
  const lines: string[] = [];
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
  for (const k of Object.keys(saved) as Array<keyof typeof saved>) console[k] = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    return { value: await fn(), logged: lines.join("\n") };
  } finally {
    Object.assign(console, saved);
  }
}

const runCron = () =>
  captureConsole(async () => {
    const t = new InngestTestEngine({ function: refreshUpstreamHeadersFunction });
    const { result, error } = await t.execute({ events: [{ name: "inngest/scheduled.timer", data: { cron: "*/10 * * * *" } }] });
    assert.equal(error, undefined);
    return result as { due: number; refreshed: number; failed: number };
  });

before(async () => {
  await Promise.all([accA.fake.start(), accB.fake.start(), accC.fake.start()]);
});
after(async () => {
  await Promise.all([accA.fake.close(), accB.fake.close(), accC.fake.close()]);
});

describe("refresh-upstream-headers cron", () => {
  let user: Awaited<ReturnType<typeof makeUser>>;
  let teamA: { id: string };
  let teamB: { id: string };
  let teamC: { id: string };
  const deps = {} as Record<"expiredA" | "freshA" | "publicA" | "expiredB" | "failingC", Awaited<ReturnType<typeof servingCloudrun>>>;
  let runpodComponentId = "";
  let secretsOf: string[] = [];

  before(async () => {
    user = await makeUser("admin");
    teamA = await makeTeam([{ user, role: "admin" }], "RefreshA");
    teamB = await makeTeam([{ user, role: "admin" }], "RefreshB");
    teamC = await makeTeam([{ user, role: "admin" }], "RefreshC");
    const actor = { userId: user.id, label: user.email };
    for (const [team, acc] of [[teamA, accA], [teamB, accB], [teamC, accC]] as const) {
      await createSecret(team.id, actor, { kind: "gcp-service-account", label: "deployer", value: acc.saJson() });
    }
    await createChannel(teamC.id, actor, { name: "ops", kind: "webhook", url: "https://hooks.example.test/tuna", events: ["deployment.stuck"] });
    deps.expiredA = await servingCloudrun(teamA, user.id, accA, 120);
    deps.freshA = await servingCloudrun(teamA, user.id, accA, 5);
    deps.publicA = await servingCloudrun(teamA, user.id, accA, 120, { public: true });
    deps.expiredB = await servingCloudrun(teamB, user.id, accB, 120);
    deps.failingC = await servingCloudrun(teamC, user.id, accC, 120);
    // A provider without refresh whose (static) headers are just as old: never touched.
    const rp = await db.deployment.create({
      data: { teamId: teamA.id, slug: "runpod-static", model: "Qwen/Qwen3-0.6B", servedModelName: "qwen", mode: "serverless", status: "active", serverlessProvider: "runpod", serverlessGpu: "L4", spec: {}, createdById: user.id },
    });
    runpodComponentId = (
      await db.deploymentComponent.create({
        data: {
          deploymentId: rp.id, kind: "serverless", provider: "runpod", status: "ready", endpointUrl: "https://api.runpod.ai/v2/abc/openai",
          ...lifecycle.sealUpstreamHeaders(teamA.id, rp.id, "serverless", { authorization: "Bearer rp-static-key" }, new Date(Date.now() - 120 * MIN)),
        },
      })
    ).id;
    secretsOf = [accA, accB, accC].flatMap((a) => [a.keyLine, a.privateKey, a.saJson()]);
    for (const a of [accA, accB, accC]) a.fake.requests.length = 0;
  });

  test("expired headers are re-minted with the owning team's key and reach the router snapshot under a new version; the rest are left alone", async () => {
    // Google refuses team C's key; its error text echoes a line of the key, which must not travel further.
    accC.fake.failNext("POST", /^\/token$/, { status: 400, times: 2, body: { error: "invalid_grant", error_description: `Invalid JWT Signature for ${accC.keyLine}` } });
    const v0 = await snapshotVersion();
    const before = {
      freshA: (await storedRow(deps.freshA.componentId)).upstreamHeadersCipher,
      publicA: (await storedRow(deps.publicA.componentId)).upstreamHeadersCipher,
      failingC: (await storedRow(deps.failingC.componentId)).upstreamHeadersCipher,
      runpod: (await storedRow(runpodComponentId)).upstreamHeadersCipher,
    };

    const startedAt = new Date();
    const { value: result, logged } = await runCron();
    assert.deepEqual(result, { due: 3, refreshed: 2, failed: 1 });

    // New tokens, for the right service, minted with the right team's key, in the snapshot routers fetch.
    for (const [dep, acc] of [[deps.expiredA, accA], [deps.expiredB, accB]] as const) {
      const headers = await snapshotHeaders(dep.deploymentId);
      assert.ok(headers?.Authorization, "snapshot carries the upstream auth");
      assert.notEqual(headers.Authorization, dep.headers.Authorization, "a new token, not the expired one");
      const claims = claimsOf(headers.Authorization.replace(/^Bearer /, ""));
      assert.equal(claims.aud, dep.uri);
      assert.equal(claims.email, acc.email);
      const row = await storedRow(dep.componentId);
      assert.ok(row.upstreamHeadersAt && row.upstreamHeadersAt >= startedAt, "mint time recorded");
      assert.ok(!JSON.stringify(row.upstreamHeadersCipher).includes(headers.Authorization.slice(7, 40)), "stored sealed, not in clear");
    }
    assert.ok((await snapshotVersion()) > v0, "router config version moved");

    // Each team's key was used for that team's services only.
    assert.deepEqual(idTokenRequests(accA), [{ aud: deps.expiredA.uri, iss: accA.email }]);
    assert.deepEqual(idTokenRequests(accB), [{ aud: deps.expiredB.uri, iss: accB.email }]);
    assert.deepEqual(idTokenRequests(accC), [{ aud: deps.failingC.uri, iss: accC.email }]);
    const secretOf = async (teamId: string) => (await db.secret.findFirstOrThrow({ where: { teamId, kind: "gcp-service-account" } })).id;
    assert.deepEqual(await refreshUses(teamA.id), [{ targetId: await secretOf(teamA.id) }]);
    assert.deepEqual(await refreshUses(teamB.id), [{ targetId: await secretOf(teamB.id) }]);
    assert.deepEqual(await refreshUses(teamC.id), [{ targetId: await secretOf(teamC.id) }]);

    // Fresh, public (no headers to expire) and non-refreshing providers: untouched.
    assert.deepEqual((await storedRow(deps.freshA.componentId)).upstreamHeadersCipher, before.freshA);
    assert.deepEqual((await storedRow(deps.publicA.componentId)).upstreamHeadersCipher, before.publicA);
    assert.deepEqual((await storedRow(runpodComponentId)).upstreamHeadersCipher, before.runpod);
    assert.deepEqual(await storedHeaders(teamA.id, { deploymentId: deps.freshA.deploymentId, componentId: deps.freshA.componentId }), deps.freshA.headers);

    // The failing team keeps its old headers, gets one timeline row and one alert, and nothing leaks.
    assert.deepEqual((await storedRow(deps.failingC.componentId)).upstreamHeadersCipher, before.failingC);
    const events = await timeline(deps.failingC.deploymentId);
    assert.deepEqual(events.map((e) => e.status), ["failed"]);
    assert.match(events[0].message ?? "", /cloudrun upstream auth could not be refreshed \(current headers expire at .+\): .*invalid_grant/);
    const deliveries = await db.alertDelivery.findMany({ where: { channel: { teamId: teamC.id } } });
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0].event, "deployment.stuck");
    assert.ok(sent.some((s) => s.name === "alert/send" && s.data.teamId === teamC.id));
    assert.equal(await db.alertDelivery.count({ where: { channel: { teamId: { in: [teamA.id, teamB.id] } } } }), 0);
    assert.match(logged, new RegExp(`deployment ${deps.failingC.deploymentId}.*invalid_grant`));

    const newTokens = [await snapshotHeaders(deps.expiredA.deploymentId), await snapshotHeaders(deps.expiredB.deploymentId)].map((h) => h!.Authorization.slice(7));
    const oldTokens = Object.values(deps).map((d) => d.headers.Authorization?.slice(7)).filter((t): t is string => !!t);
    const visible = [logged, JSON.stringify(result), ...events.map((e) => e.message), JSON.stringify(deliveries.map((d) => d.payload)), JSON.stringify(sent)].join("\n");
    for (const s of [...secretsOf, ...newTokens, ...oldTokens]) assert.ok(!visible.includes(s), "a key or token reached a log, a step result, the timeline or an alert");
  });

  test("the next run refreshes nothing fresh, retries the failing team without a second alert, then records its recovery", async () => {
    for (const a of [accA, accB, accC]) a.fake.requests.length = 0;
    const v0 = await snapshotVersion();
    const second = await runCron();
    assert.deepEqual(second.value, { due: 1, refreshed: 0, failed: 1 });
    assert.deepEqual(idTokenRequests(accA), []);
    assert.deepEqual(idTokenRequests(accB), []);
    assert.equal(await snapshotVersion(), v0, "no new version without new headers");
    assert.equal((await timeline(deps.failingC.deploymentId)).length, 1, "no second timeline row");
    assert.equal(await db.alertDelivery.count({ where: { channel: { teamId: teamC.id } } }), 1, "no second alert");

    // Google accepts the key again (the injected failures are used up).
    const third = await runCron();
    assert.deepEqual(third.value, { due: 1, refreshed: 1, failed: 0 });
    assert.ok((await snapshotVersion()) > v0);
    const claims = claimsOf((await snapshotHeaders(deps.failingC.deploymentId))!.Authorization.slice(7));
    assert.equal(claims.email, accC.email);
    assert.deepEqual((await timeline(deps.failingC.deploymentId)).map((e) => e.status), ["failed", "ok"]);

    assert.deepEqual((await runCron()).value, { due: 0, refreshed: 0, failed: 0 });
  });

});

describe("refreshComponentHeaders races", () => {
  // A provider whose refresh lets the test act while the call is in flight (a redeploy, a destroy).
  let during: (() => Promise<void>) | null = null;
  const probe: Provider = {
    ...createRecordingProvider("refresh-probe", "serverless"),
    upstreamHeadersTtlMs: 60 * MIN,
    async refreshUpstreamHeaders() {
      await during?.();
      return { authorization: "Bearer probe-new-token" };
    },
  };
  let teamId = "";
  let userId = "";
  before(async () => {
    registerProvider(probe, { replace: true });
    const u = await makeUser("probe");
    userId = u.id;
    teamId = (await makeTeam([{ user: u, role: "admin" }], "Probe")).id;
  });
  after(() => {
    unregisterProvider(probe.name);
  });

  async function probeComponent() {
    const d = await db.deployment.create({
      data: { teamId, slug: `probe-${++n}`, model: "Qwen/Qwen3-0.6B", servedModelName: "qwen", mode: "serverless", status: "active", serverlessProvider: probe.name, serverlessGpu: "L4", spec: {}, createdById: userId },
    });
    const c = await db.deploymentComponent.create({
      data: {
        deploymentId: d.id, kind: "serverless", provider: probe.name, status: "ready", endpointUrl: "http://127.0.0.1:9/probe",
        ...lifecycle.sealUpstreamHeaders(teamId, d.id, "serverless", { authorization: "Bearer probe-old-token" }, new Date(Date.now() - 45 * MIN)),
      },
    });
    return { deploymentId: d.id, componentId: c.id };
  }

  test("stored sealed and published when nothing changed meanwhile", async () => {
    const x = await probeComponent();
    const v0 = await snapshotVersion();
    during = null;
    assert.deepEqual(await refreshComponentHeaders(x.componentId), { status: "refreshed" });
    assert.deepEqual(await storedHeaders(teamId, x), { authorization: "Bearer probe-new-token" });
    assert.ok((await snapshotVersion()) > v0);
  });

  test("a redeploy that wrote newer headers during the call wins", async () => {
    const x = await probeComponent();
    during = async () => {
      await db.deploymentComponent.update({
        where: { id: x.componentId },
        data: lifecycle.sealUpstreamHeaders(teamId, x.deploymentId, "serverless", { authorization: "Bearer redeployed-token" }),
      });
    };
    const v0 = await snapshotVersion();
    assert.deepEqual(await refreshComponentHeaders(x.componentId), { status: "skipped", reason: "component changed meanwhile" });
    assert.deepEqual(await storedHeaders(teamId, x), { authorization: "Bearer redeployed-token" });
    assert.equal(await snapshotVersion(), v0);
  });

  test("a destroy during the call is not undone; a destroyed component is not refreshed", async () => {
    const x = await probeComponent();
    during = async () => {
      await db.deploymentComponent.update({ where: { id: x.componentId }, data: { status: "destroyed", upstreamHeadersCipher: Prisma.DbNull, upstreamHeadersAt: null } });
    };
    assert.deepEqual(await refreshComponentHeaders(x.componentId), { status: "skipped", reason: "component changed meanwhile" });
    assert.equal((await storedRow(x.componentId)).upstreamHeadersCipher, null);
    during = null;
    assert.deepEqual(await refreshComponentHeaders(x.componentId), { status: "skipped", reason: "not serving" });
  });
});

describe("refresh through the provider contract", () => {
  test("Cloud Run declares the 1 h ID-token lifetime and refreshes through the optional contract member", async () => {
    const p: Provider = cloudrunProvider;
    assert.equal(p.upstreamHeadersTtlMs, 3_600_000);
    assert.equal(typeof p.refreshUpstreamHeaders, "function");
    const plan = planCloudrun(makeTestSpec({ name: "tuna-contract-check" }));
    assert.ok(!plan.notes.join(" ").includes("call cloudrunProvider.refreshUpstreamHeaders"), "the plan no longer asks the user to refresh by hand");
    assert.ok(plan.notes.some((x) => /re-mints it .* every 30 minutes/.test(x)));
  });
});
