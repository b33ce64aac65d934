import { findGpu, gpuNames } from "./gpus";
import { formatMicros, formatMicrosPerHour, usdToMicros } from "./money";
import { providerCatalogEntries } from "./providers/index";
import { SPOT_CLOUDS, type SpotCloud, type SpotPrice, staticSpotPrices } from "./spot";
import type { GpuInfo, ProviderCatalogEntry, ProviderGpuOffer } from "./types";

export type { GpuArch, GpuInfo, ProviderCatalogEntry, ProviderGpuOffer, ServerlessBillingModel } from "./types";
export { findGpu, GPUS, gpuNames, needsHalfDtype } from "./gpus";
export { formatMicros, formatMicrosPerHour, MICROS_PER_USD, usdToMicros } from "./money";
export * from "./spot";

/** Every registered provider catalog entry (built-ins; see `./providers/index.ts`). */
export const providerCatalogs: readonly ProviderCatalogEntry[] = providerCatalogEntries;

/** Tie-break order between equal prices; providers not listed follow alphabetically. */
export const CATALOG_ORDER: readonly string[] = ["modal", "runpod", "cloudrun", "azure", "cerebrium", "baseten"];

export function compareCatalogOrder(a: string, b: string): number {
  const ia = CATALOG_ORDER.indexOf(a);
  const ib = CATALOG_ORDER.indexOf(b);
  if (ia !== -1 || ib !== -1) {
    if (ia === -1) return 1;
    if (ib === -1) return -1;
    return ia - ib;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CatalogError";
  }
}

/** The GPU for a catalog key or alias ("A100" → A100-80GB); throws listing the known keys otherwise. */
export function resolveGpu(nameOrAlias: string): GpuInfo {
  const g = findGpu(nameOrAlias);
  if (!g) throw new CatalogError(`unknown GPU "${nameOrAlias}"; known GPUs: ${gpuNames().join(", ")}`);
  return g;
}

function isPriced(p: number | null): p is number {
  return p !== null && Number.isFinite(p) && p > 0;
}

export interface GpuOffer {
  provider: string;
  displayName: string;
  kind: "serverless" | "spot";
  pricesAsOf: string;
  offer: ProviderGpuOffer;
}

/** Every provider offer for a GPU, in catalog order. */
export function offersFor(gpu: string, opts: { entries?: readonly ProviderCatalogEntry[] } = {}): GpuOffer[] {
  const key = resolveGpu(gpu).name;
  const entries = [...(opts.entries ?? providerCatalogs)].sort((a, b) => compareCatalogOrder(a.provider, b.provider));
  const out: GpuOffer[] = [];
  for (const e of entries) {
    for (const offer of e.offers) {
      if (offer.gpu === key) out.push({ provider: e.provider, displayName: e.displayName, kind: e.kind, pricesAsOf: e.pricesAsOf, offer });
    }
  }
  return out;
}

export interface CheapestCandidate {
  provider: string;
  providerGpuId: string;
  price: number;
  priceMicros: number;
  note?: string;
}

export interface CheapestResult {
  gpu: string;
  /** null when no eligible provider has a known price. */
  provider: string | null;
  /** USD per GPU-hour as published (null when none). */
  price: number | null;
  priceMicros: number | null;
  providerGpuId: string | null;
  reason: string;
  /** Eligible priced offers, cheapest first (ties in catalog order). */
  candidates: CheapestCandidate[];
  /** Offers that were not eligible, and why. */
  skipped: Array<{ provider: string; reason: string }>;
}

export interface CheapestOptions {
  /** Providers never to pick. */
  exclude?: string[];
  /** Only these providers (naming "local" here is the only way to get the simulator picked). */
  providers?: string[];
  /** Catalog entries to choose from (defaults to `providerCatalogs`). */
  entries?: readonly ProviderCatalogEntry[];
}

const perGpuHour = (micros: number) => `${formatMicros(micros)}/GPU-h`;

/** The cheapest serverless provider for a GPU, explained. Deterministic: ties go to catalog order. */
export function cheapestServerless(gpu: string, opts: CheapestOptions = {}): CheapestResult {
  const key = resolveGpu(gpu).name;
  const candidates: CheapestCandidate[] = [];
  const skipped: CheapestResult["skipped"] = [];
  for (const o of offersFor(key, { entries: opts.entries })) {
    if (o.kind !== "serverless") continue;
    if (opts.providers && !opts.providers.includes(o.provider)) continue;
    if (opts.exclude?.includes(o.provider)) {
      skipped.push({ provider: o.provider, reason: "excluded" });
    } else if (o.provider === "local" && !opts.providers?.includes("local")) {
      skipped.push({ provider: o.provider, reason: "the local simulator is only picked when asked for explicitly" });
    } else if (!isPriced(o.offer.pricePerGpuHourUsd)) {
      skipped.push({ provider: o.provider, reason: "price unknown" });
    } else {
      const price = o.offer.pricePerGpuHourUsd;
      candidates.push({
        provider: o.provider,
        providerGpuId: o.offer.providerGpuId,
        price,
        priceMicros: usdToMicros(price),
        ...(o.offer.note ? { note: o.offer.note } : {}),
      });
    }
  }
  // offersFor already returns catalog order and Array.prototype.sort is stable, so equal prices keep it.
  candidates.sort((a, b) => a.priceMicros - b.priceMicros);

  const best = candidates[0];
  if (!best) {
    const why = skipped.length
      ? `; ${skipped.map((s) => `${s.provider}: ${s.reason}`).join("; ")}`
      : opts.providers
        ? ` among ${opts.providers.join(", ")}`
        : "";
    return {
      gpu: key,
      provider: null,
      price: null,
      priceMicros: null,
      providerGpuId: null,
      reason: `no serverless provider with a known price offers ${key}${why}`,
      candidates,
      skipped,
    };
  }
  const tied = candidates.filter((c) => c.priceMicros === best.priceMicros);
  let reason = `${best.provider} is the cheapest serverless provider for ${key} at ${perGpuHour(best.priceMicros)}`;
  if (tied.length > 1) {
    reason += `; tied with ${tied.slice(1).map((c) => c.provider).join(", ")}, won by catalog order (${CATALOG_ORDER.join(", ")}, then alphabetical)`;
  } else if (candidates[1]) {
    reason += `; next is ${candidates[1].provider} at ${perGpuHour(candidates[1].priceMicros)}`;
  } else {
    reason += "; it is the only priced offer";
  }
  if (best.note) reason += ` (note: ${best.note})`;
  return {
    gpu: key,
    provider: best.provider,
    price: best.price,
    priceMicros: best.priceMicros,
    providerGpuId: best.providerGpuId,
    reason,
    candidates,
    skipped,
  };
}

/** The published serverless price of one provider for one GPU, or null when unknown / not offered. */
export function serverlessPrice(
  provider: string,
  gpu: string,
  opts: { entries?: readonly ProviderCatalogEntry[] } = {},
): number | null {
  const o = offersFor(gpu, opts).find((x) => x.provider === provider && x.kind === "serverless");
  return o && isPriced(o.offer.pricePerGpuHourUsd) ? o.offer.pricePerGpuHourUsd : null;
}

// ---------------------------------------------------------------------------------------------------------
// Cost estimate of a plan, per hour, at its minimum scale (what it costs while idle-but-warm).

export type PlanCostSpotInput =
  /** A spot fleet on a cloud (SkyServe), priced from the cloud's spot prices. */
  | { cloud: SpotCloud; gpu: string; gpuCount: number; minReplicas: number }
  /**
   * The local GPU simulator playing the spot fleet (`local-spot`): runs on loopback, nothing is billed. It is
   * priced for illustration as the cost pages price it: the cheapest spot price among `clouds` (all if empty).
   */
  | { simulator: true; clouds: readonly SpotCloud[]; gpu: string; gpuCount: number; minReplicas: number };

export interface PlanCostInput {
  serverless?: { provider: string; gpu: string; gpuCount: number; minWorkers: number };
  spot?: PlanCostSpotInput;
  routerUsdPerHour: number;
}

export interface PlanCostItem {
  component: "serverless" | "spot" | "router";
  description: string;
  /** USD micro-dollars per GPU-hour (per hour for the router); null when unknown. */
  unitPriceMicros: number | null;
  /** GPUs (or 1 for the router) billed. */
  quantity: number;
  microsPerHour: number;
  display: string;
}

export interface PlanCostEstimate {
  items: PlanCostItem[];
  totalMicrosPerHour: number;
  totalDisplay: string;
  /** False when a price needed for a non-zero quantity was unknown (it then counts as 0). */
  complete: boolean;
  warnings: string[];
}

function assertCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new CatalogError(`${name} must be an integer ≥ ${min}, got ${v}`);
}

function spotPriceFor(cloud: SpotCloud, gpu: string, prices: readonly SpotPrice[] | undefined): SpotPrice | undefined {
  const list = (prices ?? staticSpotPrices(cloud, "spot")).filter(
    (p) => p.cloud === cloud && p.gpu === gpu && Number.isFinite(p.pricePerGpuHourUsd) && p.pricePerGpuHourUsd > 0,
  );
  return list.sort((a, b) => a.pricePerGpuHourUsd - b.pricePerGpuHourUsd)[0];
}

/**
 * Itemised hourly cost at minimum scale: warm serverless workers × GPUs × price, spot replicas × GPUs × spot
 * price, plus the router. Serverless and spot may use different GPUs (heterogeneous plans).
 * `spotPrices` (e.g. from `getSpotPrices`) overrides the static spot table.
 */
export function estimatePlanCostPerHour(
  input: PlanCostInput,
  opts: { entries?: readonly ProviderCatalogEntry[]; spotPrices?: readonly SpotPrice[] } = {},
): PlanCostEstimate {
  const items: PlanCostItem[] = [];
  const warnings: string[] = [];
  let complete = true;

  if (input.serverless) {
    const s = input.serverless;
    const gpu = resolveGpu(s.gpu).name;
    assertCount("serverless.gpuCount", s.gpuCount, 1);
    assertCount("serverless.minWorkers", s.minWorkers, 0);
    const price = serverlessPrice(s.provider, gpu, { entries: opts.entries });
    const unit = price === null ? null : usdToMicros(price);
    const quantity = s.minWorkers * s.gpuCount;
    if (unit === null && quantity > 0) {
      complete = false;
      warnings.push(`no known ${s.provider} price for ${gpu}; its ${quantity} warm GPU(s) are counted as $0`);
    }
    const micros = unit === null ? 0 : unit * quantity;
    items.push({
      component: "serverless",
      description:
        s.minWorkers === 0
          ? `${s.provider} ${gpu}: scales to zero, nothing billed while idle`
          : `${s.provider} ${s.minWorkers} warm worker(s) × ${s.gpuCount} ${gpu} × ${unit === null ? "unknown price" : perGpuHour(unit)}`,
      unitPriceMicros: unit,
      quantity,
      microsPerHour: micros,
      display: formatMicrosPerHour(micros),
    });
  }

  if (input.spot && "simulator" in input.spot) {
    const s = input.spot;
    const gpu = resolveGpu(s.gpu).name;
    assertCount("spot.gpuCount", s.gpuCount, 1);
    assertCount("spot.minReplicas", s.minReplicas, 0);
    const p = (s.clouds.length ? s.clouds : SPOT_CLOUDS)
      .map((cloud) => spotPriceFor(cloud, gpu, opts.spotPrices))
      .filter((x): x is SpotPrice => x !== undefined)
      .sort((a, b) => a.pricePerGpuHourUsd - b.pricePerGpuHourUsd)[0];
    const unit = p ? usdToMicros(p.pricePerGpuHourUsd) : 0;
    const quantity = s.minReplicas * s.gpuCount;
    items.push({
      component: "spot",
      description:
        s.minReplicas === 0
          ? `local-spot simulator ${gpu}: scales to zero`
          : `local-spot simulator ${s.minReplicas} replica(s) × ${s.gpuCount} ${gpu} × ${perGpuHour(unit)} on 127.0.0.1 (illustrative: ${p ? `${p.cloud} spot price` : "no spot price known"}; nothing is billed)`,
      unitPriceMicros: unit,
      quantity,
      microsPerHour: unit * quantity,
      display: formatMicrosPerHour(unit * quantity),
    });
  } else if (input.spot) {
    const s = input.spot;
    const gpu = resolveGpu(s.gpu).name;
    assertCount("spot.gpuCount", s.gpuCount, 1);
    assertCount("spot.minReplicas", s.minReplicas, 0);
    const p = spotPriceFor(s.cloud, gpu, opts.spotPrices);
    const unit = p ? usdToMicros(p.pricePerGpuHourUsd) : null;
    const quantity = s.minReplicas * s.gpuCount;
    if (unit === null && quantity > 0) {
      complete = false;
      warnings.push(`no known ${s.cloud} spot price for ${gpu}; its ${quantity} GPU(s) are counted as $0`);
    }
    const micros = unit === null ? 0 : unit * quantity;
    items.push({
      component: "spot",
      description:
        s.minReplicas === 0
          ? `${s.cloud} spot ${gpu}: scales to zero, nothing billed while idle`
          : `${s.cloud} spot ${s.minReplicas} replica(s) × ${s.gpuCount} ${gpu} × ${unit === null ? "unknown price" : perGpuHour(unit)}${p ? ` (${p.instanceType}, ${p.region})` : ""}`,
      unitPriceMicros: unit,
      quantity,
      microsPerHour: micros,
      display: formatMicrosPerHour(micros),
    });
  }

  if (!Number.isFinite(input.routerUsdPerHour) || input.routerUsdPerHour < 0) {
    throw new CatalogError(`routerUsdPerHour must be ≥ 0, got ${input.routerUsdPerHour}`);
  }
  const routerMicros = usdToMicros(input.routerUsdPerHour);
  items.push({
    component: "router",
    description: routerMicros === 0 ? "router: colocated, no extra cost" : `router: ${formatMicrosPerHour(routerMicros)}`,
    unitPriceMicros: routerMicros,
    quantity: 1,
    microsPerHour: routerMicros,
    display: formatMicrosPerHour(routerMicros),
  });

  const total = items.reduce((sum, i) => sum + i.microsPerHour, 0);
  return { items, totalMicrosPerHour: total, totalDisplay: formatMicrosPerHour(total), complete, warnings };
}

// ---------------------------------------------------------------------------------------------------------

export interface SpotSavings {
  gpu: string;
  serverless: { provider: string; priceMicros: number } | null;
  spot: { cloud: SpotCloud; priceMicros: number; instanceType: string; region: string } | null;
  /** (cheapest serverless − cheapest spot across clouds) / cheapest serverless × 100, rounded; null if unknown. */
  percent: number | null;
  /** "N% cheaper", "same", "N% more" or "n/a". */
  display: string;
}

/**
 * How much cheaper spot is than the cheapest serverless offer for a GPU, per GPU-hour.
 * `spotPrices` (any clouds) overrides the static spot table.
 */
export function savingsIfSpot(
  gpu: string,
  opts: { entries?: readonly ProviderCatalogEntry[]; spotPrices?: readonly SpotPrice[] } = {},
): SpotSavings {
  const key = resolveGpu(gpu).name;
  const svl = cheapestServerless(key, { entries: opts.entries });
  let spot: SpotSavings["spot"] = null;
  for (const cloud of SPOT_CLOUDS) {
    const p = spotPriceFor(cloud, key, opts.spotPrices);
    if (!p) continue;
    const micros = usdToMicros(p.pricePerGpuHourUsd);
    if (!spot || micros < spot.priceMicros) spot = { cloud, priceMicros: micros, instanceType: p.instanceType, region: p.region };
  }
  const serverless = svl.provider && svl.priceMicros !== null ? { provider: svl.provider, priceMicros: svl.priceMicros } : null;
  if (!serverless || !spot) return { gpu: key, serverless, spot, percent: null, display: "n/a" };
  const percent = Math.round(((serverless.priceMicros - spot.priceMicros) / serverless.priceMicros) * 100);
  const display = percent > 0 ? `${percent}% cheaper` : percent === 0 ? "same" : `${-percent}% more`;
  return { gpu: key, serverless, spot, percent, display };
}
