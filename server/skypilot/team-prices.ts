import { type AuditActor, SYSTEM_ACTOR } from "../audit";
import { getSpotPrices, SPOT_CLOUDS, type SpotPriceResult, usdToMicros } from "../catalog";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { providerCredentials } from "../vault";
import { type SkyServeCredentials, skypilotClient } from "../providers/skyserve";
import { skypilotPriceSource } from "./prices";

/** Live prices are reused for this long (SkyPilot's catalog changes slowly; each read is an audited secret use). */
const LIVE_TTL_MS = 15 * 60_000;
/** A fallback to the static table is retried sooner (credentials added, server back). */
const FALLBACK_TTL_MS = 60_000;
/** Upper bound for one price query, so a slow API server cannot hold the catalog page. */
const QUERY_TIMEOUT_MS = 10_000;

/** Teams sampled at once by the hourly run. */
const SAMPLE_CONCURRENCY = 8;

const cache = new Map<string, { at: number; ttlMs: number; results: SpotPriceResult[] }>();

/**
 * Spot prices per cloud as a team sees them: live from the team's own SkyPilot API server (its catalog, with the
 * credentials in the team's vault) when there is one, else the dated static table, with the reason. Cached per
 * team; a failing or missing server falls back per cloud and never fails the caller.
 */
export async function teamSpotPrices(teamId: string, actor: AuditActor, now: number = Date.now()): Promise<SpotPriceResult[]> {
  const hit = cache.get(teamId);
  if (hit && now - hit.at < hit.ttlMs) return hit.results;
  let results: SpotPriceResult[];
  try {
    results = await providerCredentials(teamId, "skyserve", "prices", actor, async (creds) => {
      // The SkyServe provider's own client: same credential shape, and the vault values are redacted from errors.
      const source = skypilotPriceSource(skypilotClient(creds as SkyServeCredentials, { timeoutMs: QUERY_TIMEOUT_MS }));
      return Promise.all(SPOT_CLOUDS.map((cloud) => getSpotPrices(cloud, source)));
    });
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
    const why = err.reason === "missing_credentials" ? "no SkyPilot API server in the team's vault" : err.message;
    results = (await Promise.all(SPOT_CLOUDS.map((cloud) => getSpotPrices(cloud)))).map((r) => ({
      ...r,
      reason: r.reason.replace("no live price source configured", why),
    }));
  }
  cache.set(teamId, { at: now, ttlMs: results.some((r) => r.source === "live") ? LIVE_TTL_MS : FALLBACK_TTL_MS, results });
  await recordSpotPriceSamples(teamId, results, new Date(now));
  return results;
}

/**
 * Keeps the history cost is priced with (server/usage/pricing.ts): one SpotPriceSample per cloud × GPU whose
 * live spot price differs from the team's latest sample of it. Static-table answers are not samples.
 * Returns how many rows were written.
 */
export async function recordSpotPriceSamples(teamId: string, results: SpotPriceResult[], at: Date): Promise<number> {
  const live = results.filter((r) => r.source === "live" && r.kind === "spot").flatMap((r) => r.prices);
  if (live.length === 0) return 0;
  const latest = await db.$queryRaw<Array<{ cloud: string; gpu: string; micros: bigint }>>`
    SELECT DISTINCT ON (cloud, gpu) cloud, gpu, "pricePerGpuHourMicros" AS micros FROM "SpotPriceSample"
    WHERE "teamId" = ${teamId} ORDER BY cloud, gpu, "observedAt" DESC, id DESC`;
  const last = new Map(latest.map((r) => [`${r.cloud}|${r.gpu}`, Number(r.micros)]));
  const changed = live
    .map((p) => ({ cloud: p.cloud, gpu: p.gpu, micros: usdToMicros(p.pricePerGpuHourUsd) }))
    .filter((p) => last.get(`${p.cloud}|${p.gpu}`) !== p.micros);
  if (changed.length === 0) return 0;
  await db.spotPriceSample.createMany({
    data: changed.map((p) => ({ teamId, cloud: p.cloud, gpu: p.gpu, pricePerGpuHourMicros: BigInt(p.micros), observedAt: at })),
  });
  return changed.length;
}

/**
 * The hourly sampling run: live prices for every team with a SkyPilot API server in its vault, so the price
 * history does not depend on someone opening the catalog. A team whose server fails is skipped (its catalog
 * falls back to the static table); the others are still sampled.
 */
export async function sampleTeamSpotPrices(now: number = Date.now()): Promise<{ teams: number; live: number }> {
  const teams = await db.secret.findMany({ where: { kind: "skypilot", deletedAt: null }, select: { teamId: true }, distinct: ["teamId"] });
  let live = 0;
  // A few teams at a time: one unreachable server may take the whole query timeout.
  const queue = teams.map((t) => t.teamId);
  const worker = async () => {
    for (let teamId = queue.shift(); teamId !== undefined; teamId = queue.shift()) {
      const results = await teamSpotPrices(teamId, SYSTEM_ACTOR, now);
      if (results.some((r) => r.source === "live")) live++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(SAMPLE_CONCURRENCY, queue.length) }, worker));
  return { teams: teams.length, live };
}

/** Tests: forget cached prices. */
export function clearTeamSpotPrices(): void {
  cache.clear();
}
