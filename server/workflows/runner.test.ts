import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { deliverLocalEvent, drainLocalRunner, setLocalFunctions, startLocalRunner } from "./runner";
import { durationMs, evaluateCondition, latestCronSlot } from "./expr";
import { debounced, probeFunctions, resetFlaky } from "./test/probe-functions";

await useTestDatabase();
setLocalFunctions(probeFunctions);
const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-runner-"));
process.env.PROBE_LOG = path.join(dir, "probe.log");
process.env.TUNA_RUNNER_BACKOFF_MS = "20";
const lines = () => (existsSync(process.env.PROBE_LOG!) ? readFileSync(process.env.PROBE_LOG!, "utf8").trim().split("\n").filter(Boolean) : []);
const count = (what: string) => lines().filter((l) => l === what).length;
const runOf = (id: string) => db.workflowRun.findUniqueOrThrow({ where: { id } });

describe("expressions", () => {
  test("waitForEvent conditions, durations and cron slots", () => {
    assert.equal(evaluateCondition("async.data.id == event.data.id", { async: { data: { id: "x" } }, event: { data: { id: "x" } } }), true);
    assert.equal(evaluateCondition("async.data.id == event.data.id && async.data.ok == true", { async: { data: { id: "x", ok: false } }, event: { data: { id: "x" } } }), false);
    assert.equal(durationMs("1h30m"), 5_400_000);
    assert.equal(durationMs("250ms"), 250);
    assert.equal(durationMs(new Date(10_000).toISOString(), 4_000), 6_000);
    assert.equal(latestCronSlot("*/5 * * * *", Date.UTC(2026, 0, 1, 10, 7, 30)), Date.UTC(2026, 0, 1, 10, 5));
    assert.equal(latestCronSlot("0 3 * * 1", Date.UTC(2026, 0, 7, 12)), Date.UTC(2026, 0, 5, 3, 0)); // Monday 5 Jan 2026
  });
});

describe("local runner (Open Source SDK Spec against the SDK's serve handler)", () => {
  test("step.run, parallel steps, step.sleep: each step runs once, results memoised in PostgreSQL", async () => {
    const { runIds } = await deliverLocalEvent("test/probe", { gap: "100ms" });
    assert.equal(runIds.length, 1);
    await drainLocalRunner({ timeoutMs: 10_000 });
    const run = await runOf(runIds[0]!);
    assert.equal(run.status, "completed");
    assert.deepEqual(run.result, { a: { n: 1 }, p1: 1, p2: 2, b: "b" });
    assert.equal(Object.keys(run.steps as object).length, 5, "a, p1, p2, gap, b memoised");
    for (const s of ["a", "p1", "p2", "b"]) assert.equal(count(s), 1, s);
  });

  test("waitForEvent resumes on a matching event only, and times out to null", async () => {
    const { runIds: [waitRun] } = await deliverLocalEvent("test/wait", { key: "k1" });
    await drainLocalRunner();
    assert.equal((await runOf(waitRun!)).status, "waiting");
    await deliverLocalEvent("test/go", { key: "other" });
    await drainLocalRunner();
    assert.equal((await runOf(waitRun!)).status, "waiting", "a non-matching event does not resume");
    await deliverLocalEvent("test/go", { key: "k1", n: 7 });
    await drainLocalRunner();
    const done = await runOf(waitRun!);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.result, { got: { key: "k1", n: 7 } });

    const { runIds: [timeoutRun] } = await deliverLocalEvent("test/wait", { key: "k2", timeout: "1s" });
    await drainLocalRunner();
    assert.equal((await runOf(timeoutRun!)).status, "waiting");
    await new Promise((r) => setTimeout(r, 1100));
    await drainLocalRunner();
    const expired = await runOf(timeoutRun!);
    assert.equal(expired.status, "completed");
    assert.deepEqual(expired.result, { got: null });
  });

  test("step.sendEvent goes through the Event API into the runner and resumes a waiting run", async () => {
    const { runIds: [w] } = await deliverLocalEvent("test/wait", { key: "via-step" });
    await drainLocalRunner();
    const { runIds: [s] } = await deliverLocalEvent("test/send", { key: "via-step" });
    await drainLocalRunner();
    assert.deepEqual((await runOf(s!)).result, { sent: 1 });
    assert.deepEqual((await runOf(w!)).result, { got: { key: "via-step", n: 42 } });
  });

  test("an event sent before the wait is registered still resumes the run", async () => {
    const { runIds: [r] } = await deliverLocalEvent("test/wait", { key: "early" });
    await deliverLocalEvent("test/go", { key: "early", n: 1 });
    await drainLocalRunner();
    assert.deepEqual((await runOf(r!)).result, { got: { key: "early", n: 1 } });
  });

  test("transient step errors retry with backoff; NonRetriableError fails at once; caught failures compensate", async () => {
    resetFlaky();
    const { runIds: [ok] } = await deliverLocalEvent("test/retry", {});
    await drainLocalRunner();
    const r1 = await runOf(ok!);
    assert.equal(r1.status, "completed");
    assert.deepEqual(r1.result, { r: 3 });

    resetFlaky();
    const { runIds: [bad] } = await deliverLocalEvent("test/retry", { permanent: true });
    await drainLocalRunner();
    const r2 = await runOf(bad!);
    assert.equal(r2.status, "failed");
    assert.match(r2.error ?? "", /HTTP 400|permanently broken/);
    assert.equal(lines().filter((l) => l.startsWith("flaky-")).length, 4, "3 for the flaky run, 1 for the permanent one");

    const { runIds: [c] } = await deliverLocalEvent("test/catch", {});
    await drainLocalRunner();
    assert.deepEqual((await runOf(c!)).result, { caught: "validation failed: bad input", compensation: "cleaned" });
  });

  test("concurrency keys: runs sharing a key never execute at once, other keys do", async () => {
    for (const [k, n] of [["x", 1], ["x", 2], ["y", 3]] as const) await deliverLocalEvent("test/limited", { k, n });
    const a = startLocalRunner({ functions: probeFunctions, pollMs: 20, cron: false, parallel: 4, log: () => {} });
    const b = startLocalRunner({ functions: probeFunctions, pollMs: 20, cron: false, parallel: 4, log: () => {} });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && lines().filter((l) => l.startsWith("end ")).length < 3) await new Promise((r) => setTimeout(r, 50));
    await a.stop();
    await b.stop();
    const span = (n: number) => {
      const s = Number(lines().find((l) => l.startsWith("start ") && l.split(" ")[2] === String(n))!.split(" ")[3]);
      const e = Number(lines().find((l) => l.startsWith("end ") && l.split(" ")[2] === String(n))!.split(" ")[3]);
      return [s, e] as const;
    };
    const [s1, e1] = span(1);
    const [s2, e2] = span(2);
    const [s3] = span(3);
    assert.ok(e1 <= s2 || e2 <= s1, "the two x runs did not overlap");
    assert.ok(s3 < Math.max(e1, e2), "the y run did not wait for the x runs");
  });

  test("rateLimit: one run per key and period; an event over the limit starts nothing", async () => {
    const runs = async (k: string) => (await deliverLocalEvent("test/rated", { k })).runIds.length;
    assert.deepEqual([await runs("a"), await runs("a"), await runs("b"), await runs("a")], [1, 0, 1, 0]);
    // Runs older than the period no longer count.
    await db.workflowRun.updateMany({ where: { functionId: "tuna-rated" }, data: { createdAt: new Date(Date.now() - 61_000) } });
    assert.equal(await runs("a"), 1);
    await drainLocalRunner();
    assert.equal(await db.workflowRun.count({ where: { functionId: "tuna-rated", status: "completed" } }), 3);
  });

  test("rateLimit holds when the same key's events arrive at once", async () => {
    const started = await Promise.all(Array.from({ length: 8 }, () => deliverLocalEvent("test/rated", { k: "burst" })));
    assert.equal(started.reduce((n, r) => n + r.runIds.length, 0), 1);
    await drainLocalRunner();
  });

  test("flow control the runner does not implement (debounce) is refused, not ignored", async () => {
    setLocalFunctions([...probeFunctions, debounced]);
    try {
      await assert.rejects(deliverLocalEvent("test/debounced", {}), /tuna-debounced uses debounce, which the local workflow runner does not implement/);
    } finally {
      setLocalFunctions(probeFunctions);
    }
  });

  test("cron: one run per slot even with two runners polling", async () => {
    // The ticker runs every minute: a test that crossed a minute would see the next slot's run too (it did, once).
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    const a = startLocalRunner({ functions: probeFunctions, pollMs: 50, cron: true, log: () => {} });
    const b = startLocalRunner({ functions: probeFunctions, pollMs: 50, cron: true, log: () => {} });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && count("tick") < 1) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    await a.stop();
    await b.stop();
    assert.equal(count("tick"), 1);
    assert.equal(await db.workflowRun.count({ where: { functionId: "tuna-ticker" } }), 1);
  });

  test("restart: a runner killed between steps (and one killed mid-step) resumes without repeating finished steps", async () => {
    const children: ChildProcess[] = [];
    after(() => {
      for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    });
    const startChild = () =>
      new Promise<ChildProcess>((resolve, reject) => {
        const c = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "test/restart-child.ts")], {
          env: { ...process.env },
          stdio: ["ignore", "pipe", "inherit"],
        });
        children.push(c);
        c.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve(c));
        c.once("exit", (code) => reject(new Error(`child exited ${code}`)));
      });
    const kill = (c: ChildProcess) =>
      new Promise<void>((resolve) => {
        c.removeAllListeners("exit");
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      });
    const waitFor = async (pred: () => Promise<boolean>, ms = 20_000) => {
      const end = Date.now() + ms;
      while (!(await pred())) {
        if (Date.now() > end) throw new Error("timed out");
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    const before = { a: count("a"), b: count("b") };
    const first = await startChild();
    const { runIds: [id] } = await deliverLocalEvent("test/probe", { gap: "1500ms" });
    // Between steps: a, p1, p2 done, the run sleeps.
    await waitFor(async () => (await runOf(id!)).status === "sleeping");
    await kill(first);
    assert.equal(count("a") - before.a, 1);

    const second = await startChild();
    await waitFor(async () => (await runOf(id!)).status === "completed");
    await kill(second);
    assert.equal(count("a") - before.a, 1, "step a ran once across the restart");
    assert.equal(count("b") - before.b, 1);

    // Mid-step: the process dies inside step b; after the lease expires another runner finishes the run.
    const before2 = { a: count("a"), p1: count("p1") };
    const third = await startChild();
    const { runIds: [id2] } = await deliverLocalEvent("test/probe", { gap: "10ms", hangMs: 800 });
    await waitFor(async () => Object.keys(((await runOf(id2!)).steps ?? {}) as object).length === 4);
    await kill(third);
    const fourth = await startChild();
    await waitFor(async () => (await runOf(id2!)).status === "completed");
    await kill(fourth);
    assert.equal(count("a") - before2.a, 1);
    assert.equal(count("p1") - before2.p1, 1);
    assert.deepEqual((await runOf(id2!)).result, { a: { n: 1 }, p1: 1, p2: 2, b: "b" });
  });
});
