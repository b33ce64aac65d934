import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";

/**
 * Cerebrium serverless GPUs. Prices per GPU-hour as the earlier Python tool's catalog recorded them
 * (python-tuna-notes §4, 2026-03); `providerGpuId` is the `[cerebrium.hardware] compute` value.
 * The Hobby plan offers T4, A10, L4 and L40S only; A100 and H100 need the Enterprise plan.
 * Billing: per second while a replica runs, including the `cooldown` after the last request.
 */
const ENTERPRISE = "needs the Cerebrium Enterprise plan";

export const cerebriumCatalog: ProviderCatalogEntry = {
  provider: "cerebrium",
  displayName: "Cerebrium",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-03-14",
  offers: [
    { gpu: "T4", providerGpuId: "TURING_T4", pricePerGpuHourUsd: 0.59, regions: [] },
    { gpu: "A10", providerGpuId: "AMPERE_A10", pricePerGpuHourUsd: 1.1, regions: [] },
    { gpu: "L4", providerGpuId: "ADA_L4", pricePerGpuHourUsd: 0.8, regions: [] },
    { gpu: "L40S", providerGpuId: "ADA_L40", pricePerGpuHourUsd: 1.95, regions: [] },
    { gpu: "A100-40GB", providerGpuId: "AMPERE_A100_40GB", pricePerGpuHourUsd: 1.45, regions: [], note: ENTERPRISE },
    { gpu: "A100-80GB", providerGpuId: "AMPERE_A100_80GB", pricePerGpuHourUsd: 2.06, regions: [], note: ENTERPRISE },
    { gpu: "H100", providerGpuId: "HOPPER_H100", pricePerGpuHourUsd: 2.21, regions: [], note: ENTERPRISE },
  ],
};

export function cerebriumOffer(gpu: string): ProviderGpuOffer | undefined {
  return cerebriumCatalog.offers.find((o) => o.gpu === gpu);
}

/** vCPUs and memory (GB) a replica gets per GPU type (the earlier tool's sizing). */
export const CEREBRIUM_CPU_MEMORY: Record<string, { cpu: number; memoryGb: number }> = {
  T4: { cpu: 4, memoryGb: 16 },
  L4: { cpu: 4, memoryGb: 16 },
  A10: { cpu: 8, memoryGb: 32 },
  L40S: { cpu: 8, memoryGb: 32 },
  "A100-40GB": { cpu: 8, memoryGb: 64 },
  "A100-80GB": { cpu: 12, memoryGb: 64 },
  H100: { cpu: 12, memoryGb: 64 },
};
