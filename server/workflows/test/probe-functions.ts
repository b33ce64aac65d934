import { appendFileSync } from "node:fs";
import { NonRetriableError } from "inngest";
import { inngest } from "../client";

/**
 * Small functions that exercise every op the local runner handles. Each external effect appends a line to
 * PROBE_LOG so tests can count how many times it happened.
 */
const mark = (what: string) => {
  if (process.env.PROBE_LOG) appendFileSync(process.env.PROBE_LOG, `${what}\n`);
};

let flaky = 0;
export function resetFlaky(): void {
  flaky = 0;
}

export const probe = inngest.createFunction({ id: "probe", triggers: [{ event: "test/probe" }], retries: 2 }, async ({ event, step }) => {
  const a = await step.run("a", () => {
    mark("a");
    return { n: 1 };
  });
  const [p1, p2] = await Promise.all([
    step.run("p1", async () => {
      mark("p1");
      return 1;
    }),
    step.run("p2", async () => {
      mark("p2");
      return 2;
    }),
  ]);
  await step.sleep("gap", (event.data as { gap?: string }).gap ?? "200ms");
  const b = await step.run("b", async () => {
    const hang = Number((event.data as { hangMs?: number }).hangMs ?? 0);
    if (hang) await new Promise((r) => setTimeout(r, hang));
    mark("b");
    return "b";
  });
  return { a, p1, p2, b };
});

export const waiter = inngest.createFunction({ id: "waiter", triggers: [{ event: "test/wait" }], retries: 0 }, async ({ event, step }) => {
  const got = await step.waitForEvent("wait-go", {
    event: "test/go",
    timeout: (event.data as { timeout?: string }).timeout ?? "1h",
    if: "async.data.key == event.data.key",
  });
  return { got: got ? (got.data as { key: string; n?: number }) : null };
});

export const retrier = inngest.createFunction({ id: "retrier", triggers: [{ event: "test/retry" }], retries: 3 }, async ({ event, step }) => {
  const r = await step.run("flaky", () => {
    flaky++;
    mark(`flaky-${flaky}`);
    if ((event.data as { permanent?: boolean }).permanent) throw new NonRetriableError("permanently broken");
    if (flaky < 3) throw new Error(`transient failure ${flaky}`);
    return flaky;
  });
  return { r };
});

export const catcher = inngest.createFunction({ id: "catcher", triggers: [{ event: "test/catch" }], retries: 1 }, async ({ step }) => {
  try {
    await step.run("boom", () => {
      throw new NonRetriableError("validation failed: bad input");
    });
    return { caught: null };
  } catch (err) {
    const compensation = await step.run("compensate", () => "cleaned");
    return { caught: (err as Error).message, compensation };
  }
});

export const ticker = inngest.createFunction({ id: "ticker", triggers: [{ cron: "* * * * *" }], retries: 0 }, async ({ step }) => {
  await step.run("tick", () => mark("tick"));
  return "ticked";
});

export const sender = inngest.createFunction({ id: "sender", triggers: [{ event: "test/send" }], retries: 0 }, async ({ event, step }) => {
  const r = await step.sendEvent("send-go", { name: "test/go", data: { key: (event.data as { key: string }).key, n: 42 } });
  return { sent: r.ids.length };
});

/** Logs "start <k>" / "end <k>" around a slow step: the concurrency test checks the intervals. */
export const limited = inngest.createFunction(
  { id: "limited", triggers: [{ event: "test/limited" }], retries: 0, concurrency: [{ key: "event.data.k", limit: 1 }] },
  async ({ event, step }) => {
    const k = (event.data as { k: string; n: number }).k;
    const n = (event.data as { k: string; n: number }).n;
    await step.run("slow", async () => {
      mark(`start ${k} ${n} ${Date.now()}`);
      await new Promise((r) => setTimeout(r, 300));
      mark(`end ${k} ${n} ${Date.now()}`);
    });
  },
);

/** At most one run per key a minute (Inngest's `rateLimit`): events over it start nothing. */
export const rated = inngest.createFunction(
  { id: "rated", triggers: [{ event: "test/rated" }], retries: 0, rateLimit: { key: "event.data.k", limit: 1, period: "1m" } },
  async ({ event }) => ({ k: (event.data as { k: string }).k }),
);

/** Uses flow control the local runner does not implement: the runner must refuse it. */
export const debounced = inngest.createFunction(
  { id: "debounced", triggers: [{ event: "test/debounced" }], retries: 0, debounce: { period: "5s" } },
  async () => "ran",
);

export const probeFunctions = [probe, waiter, retrier, catcher, ticker, sender, limited, rated];
