import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { test } from "node:test";
import { supervise } from "./supervise";

function harness(over: { quickExitMs?: number; maxQuickExits?: number } = {}) {
  const logs: string[] = [];
  const children: ChildProcess[] = [];
  let stopped: number | null = null;
  let stopping = false;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const hooks = {
    children,
    isStopping: () => stopping,
    log: (m: string) => logs.push(m),
    stopAll: (code: number) => {
      stopped = code;
      stopping = true;
      done();
    },
    baseDelayMs: 20,
    maxDelayMs: 40,
    ...over,
  };
  return { logs, children, hooks, finished, stopped: () => stopped, stop: () => ((stopping = true), done()) };
}
const exitWith = (code: number) => ({ cmd: process.execPath, args: ["-e", `process.exit(${code})`], env: process.env, cwd: process.cwd() });

test("a child without restart: its exit stops everything with its code", async () => {
  const h = harness();
  supervise({ ...exitWith(3), name: "next" }, h.hooks);
  await h.finished;
  assert.equal(h.stopped(), 3);
  assert.deepEqual(h.logs, ["next exited (3); stopping"]);
});

test("a restart child is started again with growing delays, then everything stops once it keeps exiting right after its start", async () => {
  const h = harness({ maxQuickExits: 3 });
  const t0 = Date.now();
  supervise({ ...exitWith(0), name: "router", restart: true }, h.hooks);
  await h.finished;
  assert.equal(h.stopped(), 1, "a crash loop stops with a failure code even when the child exited 0");
  assert.deepEqual(h.logs, [
    "router exited (0); restarting it in 0.02 s (the dashboard keeps running)",
    "router exited (0); restarting it in 0.04 s (the dashboard keeps running)",
    "router exited (0); restarting it in 0.04 s (the dashboard keeps running)",
    "router exited (0) 4 times in a row soon after starting; stopping",
  ]);
  assert.ok(Date.now() - t0 >= 100, "waited 20 + 40 + 40 ms between starts");
  assert.equal(h.children.length, 0, "exited children are forgotten");
});

test("a restart child that ran longer than the crash window is restarted from the first delay again, without end", async () => {
  const h = harness({ quickExitMs: 0, maxQuickExits: 1 });
  supervise({ ...exitWith(2), name: "router", restart: true }, h.hooks);
  while (h.logs.length < 4) await new Promise((r) => setTimeout(r, 10));
  h.stop();
  assert.equal(h.stopped(), null);
  assert.ok(h.logs.every((l) => l === "router exited (2); restarting it in 0.02 s (the dashboard keeps running)"), h.logs.join("\n"));
});
