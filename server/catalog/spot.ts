/**
 * Spot and on-demand GPU prices for the clouds SkyPilot launches on.
 *
 * Live numbers come from a `SpotPriceSource` (the SkyPilot-backed one lives with the SkyPilot client);
 * when it is absent or fails, `getSpotPrices` falls back to the static table below and says so.
 * Like SkyPilot's own catalog query, only single-GPU offerings are listed, cheapest per GPU and cloud.
 */
import { usdToMicros } from "./money";

export type SpotCloud = "aws" | "gcp" | "azure";
export const SPOT_CLOUDS: readonly SpotCloud[] = ["aws", "gcp", "azure"];

export interface SpotPrice {
  /** Catalog GPU key. */
  gpu: string;
  cloud: SpotCloud;
  pricePerGpuHourUsd: number;
  instanceType: string;
  region: string;
}

export interface SpotPriceSource {
  spotPrices(cloud: SpotCloud): Promise<SpotPrice[]>;
  onDemandPrices(cloud: SpotCloud): Promise<SpotPrice[]>;
}

/**
 * Date of the static table. The figures are APPROXIMATE: the AWS/GCP L4 and H100 spot numbers are the ones
 * observed by the earlier Python tool; the rest are typical public list prices of late 2026, rounded. Spot
 * prices move hourly — use a live source for anything that bills.
 */
export const STATIC_SPOT_PRICES_AS_OF = "2026-11-01";
export const STATIC_SPOT_PRICES_NOTE = `approximate static prices as of ${STATIC_SPOT_PRICES_AS_OF}`;

type Row = [gpu: string, instanceType: string, region: string, spotUsd: number, onDemandUsd: number];

const STATIC_ROWS: Record<SpotCloud, Row[]> = {
  aws: [
    ["T4", "g4dn.xlarge", "us-east-1", 0.22, 0.53],
    ["A10G", "g5.xlarge", "us-east-1", 0.42, 1.01],
    ["L4", "g6.4xlarge", "us-east-2", 0.28, 0.8],
    ["L40S", "g6e.xlarge", "us-east-1", 0.76, 1.86],
    ["H100", "p5.4xlarge", "us-east-1", 2.05, 6.88],
  ],
  gcp: [
    ["T4", "n1-standard-4", "us-central1-a", 0.14, 0.35],
    ["L4", "n1-highmem-4", "me-west1-b", 0.22, 0.71],
    ["A100-40GB", "a2-highgpu-1g", "us-central1-a", 1.47, 3.67],
    ["A100-80GB", "a2-ultragpu-1g", "us-central1-a", 2.03, 5.07],
    ["H100", "a3-highgpu-1g", "us-central1-a", 3.2, 11.06],
  ],
  azure: [
    ["T4", "Standard_NC4as_T4_v3", "eastus", 0.12, 0.53],
    ["A100-80GB", "Standard_NC24ads_A100_v4", "eastus", 0.95, 3.67],
    ["H100", "Standard_NC40ads_H100_v5", "eastus", 2.8, 6.98],
  ],
};

function staticPrices(cloud: SpotCloud, which: "spot" | "onDemand"): SpotPrice[] {
  return STATIC_ROWS[cloud].map(([gpu, instanceType, region, spot, od]) => ({
    gpu,
    cloud,
    pricePerGpuHourUsd: which === "spot" ? spot : od,
    instanceType,
    region,
  }));
}

export const staticSpotPriceSource: SpotPriceSource = {
  spotPrices: async (cloud) => staticPrices(cloud, "spot"),
  onDemandPrices: async (cloud) => staticPrices(cloud, "onDemand"),
};

/** Synchronous access to the static table (estimates that must not wait on I/O). */
export function staticSpotPrices(cloud: SpotCloud, which: "spot" | "onDemand" = "spot"): SpotPrice[] {
  return staticPrices(cloud, which);
}

/** A deployment's `spotClouds` that the catalog knows (all of them when it names none). */
export function allowedClouds(clouds: readonly string[]): SpotCloud[] {
  return (clouds.length ? clouds : SPOT_CLOUDS).filter((c): c is SpotCloud => (SPOT_CLOUDS as readonly string[]).includes(c));
}

/** Cheapest static spot or on-demand price for `gpu` over `clouds` (all clouds when empty). */
export function cloudPrice(gpu: string, clouds: readonly string[], which: "spot" | "onDemand"): { cloud: SpotCloud; micros: number } | null {
  const list = allowedClouds(clouds);
  let best: { cloud: SpotCloud; micros: number } | null = null;
  for (const cloud of list) {
    const p = staticSpotPrices(cloud, which).find((x) => x.gpu === gpu);
    if (p && p.pricePerGpuHourUsd > 0 && (!best || usdToMicros(p.pricePerGpuHourUsd) < best.micros)) {
      best = { cloud, micros: usdToMicros(p.pricePerGpuHourUsd) };
    }
  }
  return best;
}

export interface SpotPriceResult {
  cloud: SpotCloud;
  kind: "spot" | "onDemand";
  /** Which source answered. */
  source: "live" | "static";
  /** Why the static table was used, or which live source answered. */
  reason: string;
  /** Set when the static table was used. */
  asOf?: string;
  prices: SpotPrice[];
}

/** Keep one price per GPU (the cheapest); drop non-finite or non-positive prices. */
function cheapestPerGpu(prices: SpotPrice[]): SpotPrice[] {
  const best = new Map<string, SpotPrice>();
  for (const p of prices) {
    if (!Number.isFinite(p.pricePerGpuHourUsd) || p.pricePerGpuHourUsd <= 0) continue;
    const cur = best.get(p.gpu);
    if (!cur || p.pricePerGpuHourUsd < cur.pricePerGpuHourUsd) best.set(p.gpu, p);
  }
  return [...best.values()];
}

async function pricesFrom(
  cloud: SpotCloud,
  kind: "spot" | "onDemand",
  source: SpotPriceSource | undefined,
): Promise<SpotPriceResult> {
  let reason = "no live price source configured";
  if (source) {
    try {
      const live = cheapestPerGpu(kind === "spot" ? await source.spotPrices(cloud) : await source.onDemandPrices(cloud));
      if (live.length > 0) return { cloud, kind, source: "live", reason: "live price source answered", prices: live };
      reason = "live price source returned no usable prices";
    } catch (err) {
      reason = `live price source failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return {
    cloud,
    kind,
    source: "static",
    reason: `${reason}; using ${STATIC_SPOT_PRICES_NOTE}`,
    asOf: STATIC_SPOT_PRICES_AS_OF,
    prices: staticPrices(cloud, kind),
  };
}

export function getSpotPrices(cloud: SpotCloud, source?: SpotPriceSource): Promise<SpotPriceResult> {
  return pricesFrom(cloud, "spot", source);
}

export function getOnDemandPrices(cloud: SpotCloud, source?: SpotPriceSource): Promise<SpotPriceResult> {
  return pricesFrom(cloud, "onDemand", source);
}
