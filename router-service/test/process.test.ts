// Whole-process behaviour: SIGTERM with streams in flight, and a spot backend killed under steady load.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { describe, test } from "node:test";
import { startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, KEY, request, sleep, snapshot, spawnListening, spawnTs, waitFor } from "./helpers/fixtures.js";
import { startControlPlane, totalRequests } from "./helpers/controlPlane.js";

function openStream(port: number): { firstByte: Promise<void>; done: Promise<{ text: string; clean: boolean }> } {
  let onFirst: () => void = () => {};
  const firstByte = new Promise<void>((r) => (onFirst = r));
  const done = new Promise<{ text: string; clean: boolean }>((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/v1/chat/completions", method: "POST", agent: false, headers: { authorization: `Bearer ${KEY}` } }, (res) => {
      let text = "";
      res.on("data", (c) => {
        text += c;
        onFirst();
      });
      res.on("end", () => resolve({ text, clean: true }));
      res.on("error", () => resolve({ text, clean: false }));
    });
    req.on("error", () => resolve({ text: "", clean: false }));
    req.end(JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 20, stream: true }));
  });
  return { firstByte, done };
}

/**
 * The router image's start command (the exec-form CMD of router-service/Dockerfile), so the SIGTERM test
 * covers what `docker stop` does to a real container: the image runs it from /app, which holds what
 * router-service/ holds here.
 */
function imageCommand(): string[] {
  const dockerfile = readFileSync(new URL("../Dockerfile", import.meta.url), "utf8");
  const line = dockerfile.split("\n").filter((l) => l.startsWith("CMD ")).at(-1);
  assert.ok(line, "router-service/Dockerfile has a CMD");
  const cmd = JSON.parse(line.slice(4)) as string[];
  return cmd[0] === "node" ? [process.execPath, ...cmd.slice(1)] : cmd;
}

describe("router process", () => {
  test("SIGTERM to the image's command: stops accepting, finishes in-flight streams, flushes usage, exits 0", async () => {
    const sim = await startSimulator({ model: "qwen-small", tokensPerS: 25 }); // 20 tokens ≈ 0.8 s per stream
    const cp = await startControlPlane();
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    const router = await spawnListening(imageCommand(), new URL("..", import.meta.url).pathname, {
      NODE_ENV: "production",
      PORT: "0",
      HOST: "127.0.0.1",
      TUNA_ROUTER_STATE_DIR: `/tmp/tuna-rt-term-${process.pid}`,
      TUNA_USAGE_FLUSH_MS: "60000",
      TUNA_CONTROL_PLANE_URL: cp.url,
      TUNA_ROUTER_TOKEN: cp.token,
    });
    try {
      const streams = Array.from({ length: 5 }, () => openStream(router.port));
      await Promise.all(streams.map((s) => s.firstByte));
      router.proc.kill("SIGTERM");
      await sleep(150);
      await assert.rejects(request(`http://127.0.0.1:${router.port}/healthz`, { agent: new http.Agent() }), "no new connections after SIGTERM");
      const results = await Promise.all(streams.map((s) => s.done));
      for (const r of results) {
        assert.ok(r.clean, "stream ended cleanly");
        assert.ok(r.text.includes("data: [DONE]"), "stream completed");
      }
      const code = await new Promise<number | null>((resolve) => {
        if (router.proc.exitCode !== null) resolve(router.proc.exitCode);
        else router.proc.once("exit", (c) => resolve(c));
      });
      assert.equal(code, 0);
      // The flush interval is a minute: these arrived only because shutdown flushed.
      assert.equal(totalRequests(cp), 5);
    } finally {
      await router.stop("SIGKILL");
      await cp.close();
      await sim.close();
    }
  });

  test("SIGTERM with streams longer than the shutdown deadline: they are cut at the deadline, and still counted in the flushed usage", async () => {
    const sim = await startSimulator({ model: "qwen-small", tokensPerS: 5 }); // 20 tokens ≈ 4 s per stream
    const cp = await startControlPlane();
    cp.setSnapshot(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })]));
    const router = await spawnListening(imageCommand(), new URL("..", import.meta.url).pathname, {
      PORT: "0",
      HOST: "127.0.0.1",
      TUNA_ROUTER_STATE_DIR: `/tmp/tuna-rt-deadline-${process.pid}`,
      TUNA_USAGE_FLUSH_MS: "60000",
      TUNA_SHUTDOWN_TIMEOUT_MS: "500",
      TUNA_CONTROL_PLANE_URL: cp.url,
      TUNA_ROUTER_TOKEN: cp.token,
    });
    try {
      const streams = Array.from({ length: 3 }, () => openStream(router.port));
      await Promise.all(streams.map((s) => s.firstByte));
      const t0 = Date.now();
      router.proc.kill("SIGTERM");
      const results = await Promise.all(streams.map((s) => s.done));
      assert.ok(Date.now() - t0 < 2500, "cut at the deadline, not run to their end");
      for (const r of results) assert.ok(!r.text.includes("data: [DONE]"), "a cut stream does not look complete");
      const code = await new Promise<number | null>((resolve) => {
        if (router.proc.exitCode !== null) resolve(router.proc.exitCode);
        else router.proc.once("exit", (c) => resolve(c));
      });
      assert.equal(code, 0);
      assert.equal(totalRequests(cp), 3, "the cut requests were flushed on the way out");
      assert.equal([...cp.reports.values()].flatMap((r) => r.entries).reduce((n, e) => n + e.errors, 0), 3, "as errors");
    } finally {
      await router.stop("SIGKILL");
      await cp.close();
      await sim.close();
    }
  });

  test("SIGTERM to `npm run router` (a supervisor signalling one PID) reaches the router: graceful stop, nothing left running", async () => {
    const sim = await startSimulator({ model: "qwen-small" });
    const cfgPath = `/tmp/tuna-rt-npm-${process.pid}.json`;
    writeFileSync(cfgPath, JSON.stringify(snapshot([deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } })])));
    const root = new URL("../..", import.meta.url).pathname;
    const npm = await spawnListening(
      ["npm", "run", "--silent", "router", "--", "--config", cfgPath, "--port", "0", "--host", "127.0.0.1", "--state-dir", `/tmp/tuna-rt-npm-${process.pid}`],
      root,
      { LOG_LEVEL: "info" },
    );
    try {
      assert.equal((await chat(`http://127.0.0.1:${npm.port}`, KEY)).status, 200);
      const code = await npm.stop("SIGTERM");
      assert.equal(code, 0, "npm exits with the router's exit code");
      assert.match(npm.output(), /"msg":"router stopped"/, "the router ran its shutdown");
      await assert.rejects(request(`http://127.0.0.1:${npm.port}/healthz`, { agent: new http.Agent() }), "the router process is gone");
    } finally {
      await npm.stop("SIGKILL");
      await sim.close();
    }
  });

  test("CLIs: a mistyped option stops the router and the simulator with exit 2 and says which; --help lists the router's", () => {
    const root = new URL("../..", import.meta.url).pathname;
    const run = (script: string, args: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: root, encoding: "utf8", timeout: 20_000, env: { ...process.env, LOG_LEVEL: "info" } });
    const router = run("router-service/src/main.ts", ["--prot", "8080"]);
    assert.equal(router.status, 2);
    assert.match(router.stdout, /unknown option --prot; known: --config, --port/);
    const help = run("router-service/src/main.ts", ["--help"]);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: npm run router -- \[--config\] \[--port\]/);
    const sim = run("router-service/src/sim/main.ts", ["--port", "0", "--tokens-per-sec", "20"]);
    assert.equal(sim.status, 2);
    assert.match(sim.stderr, /^sim: unknown option --tokens-per-sec; known: --port/);
    const fault = run("router-service/src/sim/main.ts", ["--port", "0", "--fault", "bogus"]);
    assert.equal(fault.status, 2);
    assert.match(fault.stderr, /^sim: --fault must be one of none, down, slow, error5xx, close-mid-stream, stall-mid-stream, close-after-head, stall-after-head, preempt \(got "bogus"\)/);
    // A preempt notice given at start counts down like one set later: the simulator exits on its own.
    const preempt = run("router-service/src/sim/main.ts", ["--port", "0", "--fault", "preempt", "--fault-delay-ms", "200"]);
    assert.equal(preempt.status, 0, "exited after the notice instead of running until the timeout");
    assert.match(preempt.stdout, /"event":"listening"/);
  });

  test("failover run: spot process killed under steady load, zero non-streaming failures", async (t) => {
    const svl = await startSimulator({ model: "qwen-small", ttftMs: 5 });
    const spotProc = await spawnTs("router-service/src/sim/main.ts", ["--port", "0", "--model", "qwen-small", "--ttft-ms", "5"]);
    const spotUrl = `http://127.0.0.1:${spotProc.port}`;
    const router = await startRouter({ config: snapshot([deployment({ svlUrl: svl.url, spotUrl })]), logLevel: "silent", stateDir: `/tmp/tuna-rt-fo-${process.pid}` });
    const spot = () => router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot");
    try {
      await waitFor(() => spot()?.state() === "ready");
      const statuses = new Map<number, number>();
      const served = new Map<string, number>();
      let killedAt = 0;
      const end = Date.now() + 2500;
      const killer = setTimeout(() => {
        killedAt = Date.now();
        spotProc.proc.kill("SIGKILL");
      }, 800);
      await Promise.all(
        Array.from({ length: 12 }, async () => {
          while (Date.now() < end) {
            let status = 0;
            let backend = "";
            try {
              const r = await chat(router.url, KEY);
              status = r.status;
              backend = String(r.headers["x-tuna-backend"]);
            } catch {
              status = -1;
            }
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
            if (killedAt) served.set(`after:${backend}`, (served.get(`after:${backend}`) ?? 0) + 1);
            else served.set(`before:${backend}`, (served.get(`before:${backend}`) ?? 0) + 1);
          }
        }),
      );
      clearTimeout(killer);
      t.diagnostic(`statuses ${JSON.stringify([...statuses])} served ${JSON.stringify([...served])}`);
      assert.deepEqual([...statuses.keys()], [200], "zero failed requests");
      assert.ok((served.get("before:spot") ?? 0) > 0, "spot served before the kill");
      assert.ok((served.get("after:svl") ?? 0) > 0, "serverless took over");
      assert.equal(spot()?.state(), "ejected");
      const m = (await request(`${router.url}/metrics`)).body;
      assert.match(m, /tuna_router_failovers_total\{deployment="dep_1",from="spot",to="svl",reason="(connect|reset)"\} \d+/);
    } finally {
      await router.close();
      await spotProc.stop("SIGKILL");
      await svl.close();
    }
  });

  test("preemption: spot answers 503 during its grace period then exits; zero failures", async () => {
    const svl = await startSimulator({ model: "qwen-small" });
    const spot = await startSimulator({ model: "qwen-small" });
    const router = await startRouter({ config: snapshot([deployment({ svlUrl: svl.url, spotUrl: spot.url })]), logLevel: "silent", stateDir: `/tmp/tuna-rt-pre-${process.pid}` });
    try {
      await waitFor(() => router.store.current?.deployments.get("dep_1")?.backends[1].state() === "ready");
      const statuses: number[] = [];
      const end = Date.now() + 1200;
      setTimeout(() => spot.setFault({ mode: "preempt", delayMs: 300 }), 300);
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (Date.now() < end) statuses.push((await chat(router.url, KEY).catch(() => ({ status: -1 }))).status);
        }),
      );
      assert.ok(statuses.length > 50);
      assert.deepEqual([...new Set(statuses)], [200]);
    } finally {
      await router.close();
      await spot.close();
      await svl.close();
    }
  });
});
