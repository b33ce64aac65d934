// Acceptance 3 of the usage issue: two real router processes, one control plane (the real snapshot and
// usage handlers), a key whose monthly budget runs out while traffic flows.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { startSimulator } from "@tuna/router-service";
import { useTestDatabase } from "../test/db";
import { makeTeam, makeUser } from "../test/fixtures";
import { db } from "../db";
import { handleRouterConfigRequest } from "../routerconfig";
import { setBudget, setBudgetEvaluationDelay } from "./budgets";
import { handleUsageRequest } from "./ingest";
import { type BudgetAlert, setUsageLinks } from "./links";
import { costForDeployments, loadDeploymentsForCost } from "./pricing";
import { formatMicros } from "../catalog/money";
import { LOCAL_L4_MICROS_PER_HOUR } from "./testing";

// biome-ignore lint/correctness/useHookAtTopLevel: a test file (not a React hook) waiting for its rename, see above
await useTestDatabase();

const ROOT = path.resolve(import.meta.dirname, "../..");
const TOKEN = `rt_${randomBytes(12).toString("hex")}`;
process.env.TUNA_ROUTER_TOKEN = TOKEN;
setBudgetEvaluationDelay(50);
const alerts: Array<{ teamId: string; alert: BudgetAlert }> = [];
setUsageLinks({ notify: async (teamId, alert) => void alerts.push({ teamId, alert }) });

/** The control plane's two router endpoints, as the Next.js routes mount them. */
async function startControlPlane(): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const request = new Request(`http://127.0.0.1${req.url}`, {
      method: req.method,
      headers: req.headers as Record<string, string>,
      body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
    });
    const r = req.url === "/api/router/usage" ? await handleUsageRequest(request) : await handleRouterConfigRequest(request);
    res.writeHead(r.status, Object.fromEntries(r.headers));
    res.end(Buffer.from(await r.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const children: ChildProcess[] = [];
const dirs: string[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A router process, as operators run it (`node --import tsx router-service/src/main.ts`). */
function startRouterProcess(controlPlaneUrl: string, id: string): Promise<string> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "tuna-router-"));
  dirs.push(stateDir);
  const proc = spawn(process.execPath, ["--import", "tsx", "router-service/src/main.ts", "--port", "0", "--host", "127.0.0.1"], {
    cwd: ROOT,
    env: {
      ...process.env,
      TUNA_CONTROL_PLANE_URL: controlPlaneUrl,
      TUNA_ROUTER_TOKEN: TOKEN,
      TUNA_ROUTER_STATE_DIR: stateDir,
      TUNA_USAGE_FLUSH_MS: "100",
      TUNA_CONFIG_POLL_MS: "100",
      TUNA_ROUTER_ID: id,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(proc);
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout?.on("data", (c) => {
      out += c;
      const m = /\{"event":"listening","port":(\d+)\}/.exec(out);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    proc.once("exit", (code) => reject(new Error(`router ${id} exited ${code}: ${out.slice(-500)}`)));
  });
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("budget enforcement across two router processes", () => {
  test("a key's spend stops at its budget (± one in-flight request per router); 80/90/100% alert once each", async () => {
    const sim = await startSimulator({ model: "qwen-small", ttftMs: 150, tokensPerS: 0 });
    after(() => sim.close());
    const cp = await startControlPlane();
    // The routers are still up here (they are killed after the file), polling every 100 ms over keep-alive: close()
    // alone waits for their connections to end, which may never happen (seen as a CI run that hung).
    after(() => new Promise<void>((r) => {
      cp.server.close(() => r());
      cp.server.closeAllConnections();
    }));

    const user = await makeUser("owner");
    const team = await makeTeam([{ user, role: "admin" }], "Acme");
    // Serverless-only on the local simulator, no idle window: spend is exactly busy time × the local L4 price.
    const dep = await db.deployment.create({
      data: {
        teamId: team.id, slug: "qwen-small", model: "Qwen/Qwen3-0.6B", servedModelName: "qwen-small", mode: "serverless", status: "active",
        serverlessProvider: "local", serverlessGpu: "L4", createdById: user.id, activatedAt: new Date(),
        spec: { serverlessScaling: { minWorkers: 0, maxWorkers: 4, concurrency: 8, idleTimeoutS: 0, coldStartTimeoutS: 60 } },
        components: { create: { kind: "serverless", provider: "local", status: "ready", endpointUrl: sim.url } },
      },
    });
    const secret = `tuna_sk_${randomBytes(16).toString("hex")}`;
    const key = await db.apiKey.create({
      data: { teamId: team.id, label: "ci-bot", prefix: secret.slice(0, 12), hash: createHash("sha256").update(secret).digest("hex"), createdById: user.id },
    });
    // ≈ 150 ms of busy time per request: a budget of 20 requests' worth.
    const LIMIT = Math.round((20 * 0.15 * LOCAL_L4_MICROS_PER_HOUR) / 3600);
    await setBudget(team.id, { userId: user.id, label: "owner" }, { scope: "apikey", targetId: key.id, monthlyLimitMicros: LIMIT });

    const routers = await Promise.all([startRouterProcess(cp.url, "router-1"), startRouterProcess(cp.url, "router-2")]);
    const chat = (url: string) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
      });
    for (const r of routers) await waitFor("router snapshot", async () => (await chat(r)).status === 200);

    // Each router's client sends one request at a time, pausing long enough for the pipeline (usage flush,
    // ingest, evaluation, snapshot poll) to catch up, as a client well under its rate limits would.
    const served = [0, 0];
    const refusals: string[] = [];
    await Promise.all(
      routers.map(async (r, i) => {
        for (let n = 0; n < 120; n++) {
          const res = await chat(r);
          const body = await res.json();
          if (res.status === 200) {
            served[i]++;
          } else {
            assert.equal(res.status, 429, JSON.stringify(body));
            assert.equal(body.error.code, "insufficient_quota");
            refusals.push(body.error.message);
            return;
          }
          await new Promise((s) => setTimeout(s, 600));
        }
      }),
    );
    assert.equal(refusals.length, 2, `both routers refuse once the budget is reached (served ${served})`);
    for (const m of refusals) assert.ok(m.includes(`Monthly budget of key ci-bot (${formatMicros(LIMIT)}) reached`), m);

    // Let the last reports land, then compare the key's spend with its budget.
    await new Promise((s) => setTimeout(s, 1500));
    const [c] = await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), new Date(Date.now() - 3_600_000), new Date());
    const spend = c.keys.get(key.id) ?? 0;
    const requests = c.cost.usage.requests;
    const perRequest = spend / requests;
    assert.ok(spend >= LIMIT, `spend ${spend} reached the budget ${LIMIT}`);
    assert.ok(spend <= LIMIT + 2 * perRequest + 1, `spend ${spend} exceeds ${LIMIT} by more than one request per router (${perRequest.toFixed(1)} each)`);

    const mine = alerts.filter((a) => a.teamId === team.id).map((a) => a.alert.threshold);
    assert.deepEqual(mine, [80, 90, 100]);
  });
});
