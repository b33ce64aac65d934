import { GPUS, type SpotCloud, type SpotPrice, type SpotPriceSource } from "../catalog";
import type { InstanceTypeInfo, SkyPilotClient } from "./client";

/**
 * Live spot / on-demand prices from the SkyPilot API server's catalog (`POST /list_accelerators`).
 * Keeps single-accelerator offerings with a positive, finite price, the cheapest one per GPU, and maps
 * SkyPilot accelerator names back to catalog keys through `GpuInfo.skypilotName` (unknown names are dropped).
 */
export function skypilotPriceSource(client: Pick<SkyPilotClient, "listAccelerators">): SpotPriceSource {
  const catalogNameFor = new Map<string, string>();
  for (const g of GPUS) if (g.skypilotName) catalogNameFor.set(g.skypilotName, g.name);

  async function prices(cloud: SpotCloud, which: "spot" | "onDemand"): Promise<SpotPrice[]> {
    const offers = await client.listAccelerators({ clouds: cloud, allRegions: false, requirePrice: true });
    const best = new Map<string, SpotPrice>();
    for (const [acc, infos] of Object.entries(offers)) {
      const gpu = catalogNameFor.get(acc);
      if (!gpu) continue;
      for (const info of infos) {
        const price = priceOf(info, which);
        if (info.acceleratorCount !== 1 || info.cloud.toLowerCase() !== cloud || price === null) continue;
        const cur = best.get(gpu);
        if (!cur || price < cur.pricePerGpuHourUsd) {
          best.set(gpu, { gpu, cloud, pricePerGpuHourUsd: price, instanceType: info.instanceType ?? "", region: info.region });
        }
      }
    }
    return [...best.values()].sort((a, b) => a.gpu.localeCompare(b.gpu));
  }

  return {
    spotPrices: (cloud) => prices(cloud, "spot"),
    onDemandPrices: (cloud) => prices(cloud, "onDemand"),
  };
}

function priceOf(info: InstanceTypeInfo, which: "spot" | "onDemand"): number | null {
  const p = which === "spot" ? info.spotPrice : info.price;
  return Number.isFinite(p) && p > 0 ? p : null;
}
