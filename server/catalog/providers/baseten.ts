import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";

/**
 * Baseten dedicated deployments (Truss). Prices per GPU-hour as the earlier Python tool's catalog recorded
 * them (python-tuna-notes §4, 2026-03); `providerGpuId` is the Truss `resources.accelerator` name
 * (`"<id>:<count>"` for several GPUs). H100MIG is a 40 GB slice of an H100.
 * Billing: replica uptime, including the `scale_down_delay` after the last request (billing granularity
 * not verified from a primary source).
 */
export const basetenCatalog: ProviderCatalogEntry = {
  provider: "baseten",
  displayName: "Baseten",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-03-14",
  offers: [
    { gpu: "T4", providerGpuId: "T4", pricePerGpuHourUsd: 0.63, regions: [] },
    { gpu: "A10G", providerGpuId: "A10G", pricePerGpuHourUsd: 1.21, regions: [] },
    { gpu: "L4", providerGpuId: "L4", pricePerGpuHourUsd: 0.85, regions: [] },
    { gpu: "A100-80GB", providerGpuId: "A100", pricePerGpuHourUsd: 4.0, regions: [] },
    { gpu: "H100-MIG", providerGpuId: "H100MIG", pricePerGpuHourUsd: 3.75, regions: [] },
    { gpu: "H100", providerGpuId: "H100", pricePerGpuHourUsd: 6.5, regions: [] },
    { gpu: "B200", providerGpuId: "B200", pricePerGpuHourUsd: 9.98, regions: [] },
  ],
};

export function basetenOffer(gpu: string): ProviderGpuOffer | undefined {
  return basetenCatalog.offers.find((o) => o.gpu === gpu);
}
