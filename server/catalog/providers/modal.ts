import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";

/**
 * Modal serverless GPUs. Prices per GPU-hour as the earlier Python tool's catalog recorded them
 * (python-tuna-notes §4, 2026-03); `providerGpuId` is the value of Modal's `gpu=` argument
 * (`"<id>:<count>"` for several GPUs). Modal calls the A10G "A10".
 * Billing: per second while a container runs, including the `scaledown_window` after the last request.
 */
export const modalCatalog: ProviderCatalogEntry = {
  provider: "modal",
  displayName: "Modal",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-03-14",
  offers: [
    { gpu: "T4", providerGpuId: "T4", pricePerGpuHourUsd: 0.59, regions: [] },
    { gpu: "A10G", providerGpuId: "A10", pricePerGpuHourUsd: 1.1, regions: [] },
    { gpu: "L4", providerGpuId: "L4", pricePerGpuHourUsd: 0.8, regions: [] },
    { gpu: "L40S", providerGpuId: "L40S", pricePerGpuHourUsd: 1.95, regions: [] },
    { gpu: "A100-40GB", providerGpuId: "A100-40GB", pricePerGpuHourUsd: 2.1, regions: [] },
    { gpu: "A100-80GB", providerGpuId: "A100-80GB", pricePerGpuHourUsd: 2.5, regions: [] },
    { gpu: "H100", providerGpuId: "H100", pricePerGpuHourUsd: 3.95, regions: [] },
    { gpu: "B200", providerGpuId: "B200", pricePerGpuHourUsd: 6.25, regions: [] },
  ],
};

export function modalOffer(gpu: string): ProviderGpuOffer | undefined {
  return modalCatalog.offers.find((o) => o.gpu === gpu);
}
