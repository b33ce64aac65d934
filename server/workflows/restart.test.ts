import { processAlive } from "../test/process";
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture } from "../test/fixtures";
import { db } from "../db";
import { requestDeployment, requestDestroy } from "../deployments";
import { drainLocalRunner } from "./runner";
import { actorOf } from "./test/setup";

/**
 * The deploy workflow on the local provider, with the runner process SIGKILLed after the deploy steps
 * finished: a new runner process completes the run, and no deploy step ran twice.
 */
await useTestDatabase();
const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-restart-"));
process.env.TUNA_LOCAL_PROVIDER_DIR = dir;
process.env.TUNA_LOCAL_COLD_START_MS = "1500";
process.env.TUNA_LOCAL_SPOT_COLD_START_MS = "1500";
process.env.TUNA_RUNNER_BACKOFF_MS = "100";

const children: ChildProcess[] = [];
const simulatorPids: number[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  // Simulators are detached process groups (like cloud resources they outlive the runner): stop any left.
  for (const pid of simulatorPids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function startChild(): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "test/runner-child.ts")], { env: { ...process.env }, stdio: ["ignore", "pipe", "inherit"] });
    children.push(c);
    c.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve(c));
    c.once("exit", (code) => reject(new Error(`runner child exited ${code}`)));
  });
}
function kill(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    c.removeAllListeners("exit");
    if (c.exitCode !== null) return resolve();
    c.once("exit", () => resolve());
    c.kill("SIGKILL");
  });
}
async function waitFor(what: string, pred: () => Promise<boolean>, ms = 40_000) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const timeline = async (id: string) => (await db.deploymentEvent.findMany({ where: { deploymentId: id } })).map((e) => `${e.step}:${e.status}`);
const alive = processAlive;

describe("restart", () => {
  test("runner killed between steps of deploy: a new process finishes it without repeating a provider call", async () => {
    const f = await makeRoleFixture("Restart");
    const first = await startChild();
    const { id } = await requestDeployment(f.team.id, { ...actorOf(f.admin), userId: f.admin.id, role: "admin" }, {
      model: "Qwen/Qwen3-0.6B",
      slug: "qwen-restart",
      mode: "hybrid",
      gpu: "L4",
      provider: "local",
      spotClouds: [],
    });
    // Both components created and the router published: the run is now polling serverless health.
    await waitFor("publish-router", async () => (await timeline(id)).includes("publish-router:ok"));
    await kill(first);
    for (const c of await db.deploymentComponent.findMany({ where: { deploymentId: id } })) {
      simulatorPids.push(Number((c.externalIds as Record<string, string>).pid));
    }
    const run = await db.workflowRun.findFirstOrThrow({ where: { functionId: "tuna-deploy" } });
    assert.notEqual(run.status, "completed");
    assert.equal((await db.deployment.findUniqueOrThrow({ where: { id } })).status, "deploying");

    const second = await startChild();
    await waitFor("active", async () => (await db.deployment.findUniqueOrThrow({ where: { id } })).status === "active");
    await waitFor("run completed (spot warmed)", async () => (await db.workflowRun.findUniqueOrThrow({ where: { id: run.id } })).status === "completed");
    await kill(second);
    assert.ok((await timeline(id)).includes("spot:ready"));

    const t = await timeline(id);
    assert.equal(t.filter((s) => s === "deploy-serverless:started").length, 1, "serverless deployed once");
    assert.equal(t.filter((s) => s === "deploy-spot:started").length, 1, "spot deployed once");
    assert.equal(t.filter((s) => s === "activate:ok").length, 1);

    // Clean up through the destroy workflow (this process runs it).
    const pids = (await db.deploymentComponent.findMany({ where: { deploymentId: id } })).map((c) => Number((c.externalIds as Record<string, string>).pid));
    simulatorPids.push(...pids);
    await requestDestroy(f.team.id, actorOf(f.admin), id);
    await drainLocalRunner({ timeoutMs: 20_000 });
    assert.equal((await db.deployment.findUniqueOrThrow({ where: { id } })).status, "destroyed");
    await waitFor("simulators exited", async () => pids.every((p) => !alive(p)), 10_000);
  });
});
