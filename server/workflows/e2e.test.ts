import { processAlive } from "../test/process";
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { createApiKey } from "../apikeys";
import { buildRouterSnapshot } from "../routerconfig";
import { getProvider, type ResourceRef } from "../providers";
import type { RouterSnapshot } from "../../router-service/src/contract";
import { startLocalRunner } from "./runner";
import { actorOf } from "./test/setup";

/**
 * End to end on the local provider: tRPC request by a developer → admin approval → the local runner deploys
 * real simulator processes → the router (started programmatically, fed the control plane's snapshot) serves
 * the official `openai` client → destroy → no simulator left running.
 */
await useTestDatabase();
const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-e2e-"));
process.env.TUNA_LOCAL_PROVIDER_DIR = dir;
process.env.TUNA_LOCAL_COLD_START_MS = "200";
process.env.TUNA_LOCAL_SPOT_COLD_START_MS = "600";
process.env.TUNA_RUNNER_BACKOFF_MS = "100";

interface RouterLike {
  url: string;
  close(): Promise<void>;
  applySnapshot(s: RouterSnapshot): void;
}
// Loaded by path at run time: router-service is its own package with its own tsconfig.
const routerModule = path.join(import.meta.dirname, "../../router-service/src/server.ts");
const { startRouter } = (await import(routerModule)) as { startRouter: (o: Record<string, unknown>) => Promise<RouterLike> };

const waitFor = async <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 30_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const alive = processAlive;

describe("end to end on the local provider", () => {
  test("request → approval → active → openai completions through the router → destroy → nothing running", async () => {
    const runner = startLocalRunner({ pollMs: 100, cron: false, log: () => {} });
    const f = await makeRoleFixture("E2E");
    let router: RouterLike | null = null;
    let syncing = true;
    const pids: number[] = [];
    after(async () => {
      syncing = false;
      await router?.close().catch(() => {});
      await runner.stop();
      for (const pid of pids) if (alive(pid)) process.kill(-pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    });

    // 1. A developer asks; the team's policy wants an admin's approval.
    const dev = callerFor(f.developer, f.team.id);
    const { id, status } = await dev.deployments.create({
      model: "Qwen/Qwen3-0.6B",
      slug: "qwen-e2e",
      mode: "hybrid",
      gpu: "L4",
      provider: "local",
      spotClouds: [],
    });
    assert.equal(status, "pending_approval");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await dev.deployments.get({ id })).status, "pending_approval", "nothing starts before approval");

    // 2. An admin approves; the waiting run resumes.
    const approval = (await dev.deployments.get({ id })).approval!;
    await callerFor(f.admin, f.team.id).approvals.decide({ approvalId: approval.id, decision: "approve" });

    // 3. The deployment becomes usable (serverless healthy), spot warms in the background.
    const active = await waitFor("active", async () => {
      const d = await dev.deployments.get({ id });
      if (d.status === "failed") throw new Error(`deploy failed at ${d.failureStep}: ${d.failureReason}`);
      return d.status === "active" ? d : null;
    });
    for (const c of active.components) pids.push(Number((c.externalIds as Record<string, string>).pid));
    const timeline = (await dev.deployments.timeline({ id })).events.map((e) => `${e.step}:${e.status}`);
    for (const s of ["approval:ok", "deploy-serverless:ok", "deploy-spot:ok", "publish-router:ok", "activate:ok"]) assert.ok(timeline.includes(s), `${s} in ${timeline.join(", ")}`);

    // 4. The router serves it to the official OpenAI client, with a team API key.
    const { key } = await createApiKey(f.team.id, actorOf(f.admin), { label: "e2e" });
    router = await startRouter({ port: 0, host: "127.0.0.1", config: await buildRouterSnapshot(), stateDir: path.join(dir, "router"), logLevel: "silent", usageFlushMs: 60_000 });
    const sync = async () => {
      let last = -1;
      while (syncing) {
        const snap = await buildRouterSnapshot();
        if (snap.version !== last) {
          router!.applySnapshot(snap);
          last = snap.version;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    void sync();
    const client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: key, maxRetries: 2 });
    const completion = await client.chat.completions.create({ model: "qwen-e2e", messages: [{ role: "user", content: "Say hello" }], max_tokens: 16 });
    assert.ok(completion.choices[0]?.message.content, "a completion came back");

    // Spot becomes ready and the router's snapshot carries its replica.
    await waitFor("spot ready", async () => (await dev.deployments.get({ id })).components.find((c) => c.kind === "spot")?.status === "ready", 30_000);
    const snap = await buildRouterSnapshot();
    const backends = snap.deployments.find((d) => d.id === id)!.backends;
    assert.deepEqual(backends.map((b) => b.kind).sort(), ["serverless", "spot"]);
    const again = await client.chat.completions.create({ model: "qwen-e2e", messages: [{ role: "user", content: "Again" }], max_tokens: 8 });
    assert.ok(again.choices[0]?.message.content);

    // 5. Destroy: every simulator stops, the router snapshot no longer lists it.
    await dev.deployments.destroy({ id });
    await waitFor("destroyed", async () => (await dev.deployments.get({ id })).status === "destroyed");
    assert.ok(!(await buildRouterSnapshot()).deployments.some((d) => d.id === id));
    const comps = await db.deploymentComponent.findMany({ where: { deploymentId: id } });
    for (const c of comps) {
      assert.equal(c.status, "destroyed");
      const plan = c.plan as { resourceName: string; region: string };
      const ref: ResourceRef = { resourceName: plan.resourceName, region: plan.region, externalIds: c.externalIds as Record<string, string> };
      assert.equal((await getProvider(c.provider).status(ref, {})).state, "gone");
    }
    await waitFor("simulators exited", async () => pids.every((p) => !alive(p)), 10_000);
  });
});
