import type { ProviderCatalogEntry } from "../types";

/**
 * The `local` provider runs the GPU simulator on loopback; nothing is billed. Its prices are simulated
 * (the cheapest real serverless price per GPU, late 2026) so the embedded demo shows realistic cost and
 * savings figures. `cheapestServerless` never picks it unless asked for explicitly.
 */
const SIMULATED: Array<[gpu: string, usd: number | null]> = [
  ["T4", 0.26],
  ["A10", 1.1],
  ["A10G", 1.1],
  ["L4", 0.68],
  ["A4000", 0.58],
  ["A5000", 0.68],
  ["A6000", 1.22],
  ["RTX4090", 1.12],
  ["A40", 1.22],
  ["L40", 1.91],
  ["L40S", 1.91],
  ["A100-40GB", 1.45],
  ["A100-80GB", 1.9],
  ["H100-MIG", 3.75],
  ["H100", 2.21],
  ["H200", 5.58],
  ["B200", 6.25],
  ["RTX-PRO-6000", 0.84],
];

export const localCatalog: ProviderCatalogEntry = {
  provider: "local",
  displayName: "Local simulator",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-11-01",
  offers: SIMULATED.map(([gpu, usd]) => ({
    gpu,
    providerGpuId: gpu,
    pricePerGpuHourUsd: usd,
    regions: ["local"],
    note: "simulated on loopback; price is illustrative, nothing is billed",
  })),
};
