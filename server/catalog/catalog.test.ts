import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  cheapestServerless,
  estimatePlanCostPerHour,
  formatMicros,
  getOnDemandPrices,
  getSpotPrices,
  GPUS,
  offersFor,
  type ProviderCatalogEntry,
  providerCatalogs,
  resolveGpu,
  savingsIfSpot,
  STATIC_SPOT_PRICES_AS_OF,
  type SpotPrice,
  type SpotPriceSource,
  usdToMicros,
} from "./index";
import { RUNPOD_POOL_BY_GPU, runpodCatalog } from "./providers/runpod";

/** The serverless price table of the earlier tool (notes §4), as catalog entries. */
function entry(provider: string, offers: Array<[gpu: string, id: string, usd: number | null]>): ProviderCatalogEntry {
  return {
    provider,
    displayName: provider,
    kind: "serverless",
    billing: { model: "per-second-active", idleWindowBilled: true },
    pricesAsOf: "2026-03-14",
    offers: offers.map(([gpu, providerGpuId, usd]) => ({ gpu, providerGpuId, pricePerGpuHourUsd: usd, regions: [] })),
  };
}

// Deliberately listed out of catalog order: the tie-break must not depend on array order.
const FIXTURE: ProviderCatalogEntry[] = [
  entry("baseten", [
    ["T4", "T4", 0.63], ["A10G", "A10G", 1.21], ["L4", "L4", 0.85], ["A100-80GB", "A100", 4.0],
    ["H100-MIG", "H100MIG", 3.75], ["H100", "H100", 6.5], ["B200", "B200", 9.98],
  ]),
  entry("cerebrium", [
    ["T4", "TURING_T4", 0.59], ["A10", "AMPERE_A10", 1.1], ["L4", "ADA_L4", 0.8], ["L40S", "ADA_L40", 1.95],
    ["A100-40GB", "AMPERE_A100_40GB", 1.45], ["A100-80GB", "AMPERE_A100_80GB", 2.06], ["H100", "HOPPER_H100", 2.21],
  ]),
  entry("modal", [
    ["T4", "T4", 0.59], ["A10G", "A10", 1.1], ["L4", "L4", 0.8], ["L40S", "L40S", 1.95], ["A100-40GB", "A100-40GB", 2.1],
    ["A100-80GB", "A100-80GB", 2.5], ["H100", "H100", 3.95], ["B200", "B200", 6.25],
  ]),
  entry("runpod", [
    ["L4", "NVIDIA L4", 2.74], ["A4000", "NVIDIA RTX A4000", 0.43], ["A5000", "NVIDIA RTX A5000", 0.58],
    ["A6000", "NVIDIA RTX A6000", 0.79], ["RTX4090", "NVIDIA GeForce RTX 4090", 1.01], ["A40", "NVIDIA A40", 0.79],
    ["L40", "NVIDIA L40", 1.15], ["L40S", "NVIDIA L40S", 1.58], ["A100-80GB", "NVIDIA A100-SXM4-80GB", 1.12],
    ["H100", "NVIDIA H100 80GB HBM3", 4.97], ["H200", "NVIDIA H200", null], ["B200", "NVIDIA B200", null],
  ]),
  entry("cloudrun", [["L4", "nvidia-l4", 0.84], ["RTX-PRO-6000", "nvidia-rtx-pro-6000", 0.84]]),
  entry("azure", [["T4", "Consumption-GPU-NC8as-T4", 0.26], ["A100-80GB", "Consumption-GPU-NC24-A100", 1.9]]),
];

describe("GPU catalog", () => {
  test("every GPU key from the shared catalog comment exists with VRAM and arch", () => {
    const keys = ["T4", "A10", "A10G", "L4", "A4000", "A5000", "A6000", "RTX4090", "A40", "L40", "L40S", "A100-40GB",
      "A100-80GB", "H100-MIG", "H100", "H200", "B200", "RTX-PRO-6000"];
    assert.deepEqual(GPUS.map((g) => g.name), keys);
    assert.equal(resolveGpu("H200").vramGb, 141);
    assert.equal(resolveGpu("T4").arch, "turing");
  });

  test("aliases and spellings resolve to catalog keys", () => {
    assert.equal(resolveGpu("A100").name, "A100-80GB");
    assert.equal(resolveGpu("4090").name, "RTX4090");
    assert.equal(resolveGpu("a100_40gb").name, "A100-40GB");
    assert.equal(resolveGpu("rtx_pro_6000").name, "RTX-PRO-6000");
    assert.equal(resolveGpu(" l4 ").name, "L4");
  });

  test("an unknown GPU is an error listing the known ones", () => {
    assert.throws(() => resolveGpu("V100"), /unknown GPU "V100"; known GPUs: T4, A10,.*RTX-PRO-6000/);
  });
});

describe("cheapestServerless", () => {
  const pick = (gpu: string) => cheapestServerless(gpu, { entries: FIXTURE });

  test("reproduces the earlier tool's automatic picks", () => {
    const expected: Record<string, string> = {
      T4: "azure", A10: "cerebrium", A10G: "modal", L4: "modal", L40S: "runpod", "A100-40GB": "cerebrium",
      "A100-80GB": "runpod", H100: "cerebrium", "H100-MIG": "baseten", B200: "modal", "RTX-PRO-6000": "cloudrun",
      A4000: "runpod", A5000: "runpod", A6000: "runpod", RTX4090: "runpod", A40: "runpod", L40: "runpod",
    };
    for (const [gpu, provider] of Object.entries(expected)) assert.equal(pick(gpu).provider, provider, gpu);
    assert.equal(pick("T4").priceMicros, 260_000);
    assert.equal(pick("A100-80GB").price, 1.12);
    assert.equal(pick("H100").priceMicros, 2_210_000);
  });

  test("ties go to catalog order and the reason says so", () => {
    const l4 = pick("L4");
    assert.equal(l4.provider, "modal");
    assert.deepEqual(l4.candidates.map((c) => c.provider), ["modal", "cerebrium", "cloudrun", "baseten", "runpod"]);
    assert.match(l4.reason, /modal is the cheapest serverless provider for L4 at \$0\.80\/GPU-h; tied with cerebrium, won by catalog order/);
    // Excluding the winner hands the tie to the next in catalog order.
    assert.equal(cheapestServerless("L4", { entries: FIXTURE, exclude: ["modal"] }).provider, "cerebrium");
  });

  test("providers outside the fixed order follow it alphabetically on ties", () => {
    const extra = [...FIXTURE, entry("zeta", [["L4", "l4", 0.8]]), entry("alpha", [["L4", "l4", 0.8]])];
    const r = cheapestServerless("L4", { entries: extra });
    assert.deepEqual(r.candidates.slice(0, 4).map((c) => c.provider), ["modal", "cerebrium", "alpha", "zeta"]);
    const noFixed = cheapestServerless("L4", { entries: extra, providers: ["zeta", "alpha"] });
    assert.equal(noFixed.provider, "alpha");
  });

  test("unknown prices are excluded; H200 has no pick and a clear reason", () => {
    const h200 = pick("H200");
    assert.equal(h200.provider, null);
    assert.equal(h200.price, null);
    assert.deepEqual(h200.candidates, []);
    assert.deepEqual(h200.skipped, [{ provider: "runpod", reason: "price unknown" }]);
    assert.equal(h200.reason, "no serverless provider with a known price offers H200; runpod: price unknown");
    // B200: runpod's unknown price neither wins nor appears as a candidate.
    assert.deepEqual(pick("B200").candidates.map((c) => c.provider), ["modal", "baseten"]);
  });

  test("the next-cheapest is named when there is no tie", () => {
    assert.match(pick("T4").reason, /azure is the cheapest serverless provider for T4 at \$0\.26\/GPU-h; next is modal at \$0\.59\/GPU-h/);
  });

  test("providers filter and exclude are honoured", () => {
    assert.equal(cheapestServerless("T4", { entries: FIXTURE, providers: ["modal", "baseten"] }).provider, "modal");
    const none = cheapestServerless("T4", { entries: FIXTURE, providers: ["runpod"] });
    assert.equal(none.provider, null);
    assert.match(none.reason, /among runpod/);
    assert.equal(cheapestServerless("T4", { entries: FIXTURE, exclude: ["azure", "modal", "cerebrium"] }).provider, "baseten");
  });

  test("the local simulator is never cheapest unless asked for explicitly", () => {
    const withLocal = [...FIXTURE, ...providerCatalogs];
    const t4 = cheapestServerless("T4", { entries: withLocal });
    assert.equal(t4.provider, "azure");
    assert.ok(t4.skipped.some((s) => s.provider === "local" && /explicitly/.test(s.reason)));
    assert.equal(cheapestServerless("T4", { entries: withLocal, providers: ["local"] }).provider, "local");
    const local = providerCatalogs.find((e) => e.provider === "local");
    assert.deepEqual(local?.offers.map((o) => o.gpu), GPUS.map((g) => g.name), "the simulator offers every GPU");
    // Whatever providers are registered, the default pick is never the simulator.
    assert.notEqual(cheapestServerless("L4").provider, "local");
  });

  test("spot catalog entries are never serverless candidates", () => {
    const spotEntry = { ...entry("skyserve", [["T4", "T4", 0.01]]), kind: "spot" as const };
    assert.equal(cheapestServerless("T4", { entries: [...FIXTURE, spotEntry] }).provider, "azure");
  });

  test("offersFor lists every provider's offer in catalog order", () => {
    assert.deepEqual(offersFor("A100", { entries: FIXTURE }).map((o) => o.provider), ["modal", "runpod", "azure", "cerebrium", "baseten"]);
  });
});

describe("money", () => {
  test("micro-dollar conversion and display", () => {
    assert.equal(usdToMicros(0.26), 260_000);
    assert.equal(usdToMicros(2.21), 2_210_000);
    assert.equal(formatMicros(260_000), "$0.26");
    assert.equal(formatMicros(216_000), "$0.216");
    assert.equal(formatMicros(12_000_000), "$12.00");
    assert.equal(formatMicros(1_234_567), "$1.2346");
    assert.equal(formatMicros(-50_000), "-$0.05");
    assert.throws(() => formatMicros(0.5), /integer/);
  });
});

describe("spot prices", () => {
  test("static table covers aws, gcp and azure, dated, and says it was used", async () => {
    for (const cloud of ["aws", "gcp", "azure"] as const) {
      const r = await getSpotPrices(cloud);
      assert.equal(r.source, "static");
      assert.equal(r.asOf, STATIC_SPOT_PRICES_AS_OF);
      assert.match(r.reason, /no live price source configured; using approximate static prices as of/);
      assert.ok(r.prices.length >= 3, cloud);
      for (const p of r.prices) {
        assert.equal(p.cloud, cloud);
        assert.equal(resolveGpu(p.gpu).name, p.gpu);
        assert.ok(resolveGpu(p.gpu).skypilotName, `${p.gpu} must be a GPU SkyPilot offers`);
      }
    }
    const aws = await getSpotPrices("aws");
    assert.deepEqual(aws.prices.find((p) => p.gpu === "L4"), { gpu: "L4", cloud: "aws", pricePerGpuHourUsd: 0.28, instanceType: "g6.4xlarge", region: "us-east-2" });
    const gcp = await getSpotPrices("gcp");
    assert.equal(gcp.prices.find((p) => p.gpu === "H100")?.pricePerGpuHourUsd, 3.2);
    const od = await getOnDemandPrices("aws");
    assert.ok(od.prices.every((p) => p.pricePerGpuHourUsd > (aws.prices.find((s) => s.gpu === p.gpu)?.pricePerGpuHourUsd ?? 0)));
  });

  test("a live source is used when it answers, keeping the cheapest per GPU and dropping NaN", async () => {
    const live: SpotPriceSource = {
      spotPrices: async (cloud) => [
        { gpu: "L4", cloud, pricePerGpuHourUsd: 0.3, instanceType: "a", region: "r1" },
        { gpu: "L4", cloud, pricePerGpuHourUsd: 0.25, instanceType: "b", region: "r2" },
        { gpu: "T4", cloud, pricePerGpuHourUsd: Number.NaN, instanceType: "c", region: "r3" },
      ],
      onDemandPrices: async () => [],
    };
    const r = await getSpotPrices("aws", live);
    assert.equal(r.source, "live");
    assert.deepEqual(r.prices, [{ gpu: "L4", cloud: "aws", pricePerGpuHourUsd: 0.25, instanceType: "b", region: "r2" }]);
    // An empty answer falls back to the static table, and says why.
    const od = await getOnDemandPrices("aws", live);
    assert.equal(od.source, "static");
    assert.match(od.reason, /returned no usable prices/);
  });

  test("a failing live source falls back to the static table with the error in the reason", async () => {
    const broken: SpotPriceSource = {
      spotPrices: async () => {
        throw new Error("SkyPilot API server unreachable");
      },
      onDemandPrices: async () => [],
    };
    const r = await getSpotPrices("gcp", broken);
    assert.equal(r.source, "static");
    assert.match(r.reason, /live price source failed: SkyPilot API server unreachable/);
    assert.ok(r.prices.some((p) => p.gpu === "L4" && p.pricePerGpuHourUsd === 0.22));
  });
});

describe("estimatePlanCostPerHour", () => {
  test("serverless warm workers + spot replicas + router, in micro-dollars", () => {
    const e = estimatePlanCostPerHour(
      { serverless: { provider: "modal", gpu: "L4", gpuCount: 1, minWorkers: 2 }, spot: { cloud: "aws", gpu: "L4", gpuCount: 1, minReplicas: 1 }, routerUsdPerHour: 0.04 },
      { entries: FIXTURE },
    );
    assert.deepEqual(e.items.map((i) => [i.component, i.microsPerHour]), [["serverless", 1_600_000], ["spot", 280_000], ["router", 40_000]]);
    assert.equal(e.totalMicrosPerHour, 1_920_000);
    assert.equal(e.totalDisplay, "$1.92/h");
    assert.equal(e.complete, true);
    assert.match(e.items[0].description, /modal 2 warm worker\(s\) × 1 L4 × \$0\.80\/GPU-h/);
    assert.match(e.items[1].description, /g6\.4xlarge, us-east-2/);
  });

  test("multi-GPU replicas multiply by gpuCount; scale-to-zero costs nothing", () => {
    const e = estimatePlanCostPerHour(
      { serverless: { provider: "runpod", gpu: "A100", gpuCount: 2, minWorkers: 0 }, spot: { cloud: "gcp", gpu: "A100-80GB", gpuCount: 4, minReplicas: 2 }, routerUsdPerHour: 0 },
      { entries: FIXTURE },
    );
    assert.equal(e.items[0].microsPerHour, 0);
    assert.match(e.items[0].description, /scales to zero/);
    assert.equal(e.items[1].quantity, 8);
    assert.equal(e.items[1].microsPerHour, 8 * 2_030_000);
    assert.equal(e.totalMicrosPerHour, 16_240_000);
  });

  test("heterogeneous plans price each side with its own GPU", () => {
    const e = estimatePlanCostPerHour(
      { serverless: { provider: "azure", gpu: "T4", gpuCount: 1, minWorkers: 1 }, spot: { cloud: "aws", gpu: "H100", gpuCount: 1, minReplicas: 1 }, routerUsdPerHour: 0 },
      { entries: FIXTURE },
    );
    assert.deepEqual(e.items.map((i) => i.unitPriceMicros), [260_000, 2_050_000, 0]);
    assert.equal(e.totalMicrosPerHour, 2_310_000);
  });

  test("live spot prices override the static table", () => {
    const live: SpotPrice[] = [{ gpu: "L4", cloud: "aws", pricePerGpuHourUsd: 0.2, instanceType: "g6.xlarge", region: "us-west-2" }];
    const e = estimatePlanCostPerHour({ spot: { cloud: "aws", gpu: "L4", gpuCount: 1, minReplicas: 3 }, routerUsdPerHour: 0 }, { spotPrices: live });
    assert.equal(e.totalMicrosPerHour, 600_000);
  });

  test("the local simulator as the spot fleet is priced for illustration as the cost pages price it, and says so", () => {
    const e = estimatePlanCostPerHour({ spot: { simulator: true, clouds: [], gpu: "L4", gpuCount: 2, minReplicas: 1 }, routerUsdPerHour: 0 });
    // The cheapest static L4 spot price over all clouds: GCP's 0.22.
    assert.equal(e.items[0].description, "local-spot simulator 1 replica(s) × 2 L4 × $0.22/GPU-h on 127.0.0.1 (illustrative: gcp spot price; nothing is billed)");
    assert.equal(e.totalMicrosPerHour, 440_000);
    assert.equal(e.complete, true);
    assert.deepEqual(e.warnings, []);
  });

  test("unknown prices are flagged, not guessed", () => {
    const e = estimatePlanCostPerHour(
      { serverless: { provider: "runpod", gpu: "H200", gpuCount: 1, minWorkers: 1 }, spot: { cloud: "azure", gpu: "L4", gpuCount: 1, minReplicas: 1 }, routerUsdPerHour: 0.04 },
      { entries: FIXTURE },
    );
    assert.equal(e.complete, false);
    assert.equal(e.totalMicrosPerHour, 40_000);
    assert.equal(e.warnings.length, 2);
    assert.match(e.warnings[0], /no known runpod price for H200/);
    assert.match(e.warnings[1], /no known azure spot price for L4/);
  });

  test("bad counts are rejected", () => {
    assert.throws(() => estimatePlanCostPerHour({ serverless: { provider: "modal", gpu: "L4", gpuCount: 0, minWorkers: 1 }, routerUsdPerHour: 0 }), /gpuCount must be an integer ≥ 1/);
    assert.throws(() => estimatePlanCostPerHour({ spot: { cloud: "aws", gpu: "L4", gpuCount: 1, minReplicas: 1.5 }, routerUsdPerHour: 0 }), /minReplicas/);
    assert.throws(() => estimatePlanCostPerHour({ routerUsdPerHour: -1 }), /routerUsdPerHour/);
    assert.throws(() => estimatePlanCostPerHour({ spot: { simulator: true, clouds: [], gpu: "L4", gpuCount: 0, minReplicas: 1 }, routerUsdPerHour: 0 }), /gpuCount/);
  });
});

describe("savingsIfSpot", () => {
  test("(cheapest serverless − cheapest spot across clouds) / cheapest serverless", () => {
    const l4 = savingsIfSpot("L4", { entries: FIXTURE });
    assert.deepEqual(l4.serverless, { provider: "modal", priceMicros: 800_000 });
    assert.equal(l4.spot?.cloud, "gcp");
    assert.equal(l4.spot?.priceMicros, 220_000);
    assert.equal(l4.percent, 73); // (0.80 − 0.22) / 0.80 = 72.5 %
    assert.equal(l4.display, "73% cheaper");
  });

  test("same, more and n/a", () => {
    const spot = (gpu: string, usd: number): SpotPrice => ({ gpu, cloud: "aws", pricePerGpuHourUsd: usd, instanceType: "x", region: "y" });
    assert.equal(savingsIfSpot("T4", { entries: FIXTURE, spotPrices: [spot("T4", 0.26)] }).display, "same");
    const more = savingsIfSpot("T4", { entries: FIXTURE, spotPrices: [spot("T4", 0.39)] });
    assert.equal(more.percent, -50);
    assert.equal(more.display, "50% more");
    const none = savingsIfSpot("H200", { entries: FIXTURE });
    assert.equal(none.percent, null);
    assert.equal(none.display, "n/a");
  });
});

describe("static price tables are plausible", () => {
  const priced = (e: ProviderCatalogEntry) =>
    new Map(e.offers.filter((o) => typeof o.pricePerGpuHourUsd === "number" && o.pricePerGpuHourUsd > 0).map((o) => [o.gpu, o.pricePerGpuHourUsd as number]));
  // Classes a provider never prices in reverse: an entry-level card costs less than an A100, an A100 less than an H100.
  const CLASSES = [["T4", "L4", "A4000", "A5000"], ["A100-40GB", "A100-80GB"], ["H100"]];

  for (const entry of providerCatalogs.filter((e) => e.provider !== "local")) {
    test(`${entry.provider}: T4/L4 < A100 < H100`, () => {
      const p = priced(entry);
      for (let i = 0; i + 1 < CLASSES.length; i++) {
        for (const lo of CLASSES[i]) {
          for (const hi of CLASSES.slice(i + 1).flat()) {
            const a = p.get(lo);
            const b = p.get(hi);
            if (a !== undefined && b !== undefined) assert.ok(a < b, `${entry.provider}: ${lo} at $${a}/h is not cheaper than ${hi} at $${b}/h`);
          }
        }
      }
    });
  }

  test("runpod: GPUs of one pool cost the same (RunPod prices by pool), and every pool's GPU has a row", () => {
    const p = priced(runpodCatalog);
    const byPool = new Map<string, Array<[string, number]>>();
    for (const [gpu, pool] of Object.entries(RUNPOD_POOL_BY_GPU)) {
      const price = p.get(gpu);
      assert.ok(price !== undefined, `${gpu} has no price`);
      byPool.set(pool, [...(byPool.get(pool) ?? []), [gpu, price]]);
    }
    for (const [pool, rows] of byPool) assert.equal(new Set(rows.map(([, price]) => price)).size, 1, `${pool}: ${JSON.stringify(rows)}`);
    assert.equal(p.get("L4"), 0.68, "0.00019 $/s, RunPod's published 24 GB flex rate");
    assert.equal(p.get("A100-80GB"), 2.74, "0.00076 $/s");
  });

  test("the local simulator's illustrative price is the cheapest real serverless price of each GPU", () => {
    const local = providerCatalogs.find((e) => e.provider === "local")!;
    for (const o of local.offers) {
      const real = cheapestServerless(o.gpu, { entries: providerCatalogs.filter((e) => e.provider !== "local") });
      assert.equal(o.pricePerGpuHourUsd, real.provider ? real.price : null, `local ${o.gpu}`);
    }
  });
});
