import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";

/**
 * Google Cloud Run services with GPUs (one GPU per instance). Prices per GPU-hour from the python-tuna catalog
 * (2026-03); `providerGpuId` is the `template.nodeSelector.accelerator` value.
 */
const L4_REGIONS = [
  "asia-east1", "asia-northeast1", "asia-south1", "asia-southeast1", "europe-west1", "europe-west4",
  "me-west1", "us-central1", "us-east1", "us-east4", "us-west1", "us-west4",
];

export const cloudrunCatalog: ProviderCatalogEntry = {
  provider: "cloudrun",
  displayName: "Google Cloud Run",
  kind: "serverless",
  // Instance-based billing: GPU services need CPU always allocated, billed while an instance is up.
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-03-14",
  offers: [
    { gpu: "L4", providerGpuId: "nvidia-l4", pricePerGpuHourUsd: 0.84, regions: L4_REGIONS, maxGpuCount: 1 },
    { gpu: "RTX-PRO-6000", providerGpuId: "nvidia-rtx-pro-6000", pricePerGpuHourUsd: 0.84, regions: ["us-central1"], maxGpuCount: 1 },
  ],
};

export const CLOUDRUN_DEFAULT_REGION = "us-central1";

export function cloudrunOffer(gpu: string): ProviderGpuOffer | undefined {
  return cloudrunCatalog.offers.find((o) => o.gpu === gpu);
}
