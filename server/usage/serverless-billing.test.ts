import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultScaling } from "../providers/base/engine";
import { attributeToKeys, computeCost, type CostInput, priceMs, type ServerlessBilling, serverlessBilledMs } from "./cost";
import { serverlessBillingFor } from "./pricing";

// The serverless billing model on the shapes the router really reports: a request's whole busy time lands in
// the minute it completes, the provider never runs more than `maxWorkers` containers, and ranges older than
// minute retention only have hour rollups.
const S = 1000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
const L4_SVL = 800_000; // $0.80/GPU-h

const l4: ServerlessBilling = {
  provider: "modal", gpu: "L4", gpuCount: 1, pricePerGpuHourMicros: L4_SVL,
  idleWindowS: 60, idleWindowBilled: true, minimumBillableS: 0, minWorkers: 0, maxWorkers: 1, concurrency: 32,
};

function input(over: Partial<CostInput>): CostInput {
  return {
    fromMs: 0, toMs: HOUR, bucketMs: MIN, activity: [], spotReady: [], serverless: l4, serverlessLiveMs: HOUR, deploymentLiveMs: HOUR, spot: null,
    routerMicrosPerHour: 0, routerLiveMs: 0, counterfactualServerless: l4, onDemandSpotGpuMicros: null, onDemandServerlessGpuMicros: null,
    ...over,
  };
}

const svl = (t: number, requests: number, busyMs: number, bucketMs?: number) => ({
  t, kind: "serverless" as const, requests, busyMs, inputTokens: 0, outputTokens: 0, ...(bucketMs ? { bucketMs } : {}),
});

describe("serverless billing model", () => {
  test("a request longer than its minute is billed for all the time it ran, not just that minute", () => {
    // One 300-s stream, reported with its whole busy time in minute 10 (the minute it completed).
    const one = computeCost(input({ activity: [svl(10 * MIN, 1, 300 * S)] }));
    // The worker ran minutes 6–10 for it, then idled 60 s: 360 s (was 120 s: min(60 s, 300 s) + 60 s).
    assert.equal(one.usage.serverlessBilledWorkerMs, 360 * S);
    assert.equal(one.actual.serverless, priceMs(360 * S, 1, L4_SVL));
    assert.equal(one.counterfactual.allServerless, one.actual.serverless, "the all-serverless baseline bills it the same way");
    // Same figure as if the router had reported the busy time minute by minute as it ran.
    const spread = serverlessBilledMs(Array.from({ length: 5 }, (_, i) => ({ t: (6 + i) * MIN, busyMs: MIN, requests: 1 })), l4, MIN, HOUR);
    assert.equal(spread.total, 360 * S);
    // The key that sent it carries all of it: the extra time is attributed to the minute holding the request.
    const keys = attributeToKeys(one.buckets, [{ t: 10 * MIN, kind: "serverless", keyId: "k", busyMs: 300 * S, requests: 1 }]);
    assert.equal(keys.get("k"), one.actual.serverless);
  });

  test("long requests spill only as far back as they ran: many short requests in one minute do not", () => {
    // 64 requests of ~1 s completing in one minute: 64 s of busy time fits in the minute (64 × 60 s could).
    const short = serverlessBilledMs([{ t: 10 * MIN, busyMs: 64 * S, requests: 64 }], l4, MIN, HOUR);
    assert.equal(short.total, (60 + 60) * S);
    // A long request overlapping other traffic adds to it instead of starting a second run.
    const mixed = serverlessBilledMs([{ t: 8 * MIN, busyMs: 5 * S, requests: 1 }, { t: 10 * MIN, busyMs: 150 * S, requests: 1 }], l4, MIN, HOUR);
    // The stream fills minutes 10 and 9 and 30 s of minute 8, where the 5-s request also ran: one worker up
    // from minute 8 to the end of minute 10, then the 60-s idle window.
    assert.equal(mixed.total, (60 + 60 + 60 + 60) * S);
    assert.equal(mixed.activations, 1);
  });

  test("maxWorkers caps the workers billed (64 streams for an hour on Modal L4 with the default maxWorkers 1)", () => {
    const spec = { serverlessScaling: defaultScaling().serverless };
    const b = serverlessBillingFor("modal", "L4", 1, spec);
    assert.equal(b.maxWorkers, 1);
    const activity = Array.from({ length: 60 }, (_, i) => svl(i * MIN, 64, 64 * MIN));
    const c = computeCost(input({ activity, serverless: b, counterfactualServerless: b }));
    // 64 in flight at concurrency 32 would need 2 workers, but Modal runs at most 1 container: 1 worker-hour
    // (was 2 worker-hours, $1.60).
    assert.equal(c.usage.serverlessBilledWorkerMs, HOUR);
    assert.equal(c.actual.serverless, priceMs(HOUR, 1, b.pricePerGpuHourMicros!));
    assert.equal(c.actual.serverless, 800_000);
    // With room for 2 workers, both are billed.
    const two = computeCost(input({ activity, serverless: { ...b, maxWorkers: 2 } }));
    assert.equal(two.usage.serverlessBilledWorkerMs, 2 * HOUR);
    // Warm workers count against the cap: minWorkers 1, maxWorkers 1 leaves no extra worker to bill.
    const warm = computeCost(input({ activity, serverless: { ...b, minWorkers: 1 } }));
    assert.equal(warm.usage.serverlessBilledWorkerMs, 0);
    assert.equal(warm.usage.serverlessWarmWorkerMs, HOUR);
  });

  test("hour rollups (ranges past minute retention) estimate the idle windows between an hour's requests", () => {
    const billing = { ...l4, maxWorkers: 10 };
    // 24 h of one 2-s request per minute: the worker never idles 60 s, so it is up all day.
    const minutes = Array.from({ length: 1440 }, (_, i) => svl(i * MIN, 1, 2 * S));
    const hours = Array.from({ length: 24 }, (_, i) => svl(i * HOUR, 60, 120 * S, HOUR));
    const exact = computeCost(input({ toMs: 24 * HOUR, serverlessLiveMs: 24 * HOUR, serverless: billing, activity: minutes }));
    const est = computeCost(input({ toMs: 24 * HOUR, serverlessLiveMs: 24 * HOUR, serverless: billing, activity: hours }));
    assert.equal(exact.usage.serverlessBilledWorkerMs, 24 * HOUR);
    // The estimate (requests arriving at random within each hour) is within a factor 1.6 of the truth for
    // this evenly spaced worst case; hour buckets read as "2 min busy + one idle window" were 20× below.
    const ratio = exact.usage.serverlessBilledWorkerMs / est.usage.serverlessBilledWorkerMs;
    assert.ok(ratio > 1 && ratio < 1.6, `exact / estimate = ${ratio}`);
    // A single request per hour is exact either way: 2 s + the 60-s idle window.
    const lone = (bucketMs: number) =>
      serverlessBilledMs([{ t: 0, busyMs: 2 * S, requests: 1, bucketMs }, { t: 3 * HOUR, busyMs: 2 * S, requests: 1, bucketMs }], billing, MIN, 24 * HOUR);
    assert.equal(lone(HOUR).total, 2 * 62 * S);
    assert.equal(lone(MIN).total, 2 * 62 * S);
  });
});
