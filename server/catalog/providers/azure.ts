import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";

/**
 * Azure Container Apps serverless GPUs (consumption GPU workload profiles). Prices from the Azure Retail
 * Prices API for eastus (python-tuna catalog, 2026-03); `providerGpuId` is the `workloadProfileType`.
 * GPU quota must be granted per subscription and region.
 */
export const AZURE_GPU_REGIONS = [
  "australiaeast", "brazilsouth", "canadacentral", "canadaeast", "centralindia", "centralus", "eastasia", "eastus",
  "eastus2", "francecentral", "germanywestcentral", "japaneast", "koreacentral", "northcentralus", "northeurope",
  "southcentralus", "southeastasia", "swedencentral", "uksouth", "westeurope", "westus", "westus2", "westus3",
];

export const azureCatalog: ProviderCatalogEntry = {
  provider: "azure",
  displayName: "Azure Container Apps",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-03-14",
  offers: [
    { gpu: "T4", providerGpuId: "Consumption-GPU-NC8as-T4", pricePerGpuHourUsd: 0.26, regions: AZURE_GPU_REGIONS, maxGpuCount: 1 },
    { gpu: "A100-80GB", providerGpuId: "Consumption-GPU-NC24-A100", pricePerGpuHourUsd: 1.9, regions: AZURE_GPU_REGIONS, maxGpuCount: 1 },
  ],
};

export const AZURE_DEFAULT_REGION = "eastus";

/** Container resources per profile (a serverless GPU replica takes the profile's whole vCPU/memory). */
export const AZURE_PROFILE_RESOURCES: Record<string, { profileName: string; cpu: number; memory: string }> = {
  "Consumption-GPU-NC8as-T4": { profileName: "gpu-t4", cpu: 8, memory: "56Gi" },
  "Consumption-GPU-NC24-A100": { profileName: "gpu-a100", cpu: 24, memory: "220Gi" },
};

export function azureOffer(gpu: string): ProviderGpuOffer | undefined {
  return azureCatalog.offers.find((o) => o.gpu === gpu);
}
