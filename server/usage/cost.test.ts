import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  attributeToKeys,
  clipToLives,
  computeCost,
  type CostInput,
  priceMs,
  readyIntervalsFromEvents,
  type ServerlessBilling,
  serverlessBilledMs,
} from "./cost";

// Hand-computed cases. Prices in micro-dollars per GPU-hour: a cost is seconds × price / 3600.
const S = 1000;
const MIN = 60 * S;
const L4_SVL = 800_000; // $0.80/GPU-h
const L4_SPOT = 280_000; // $0.28/GPU-h
const L4_OD = 800_000;
const A100_SVL = 2_500_000;
const A100_OD = 3_670_000;

const l4Serverless: ServerlessBilling = {
  provider: "modal", gpu: "L4", gpuCount: 1, pricePerGpuHourMicros: L4_SVL,
  idleWindowS: 60, idleWindowBilled: true, minimumBillableS: 0, minWorkers: 0, concurrency: 32,
};

function input(over: Partial<CostInput>): CostInput {
  return {
    fromMs: 0, toMs: 3600 * S, bucketMs: MIN, activity: [], spotReady: [],
    serverless: l4Serverless, serverlessLiveMs: 3600 * S, deploymentLiveMs: 3600 * S,
    spot: { cloud: "aws", gpu: "L4", gpuCount: 1, spotPricePerGpuHourMicros: L4_SPOT },
    routerMicrosPerHour: 0, routerLiveMs: 0,
    counterfactualServerless: l4Serverless, onDemandSpotGpuMicros: L4_OD, onDemandServerlessGpuMicros: L4_OD,
    ...over,
  };
}

const act = (t: number, kind: "serverless" | "spot", requests: number, busyMs: number, outputTokens = 0) => ({
  t, kind, requests, busyMs, inputTokens: 0, outputTokens,
});

describe("cost model", () => {
  test("priceMs is exact integer arithmetic", () => {
    assert.equal(priceMs(3600 * S, 1, 800_000), 800_000);
    assert.equal(priceMs(160 * S, 1, 800_000), 35_556); // 35 555.56 rounded
    assert.equal(priceMs(3600 * S * 24 * 31, 8, 9_980_000), 9_980_000 * 8 * 24 * 31);
  });

  test("spot never ready: serverless is billed from its own busy time, not $0 (the earlier tool's flaw)", () => {
    const r = computeCost(input({
      toMs: 600 * S,
      serverlessLiveMs: 600 * S,
      activity: [act(0, "serverless", 10, 30 * S, 1000), act(5 * MIN, "serverless", 5, 10 * S, 500)],
    }));
    // minute 0: 30 s busy + 60 s idle window; minute 5: 10 s busy + 60 s idle window → 160 s
    assert.equal(r.usage.serverlessBilledWorkerMs, 160 * S);
    assert.equal(r.actual.serverless, 35_556);
    assert.ok(r.actual.serverless! > 0);
    assert.equal(r.actual.spot, 0);
    assert.equal(r.actual.total, 35_556);
    assert.equal(r.counterfactual.allServerless, 35_556);
    assert.deepEqual(r.savings, { vsServerless: 0, vsServerlessPct: 0, vsOnDemand: 35_556 - 35_556, vsOnDemandPct: 0 });
    assert.equal(r.costPer1MOutputTokens, Math.round((35_556 * 1e6) / 1500));
  });

  test("spot always ready, all traffic on spot", () => {
    const activity = Array.from({ length: 60 }, (_, i) => act(i * MIN, "spot", 60, 120 * S, 6000));
    const r = computeCost(input({ activity, spotReady: [{ start: 0, end: 3600 * S, replicas: 1 }] }));
    assert.equal(r.actual.spot, 280_000);
    assert.equal(r.actual.serverless, 0);
    assert.equal(r.actual.total, 280_000);
    // All serverless: 2 in flight ≤ concurrency 32 → one worker busy the whole hour → $0.80
    assert.equal(r.counterfactual.allServerless, 800_000);
    assert.equal(r.counterfactual.allOnDemand, 800_000);
    assert.deepEqual(r.savings, { vsServerless: 520_000, vsServerlessPct: 65, vsOnDemand: 520_000, vsOnDemandPct: 65 });
    assert.equal(r.costPer1MOutputTokens, Math.round((280_000 * 1e6) / 360_000));
  });

  test("scale-to-zero periods: spot ready 10 min, then serverless picks up", () => {
    const activity = [
      ...Array.from({ length: 10 }, (_, i) => act(i * MIN, "spot", 10, 30 * S)),
      act(20 * MIN, "serverless", 4, 20 * S),
    ];
    const r = computeCost(input({ activity, spotReady: [{ start: 0, end: 600 * S, replicas: 1 }] }));
    assert.equal(r.actual.spot, 46_667); // 600 s × $0.28/h
    assert.equal(r.actual.serverless, 17_778); // (20 s + 60 s idle window) × $0.80/h
    assert.equal(r.actual.total, 64_445);
    // All serverless: minutes 0–8 run back to back (30 s busy + 30 s until the next minute), minute 9 ends
    // with a full idle window (90 s), minute 20 is a new activation (80 s): 710 s.
    assert.equal(r.counterfactual.allServerless, 157_778);
    assert.equal(r.savings!.vsServerless, 157_778 - 64_445);
    assert.equal(r.savings!.vsServerlessPct, Math.round(((157_778 - 64_445) / 157_778) * 1000) / 10);
    const billed = serverlessBilledMs(activity.map((a) => ({ t: a.t, busyMs: a.busyMs })), l4Serverless, MIN, 3600 * S);
    assert.equal(billed.total, 710 * S);
    assert.equal(billed.activations, 2);
  });

  test("heterogeneous GPUs: A100 serverless, 2 × L4 spot replicas", () => {
    const a100: ServerlessBilling = { ...l4Serverless, gpu: "A100-80GB", pricePerGpuHourMicros: A100_SVL };
    const r = computeCost(input({
      serverless: a100,
      counterfactualServerless: a100,
      onDemandServerlessGpuMicros: A100_OD,
      activity: [act(0, "serverless", 1, 6 * S), act(MIN, "spot", 2, 12 * S)],
      spotReady: [{ start: 60 * S, end: 3600 * S, replicas: 2 }],
    }));
    assert.equal(r.actual.serverless, priceMs(66 * S, 1, A100_SVL)); // 45 833
    assert.equal(r.actual.serverless, 45_833);
    assert.equal(r.actual.spot, 550_667); // 3540 s × 2 replicas × $0.28/h
    assert.equal(r.actual.total, 596_500);
    // All on the A100 provider: 6 s + 54 s (until spot's request) then 12 s + 60 s → 132 s
    assert.equal(r.counterfactual.allServerless, 91_667);
    // On-demand: spot time at L4 on-demand, serverless time at A100 on-demand
    assert.equal(r.counterfactual.allOnDemand, priceMs(7080 * S, 1, L4_OD) + priceMs(66 * S, 1, A100_OD));
    assert.equal(r.counterfactual.allOnDemand, 1_573_333 + 67_283);
    assert.equal(r.savings!.vsServerless, 91_667 - 596_500); // idle spot replicas cost more than they saved
    assert.ok(r.savings!.vsServerlessPct! < 0);
  });

  test("serverless-only deployment with a warm worker and scale-out", () => {
    const warm: ServerlessBilling = { ...l4Serverless, minWorkers: 1, concurrency: 4 };
    const r = computeCost(input({
      toMs: 600 * S,
      serverless: warm,
      serverlessLiveMs: 600 * S,
      spot: null,
      counterfactualServerless: warm,
      onDemandSpotGpuMicros: null,
      onDemandServerlessGpuMicros: null,
      // minute 0: 1 in flight (the warm worker covers it); minute 1: 8 in flight → 2 workers, 1 extra
      activity: [act(0, "serverless", 6, 60 * S), act(MIN, "serverless", 48, 480 * S)],
    }));
    // warm 600 s + extra worker 60 s + 60 s idle window = 720 s × $0.80/h
    assert.equal(r.usage.serverlessWarmWorkerMs, 600 * S);
    assert.equal(r.usage.serverlessBilledWorkerMs, 120 * S);
    assert.equal(r.actual.serverless, 160_000);
    assert.equal(r.actual.spot, 0);
    assert.equal(r.counterfactual.allServerless, 160_000);
    assert.equal(r.counterfactual.allOnDemand, null);
    assert.deepEqual(r.savings, { vsServerless: 0, vsServerlessPct: 0, vsOnDemand: null, vsOnDemandPct: null });
  });

  test("no data: no saving is reported, not even $0", () => {
    const r = computeCost(input({}));
    assert.equal(r.savings, null);
    assert.equal(r.costPer1MOutputTokens, null);
    assert.equal(r.actual.total, 0);
    assert.ok(r.explanation.some((l) => /no usage reported/.test(l)));
  });

  test("unknown price is unknown, not $0", () => {
    const r = computeCost(input({
      serverless: { ...l4Serverless, pricePerGpuHourMicros: null },
      activity: [act(0, "serverless", 1, 5 * S)],
    }));
    assert.equal(r.actual.serverless, null);
    assert.equal(r.actual.total, null);
    assert.equal(r.costPer1MOutputTokens, null);
  });

  test("router cost, idle window not billed, minimum billable seconds", () => {
    const r = computeCost(input({ routerMicrosPerHour: 40_000, routerLiveMs: 1800 * S }));
    assert.equal(r.actual.router, 20_000);
    const noIdle = serverlessBilledMs([{ t: 0, busyMs: 10 * S }], { ...l4Serverless, idleWindowBilled: false }, MIN, 3600 * S);
    assert.equal(noIdle.total, 10 * S);
    const min = serverlessBilledMs([{ t: 0, busyMs: 10 * S }], { ...l4Serverless, minimumBillableS: 120 }, MIN, 3600 * S);
    assert.equal(min.total, 120 * S);
  });

  test("ready intervals: routers' views are unioned, distinct backends add, earlier state carries in", () => {
    const ev = (routerId: string, backendId: string, state: string, at: number, replicas = 1) => ({ routerId, backendId, state, at, replicas });
    const iv = readyIntervalsFromEvents(
      [ev("r1", "spot", "ready", 0), ev("r1", "spot", "cold", 600 * S), ev("r2", "spot", "ready", 300 * S), ev("r2", "spot", "cold", 900 * S)],
      0,
      3600 * S,
    );
    assert.equal(iv.reduce((s, i) => s + (i.end - i.start) * i.replicas, 0), 900 * S);
    // Ready before the range starts, never changed: ready for the whole range.
    const carried = readyIntervalsFromEvents([ev("r1", "spot", "ready", -5000 * S, 2)], 0, 100 * S);
    assert.deepEqual(carried, [{ start: 0, end: 100 * S, replicas: 2 }]);
    const two = readyIntervalsFromEvents([ev("r1", "a", "ready", 0), ev("r1", "b", "ready", 0)], 0, 10 * S);
    assert.equal(two.reduce((s, i) => s + (i.end - i.start) * i.replicas, 0), 20 * S);
    const warming = readyIntervalsFromEvents([ev("r1", "a", "warming", 0)], 0, 10 * S);
    assert.equal(warming.length, 0);
  });

  test("ready intervals: a gone router's view ends at its last sign of life, ready time outside the component's lives is cut", () => {
    const ev = (routerId: string, backendId: string, state: string, at: number) => ({ routerId, backendId, state, at, replicas: 1 });
    // r1 saw it ready from before the range and went silent at 100 s; r2 saw it ready 300 s → 400 s.
    const events = [ev("r1", "spot", "ready", -50 * S), ev("r2", "spot", "ready", 300 * S), ev("r2", "spot", "cold", 400 * S)];
    const views = readyIntervalsFromEvents(events, 0, 3600 * S, { viewEnds: new Map([["r1", 100 * S]]) });
    assert.deepEqual(views, [{ start: 0, end: 100 * S, replicas: 1 }, { start: 300 * S, end: 400 * S, replicas: 1 }]);
    // Gone before the range: nothing, although its last event before the range said ready.
    assert.deepEqual(readyIntervalsFromEvents(events.slice(0, 1), 200 * S, 3600 * S, { viewEnds: new Map([["r1", 100 * S]]) }), []);
    // Lives 50 → 120 s and 350 s → ∞ (overlapping lives are not counted twice).
    const lives = [{ start: 50 * S, end: 120 * S }, { start: 60 * S, end: 70 * S }, { start: 350 * S, end: Number.POSITIVE_INFINITY }];
    assert.deepEqual(clipToLives(views, lives), [{ start: 50 * S, end: 100 * S, replicas: 1 }, { start: 350 * S, end: 400 * S, replicas: 1 }]);
  });

  test("all-serverless baseline of a deployment without serverless: warm workers for the deployment's live time, not the range", () => {
    const r = computeCost(input({
      toMs: 240 * 3600 * S, serverless: null, serverlessLiveMs: 0, deploymentLiveMs: 3600 * S,
      counterfactualServerless: { ...l4Serverless, minWorkers: 1 },
      activity: [{ t: 30 * MIN, kind: "spot", requests: 100, busyMs: 100 * S, inputTokens: 0, outputTokens: 0 }],
      spotReady: [{ start: 0, end: 3600 * S, replicas: 1 }],
    }));
    assert.equal(r.counterfactual.allServerless, priceMs(3600 * S, 1, L4_SVL), "was 240 h of a warm worker");
  });

  test("key attribution shares each bucket's cost by busy time", () => {
    const keys = attributeToKeys(
      [{ t: 0, serverless: 900, spot: 300 }],
      [
        { t: 0, kind: "serverless", keyId: "a", busyMs: 2000, requests: 2 },
        { t: 0, kind: "serverless", keyId: "b", busyMs: 1000, requests: 1 },
        { t: 0, kind: "spot", keyId: "b", busyMs: 500, requests: 1 },
      ],
    );
    assert.equal(keys.get("a"), 600);
    assert.equal(keys.get("b"), 600);
  });
});
