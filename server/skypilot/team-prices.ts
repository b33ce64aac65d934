import type { AuditActor } from "../audit";
import { getSpotPrices, SPOT_CLOUDS, type SpotPriceResult } from "../catalog";
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
  return results;
}

/** Tests: forget cached prices. */
export function clearTeamSpotPrices(): void {
  cache.clear();
}
