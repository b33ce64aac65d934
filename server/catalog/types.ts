/**
 * Catalog shapes shared by every provider's catalog entry (`server/catalog/providers/<name>.ts`).
 * Prices are USD per GPU-hour as published by the provider on `pricesAsOf`; `null` means unknown and is
 * excluded from cheapest-provider choices.
 */

export type GpuArch = "turing" | "ampere" | "ada" | "hopper" | "blackwell";

export interface GpuInfo {
  /** Catalog key used everywhere in Tuna: "T4", "A10", "A10G", "L4", "A4000", "A5000", "A6000", "RTX4090",
   * "A40", "L40", "L40S", "A100-40GB", "A100-80GB", "H100-MIG", "H100", "H200", "B200", "RTX-PRO-6000". */
  name: string;
  vramGb: number;
  arch: GpuArch;
  /** Other spellings accepted on input ("A100" → "A100-80GB", "4090" → "RTX4090"). */
  aliases?: string[];
  /** SkyPilot accelerator name for spot, when SkyPilot offers it. */
  skypilotName?: string;
}

export interface ProviderGpuOffer {
  /** Catalog key (GpuInfo.name). */
  gpu: string;
  /** The provider's own identifier for this GPU. */
  providerGpuId: string;
  pricePerGpuHourUsd: number | null;
  /** Regions offering it; empty = every region of the provider. */
  regions: string[];
  maxGpuCount?: number;
  /** e.g. "needs Enterprise plan". */
  note?: string;
}

export interface ServerlessBillingModel {
  /** Billed per second while a worker is up (handling requests or inside its idle window). */
  model: "per-second-active";
  /** Whether the idle window after the last request is billed. */
  idleWindowBilled: boolean;
  /** Minimum billed seconds per worker start, if any. */
  minimumBillableS?: number;
}

export interface ProviderCatalogEntry {
  provider: string;
  displayName: string;
  kind: "serverless" | "spot";
  billing: ServerlessBillingModel;
  /** ISO date the prices were taken. */
  pricesAsOf: string;
  offers: ProviderGpuOffer[];
}
