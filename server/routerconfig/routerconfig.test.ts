import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { encryptForTeam } from "../vault";
import { buildRouterSnapshot, bumpRouterConfigVersion, routerTokenValid, snapshotVersion, upstreamHeadersPurpose } from "./index";

// Outbound URLs to private addresses need the operator's allowlist: SkyServe load balancers of these fixtures sit at 10.0.0.5/6 on the operator's network.
process.env.TUNA_ALLOW_PRIVATE_URLS = "10.0.0.5,10.0.0.6";

await useTestDatabase();

async function deployment(teamId: string, userId: string, over: { status?: "active" | "degraded" | "failed" | "destroyed"; mode?: "hybrid" | "serverless" | "spot"; slug?: string } = {}) {
  return db.deployment.create({
    data: {
      teamId,
      slug: over.slug ?? "qwen",
      model: "Qwen/Qwen3-0.6B",
      servedModelName: "Qwen/Qwen3-0.6B",
      mode: over.mode ?? "hybrid",
      status: over.status ?? "active",
      spec: { serverlessScaling: { maxWorkers: 3, concurrency: 4, idleTimeoutS: 30 } },
      createdById: userId,
    },
  });
}

describe("router snapshot", () => {
  test("live deployments with their backends, decrypted upstream headers and routing", async () => {
    const f = await makeRoleFixture();
    const d = await deployment(f.team.id, f.admin.id);
    const svl = await db.deploymentComponent.create({
      data: {
        deploymentId: d.id, kind: "serverless", provider: "runpod", status: "ready", endpointUrl: "https://api.runpod.ai/v2/abc/openai",
        upstreamHeadersCipher: encryptForTeam(f.team.id, upstreamHeadersPurpose(d.id, "serverless"), JSON.stringify({ authorization: "Bearer rp-upstream" })) as object,
      },
    });
    const spot = await db.deploymentComponent.create({
      data: { deploymentId: d.id, kind: "spot", provider: "skyserve", status: "ready", endpointUrl: "http://10.0.0.5:30001", replicasReady: 2, replicasTotal: 2 },
    });
    const cold = await deployment(f.team.id, f.admin.id, { slug: "cold", mode: "spot" });
    await db.deploymentComponent.create({ data: { deploymentId: cold.id, kind: "spot", provider: "skyserve", status: "creating", endpointUrl: "http://10.0.0.6:30001" } });
    const failed = await deployment(f.team.id, f.admin.id, { status: "failed", slug: "failed" });
    await db.deploymentComponent.create({ data: { deploymentId: failed.id, kind: "serverless", provider: "local", status: "ready", endpointUrl: "http://127.0.0.1:1" } });
    const gone = await deployment(f.team.id, f.admin.id, { slug: "gone", mode: "serverless" });
    await db.deploymentComponent.create({ data: { deploymentId: gone.id, kind: "serverless", provider: "local", status: "destroyed", endpointUrl: "http://127.0.0.1:1" } });

    const snap = await buildRouterSnapshot();
    assert.deepEqual(snap.deployments.map((x) => x.slug).sort(), ["cold", "qwen"]);
    const q = snap.deployments.find((x) => x.id === d.id);
    assert.deepEqual(q, {
      id: d.id,
      teamId: f.team.id,
      slug: "qwen",
      models: ["qwen", "Qwen/Qwen3-0.6B"],
      mode: "hybrid",
      backends: [
        { id: svl.id, kind: "serverless", url: "https://api.runpod.ai/v2/abc/openai", headers: { authorization: "Bearer rp-upstream" }, maxInflight: 12, connectionIdleMs: 30_000, upstreamModel: "Qwen/Qwen3-0.6B" },
        // SkyServe's load balancer is a uvicorn server (5 s keep-alive): the router's own 4 s default applies. Its
        // host is the tenant's (DNS included): publicOnly, so the router checks every connection's address.
        { id: spot.id, kind: "spot", url: "http://10.0.0.5:30001", replicas: 2, maxInflightPerReplica: 4, publicOnly: true, upstreamModel: "Qwen/Qwen3-0.6B" },
      ],
      routing: { policy: "spot-first", idleTimeoutS: 30 },
    });
    // The engines serve "Qwen/Qwen3-0.6B" only; a client saying "qwen" is rewritten by the router (upstreamModel).
    const c = snap.deployments.find((x) => x.id === cold.id);
    assert.equal(c?.backends[0].replicas, 0, "a spot backend that is not ready is cold");
    assert.equal(c?.routing.policy, "spot-only");
  });

  test("a component whose headers do not decrypt is left out, not the whole snapshot", async () => {
    const f = await makeRoleFixture();
    const good = await deployment(f.team.id, f.admin.id, { slug: "good", mode: "serverless" });
    await db.deploymentComponent.create({ data: { deploymentId: good.id, kind: "serverless", provider: "local", status: "ready", endpointUrl: "http://127.0.0.1:2" } });
    const bad = await deployment(f.otherTeam.id, f.outsider.id, { slug: "bad", mode: "serverless" });
    await db.deploymentComponent.create({
      data: {
        deploymentId: bad.id, kind: "serverless", provider: "local", status: "ready", endpointUrl: "http://127.0.0.1:3",
        // Sealed for another team: must not open under this deployment's team.
        upstreamHeadersCipher: encryptForTeam(f.team.id, upstreamHeadersPurpose(bad.id, "serverless"), "{}") as object,
      },
    });
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(" "));
    try {
      const snap = await buildRouterSnapshot();
      assert.ok(snap.deployments.some((x) => x.id === good.id));
      assert.ok(!snap.deployments.some((x) => x.id === bad.id));
    } finally {
      console.error = orig;
    }
    assert.ok(errors.some((e) => e.includes(bad.id)));
  });

  test("a SkyServe endpoint on an internal address (stored before deploy checked it) is left out; local simulators on loopback stay", async () => {
    const f = await makeRoleFixture();
    const internal = ["http://10.0.0.7:30001", "http://127.0.0.1:8080", "http://169.254.169.254", "http://localhost:30001", "http://[::ffff:10.0.0.7]:30001", "http://sky.example.com:30001#"];
    const ids: string[] = [];
    for (const [i, url] of internal.entries()) {
      const d = await deployment(f.team.id, f.admin.id, { slug: `internal-${i}`, mode: "spot" });
      await db.deploymentComponent.create({ data: { deploymentId: d.id, kind: "spot", provider: "skyserve", status: "ready", endpointUrl: url, replicasReady: 1 } });
      ids.push(d.id);
    }
    const allowed = await deployment(f.team.id, f.admin.id, { slug: "allowed", mode: "spot" });
    await db.deploymentComponent.create({ data: { deploymentId: allowed.id, kind: "spot", provider: "skyserve", status: "ready", endpointUrl: "http://10.0.0.5:30001", replicasReady: 1 } });
    const local = await deployment(f.team.id, f.admin.id, { slug: "local", mode: "serverless" });
    await db.deploymentComponent.create({ data: { deploymentId: local.id, kind: "serverless", provider: "local", status: "ready", endpointUrl: "http://127.0.0.1:4" } });
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(" "));
    let snap: Awaited<ReturnType<typeof buildRouterSnapshot>>;
    try {
      snap = await buildRouterSnapshot();
    } finally {
      console.error = orig;
    }
    for (const id of ids) assert.ok(!snap.deployments.some((x) => x.id === id), `deployment ${id} reached the snapshot`);
    assert.ok(!JSON.stringify(snap).includes("10.0.0.7") && !JSON.stringify(snap).includes("169.254"));
    assert.ok(snap.deployments.some((x) => x.id === allowed.id), "an address the operator allowed (TUNA_ALLOW_PRIVATE_URLS) stays");
    assert.ok(snap.deployments.some((x) => x.id === local.id), "the local simulator is on loopback by design");
    assert.ok(errors.some((e) => e.includes(ids[0]) && /private or loopback/.test(e)), errors.join("\n"));
  });

  test("publicOnly marks tenant-chosen endpoints (SkyServe) only: not managed providers' endpoints, not the local simulators", async () => {
    const f = await makeRoleFixture();
    const sky = await deployment(f.team.id, f.admin.id, { slug: "po-sky" });
    const skyBackend = await db.deploymentComponent.create({
      data: { deploymentId: sky.id, kind: "spot", provider: "skyserve", status: "ready", endpointUrl: "https://sky-lb.example.com:30001", replicasReady: 1 },
    });
    const rp = await db.deploymentComponent.create({
      data: { deploymentId: sky.id, kind: "serverless", provider: "runpod", status: "ready", endpointUrl: "https://api.runpod.ai/v2/po/openai" },
    });
    const local = await deployment(f.team.id, f.admin.id, { slug: "po-local" });
    const localSvl = await db.deploymentComponent.create({ data: { deploymentId: local.id, kind: "serverless", provider: "local", status: "ready", endpointUrl: "http://127.0.0.1:5" } });
    const localSpot = await db.deploymentComponent.create({
      data: { deploymentId: local.id, kind: "spot", provider: "local-spot", status: "ready", endpointUrl: "http://127.0.0.1:6", replicasReady: 1 },
    });
    const snap = await buildRouterSnapshot();
    const backends = new Map(snap.deployments.flatMap((d) => d.backends).map((b) => [b.id, b]));
    assert.equal(backends.get(skyBackend.id)?.publicOnly, true);
    for (const c of [rp, localSvl, localSpot]) {
      const b = backends.get(c.id);
      assert.ok(b, `backend of ${c.provider} is in the snapshot`);
      assert.equal("publicOnly" in b, false, `${c.provider} is not publicOnly`);
    }
  });

  test("the version moves only with committed changes", async () => {
    const v0 = await snapshotVersion();
    await db.$transaction(async (tx) => {
      await bumpRouterConfigVersion(tx);
    });
    assert.equal(await snapshotVersion(), v0 + 1);
    await db
      .$transaction(async (tx) => {
        await bumpRouterConfigVersion(tx);
        throw new Error("rollback");
      })
      .catch(() => {});
    assert.equal(await snapshotVersion(), v0 + 1);
  });

  test("router token: env, or a generated 0600 file; constant-time compare", async () => {
    const saved = { token: process.env.TUNA_ROUTER_TOKEN, dir: process.env.TUNA_DATA_DIR };
    try {
      process.env.TUNA_ROUTER_TOKEN = "rt_env_token_value";
      assert.equal(routerTokenValid("Bearer rt_env_token_value"), true);
      assert.equal(routerTokenValid("Bearer rt_env_token_valuX"), false);
      assert.equal(routerTokenValid("rt_env_token_value"), false);
      assert.equal(routerTokenValid(null), false);
      delete process.env.TUNA_ROUTER_TOKEN;
      process.env.TUNA_DATA_DIR = mkdtempSync(path.join(os.tmpdir(), "tuna-rt-token-"));
      const warn = console.warn;
      console.warn = () => {};
      try {
        assert.equal(routerTokenValid("Bearer anything"), false);
      } finally {
        console.warn = warn;
      }
      const file = path.join(process.env.TUNA_DATA_DIR, "router.token");
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(routerTokenValid(`Bearer ${readFileSync(file, "utf8").trim()}`), true);
    } finally {
      if (saved.token === undefined) delete process.env.TUNA_ROUTER_TOKEN;
      else process.env.TUNA_ROUTER_TOKEN = saved.token;
      if (saved.dir === undefined) delete process.env.TUNA_DATA_DIR;
      else process.env.TUNA_DATA_DIR = saved.dir;
    }
  });
});
