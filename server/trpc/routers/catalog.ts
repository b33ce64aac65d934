import type { AuditActor } from "../../audit";
import {
  cheapestServerless,
  GPUS,
  offersFor,
  providerCatalogs,
  savingsIfSpot,
  SPOT_CLOUDS,
  usdToMicros,
} from "../../catalog";
import { defaultScaling, listProviders } from "../../providers";
import { teamSpotPrices } from "../../skypilot/team-prices";
import { router, teamProcedure } from "../init";

/**
 * The GPU catalog as the dashboard shows it: every GPU × serverless provider price, spot prices per cloud,
 * the cheapest serverless pick and the saving if served from spot. Serverless prices are public list prices;
 * spot prices are live from the team's own SkyPilot API server when its vault has one (else the static table),
 * so the procedure needs a team member (deployment.read).
 */
async function catalogTable(teamId: string, actor: AuditActor) {
  const spot = await teamSpotPrices(teamId, actor);
  const spotPrices = spot.flatMap((s) => s.prices);
  const installed = new Set(listProviders().map((p) => p.name));
  const providers = [...providerCatalogs]
    .filter((e) => e.kind === "serverless")
    .map((e) => ({ provider: e.provider, displayName: e.displayName, pricesAsOf: e.pricesAsOf, installed: installed.has(e.provider) }));
  const gpus = GPUS.map((g) => {
    const offers = offersFor(g.name)
      .filter((o) => o.kind === "serverless")
      .map((o) => ({
        provider: o.provider,
        providerGpuId: o.offer.providerGpuId,
        priceMicros: o.offer.pricePerGpuHourUsd !== null && o.offer.pricePerGpuHourUsd > 0 ? usdToMicros(o.offer.pricePerGpuHourUsd) : null,
        note: o.offer.note ?? null,
      }));
    const cheapest = cheapestServerless(g.name);
    const savings = savingsIfSpot(g.name, { spotPrices });
    return {
      gpu: g.name,
      vramGb: g.vramGb,
      arch: g.arch,
      spotAvailable: !!g.skypilotName,
      offers,
      cheapest: { provider: cheapest.provider, priceMicros: cheapest.priceMicros, reason: cheapest.reason },
      spot: SPOT_CLOUDS.map((cloud) => {
        const p = spotPrices.find((s) => s.cloud === cloud && s.gpu === g.name);
        return { cloud, priceMicros: p ? usdToMicros(p.pricePerGpuHourUsd) : null, instanceType: p?.instanceType ?? null, region: p?.region ?? null };
      }),
      savings: { percent: savings.percent, display: savings.display },
    };
  });
  return {
    providers,
    spotSources: spot.map((s) => ({ cloud: s.cloud, source: s.source, reason: s.reason, asOf: s.asOf ?? null })),
    gpus,
  };
}

export const catalogRouter = router({
  table: teamProcedure("deployment.read").query(({ ctx }) => catalogTable(ctx.teamId, ctx.actor)),
  /** Installed (registered) providers, for the new-deployment form. */
  providers: teamProcedure("deployment.read").query(() =>
    listProviders().map((p) => ({ name: p.name, displayName: p.displayName, kind: p.kind, gpus: p.supportedGpus() })),
  ),
  /** Scaling defaults the deployment service applies to knobs left empty. */
  defaults: teamProcedure("deployment.read").query(() => ({ scaling: defaultScaling(), spotClouds: [...SPOT_CLOUDS] })),
});
