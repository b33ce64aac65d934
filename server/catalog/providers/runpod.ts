import type { ProviderCatalogEntry, ProviderGpuOffer } from "../types";
import { listRunpodGpus, type RunpodCatalogGpu } from "../../providers/runpod/client";
import type { Credentials, ProviderContext } from "../../providers/base/types";

/**
 * RunPod serverless, per GPU-hour. `providerGpuId` is RunPod's GPU type id (used in `gpu.excludedTypes`
 * and in `/v2/catalog/gpus`); endpoints select GPUs by serverless *pool*, see `RUNPOD_POOL_BY_GPU`.
 *
 * Rates: RunPod's published serverless flex rates per second (docs.runpod.io/serverless/pricing, read
 * 2026-11-27) × 3600, rounded to the cent. RunPod prices by pool, so GPUs of one pool cost the same. The
 * earlier python-tuna table had rows shifted against their GPUs (L4 at 2.74, which is the 80 GB A100 rate;
 * A100-80GB at 1.12, the 4090 PRO rate; A4000 at 0.43 and A5000 at 0.58, below the 16 GB rate of 0.58);
 * `catalog.test.ts` checks that pool mates are priced alike and that prices rise with the GPU class.
 */
export const runpodCatalog: ProviderCatalogEntry = {
  provider: "runpod",
  displayName: "RunPod Serverless",
  kind: "serverless",
  billing: { model: "per-second-active", idleWindowBilled: true },
  pricesAsOf: "2026-11-27",
  offers: [
    // $/s flex: 16 GB 0.00016, 24 GB 0.00019, 24 GB PRO 0.00031, 48 GB 0.00034, 48 GB PRO 0.00053,
    // 80 GB (A100) 0.00076, 80 GB PRO (H100) 0.00116, 141 GB (H200) 0.00155, 180 GB (B200) 0.0024.
    { gpu: "L4", providerGpuId: "NVIDIA L4", pricePerGpuHourUsd: 0.68, regions: [] },
    { gpu: "A4000", providerGpuId: "NVIDIA RTX A4000", pricePerGpuHourUsd: 0.58, regions: [] },
    { gpu: "A5000", providerGpuId: "NVIDIA RTX A5000", pricePerGpuHourUsd: 0.68, regions: [] },
    { gpu: "A6000", providerGpuId: "NVIDIA RTX A6000", pricePerGpuHourUsd: 1.22, regions: [] },
    { gpu: "RTX4090", providerGpuId: "NVIDIA GeForce RTX 4090", pricePerGpuHourUsd: 1.12, regions: [] },
    { gpu: "A40", providerGpuId: "NVIDIA A40", pricePerGpuHourUsd: 1.22, regions: [] },
    { gpu: "L40", providerGpuId: "NVIDIA L40", pricePerGpuHourUsd: 1.91, regions: [] },
    { gpu: "L40S", providerGpuId: "NVIDIA L40S", pricePerGpuHourUsd: 1.91, regions: [] },
    { gpu: "A100-80GB", providerGpuId: "NVIDIA A100-SXM4-80GB", pricePerGpuHourUsd: 2.74, regions: [] },
    { gpu: "H100", providerGpuId: "NVIDIA H100 80GB HBM3", pricePerGpuHourUsd: 4.18, regions: [] },
    { gpu: "H200", providerGpuId: "NVIDIA H200", pricePerGpuHourUsd: 5.58, regions: [] },
    { gpu: "B200", providerGpuId: "NVIDIA B200", pricePerGpuHourUsd: 8.64, regions: [] },
  ],
};

export const RUNPOD_POOL_BY_GPU: Record<string, string> = {
  A4000: "AMPERE_16",
  L4: "AMPERE_24",
  A5000: "AMPERE_24",
  RTX4090: "ADA_24",
  A6000: "AMPERE_48",
  A40: "AMPERE_48",
  L40: "ADA_48_PRO",
  L40S: "ADA_48_PRO",
  "A100-80GB": "AMPERE_80",
  H100: "ADA_80_PRO",
  H200: "HOPPER_141",
  B200: "BLACKWELL_180",
};

export function runpodOffer(gpu: string): ProviderGpuOffer | undefined {
  return runpodCatalog.offers.find((o) => o.gpu === gpu);
}

export interface RunpodLiveOffer extends ProviderGpuOffer {
  /** Stock grade from `availability` (e.g. HIGH/MEDIUM/LOW/NONE); undefined when RunPod omits it. */
  stock?: string;
  pool?: string;
  /** Data centers with stock for this GPU. */
  dataCenters: string[];
}

/**
 * Live serverless prices and stock (`GET /v2/catalog/gpus?include=AVAILABILITY&product=SERVERLESS`), mapped
 * onto catalog keys. Used by preflight; GPUs RunPod lists that Tuna's catalog does not know are dropped.
 */
export async function fetchRunpodLiveCatalog(
  creds: Credentials,
  ctx: ProviderContext = {},
  opts: { gpuCount?: number } = {},
): Promise<RunpodLiveOffer[]> {
  const gpus = await listRunpodGpus(creds, ctx, { count: opts.gpuCount ?? 1 });
  const byId = new Map<string, RunpodCatalogGpu>(gpus.map((g) => [g.id, g]));
  const out: RunpodLiveOffer[] = [];
  for (const offer of runpodCatalog.offers) {
    const live = byId.get(offer.providerGpuId);
    if (!live) continue;
    out.push({
      ...offer,
      pricePerGpuHourUsd: live.pricePerHourUsd ?? offer.pricePerGpuHourUsd,
      regions: live.dataCenters,
      dataCenters: live.dataCenters,
      stock: live.availability,
      pool: live.pool,
      maxGpuCount: live.maxCount,
    });
  }
  return out;
}
