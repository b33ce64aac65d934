import { cron } from "inngest";
import { sampleTeamSpotPrices } from "../skypilot/team-prices";
import { inngest } from "../workflows/client";
import { evaluateBudgets } from "./budgets";
import { pruneUsage } from "./retention";

/** Step results are JSON: BigInt counters become numbers. */
function jsonSafe(v: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? Number(x) : x)));
}

/**
 * Budget thresholds for every team, also when no usage arrives (a new month lifts blocks; idle warm workers
 * keep spending). Ingest already evaluates the teams it touched a few seconds after new usage.
 */
export const evaluateBudgetsFunction = inngest.createFunction(
  { id: "evaluate-budgets", name: "Evaluate budgets", triggers: [cron("*/5 * * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => step.run("evaluate", async () => jsonSafe(await evaluateBudgets(new Date()))),
);

/** Retention of raw batches and rollups (server/usage/README.md). */
export const pruneUsageFunction = inngest.createFunction(
  { id: "prune-usage", name: "Prune old usage", triggers: [cron("17 3 * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => step.run("prune", async () => jsonSafe(await pruneUsage(new Date()))),
);

/** Hourly live spot prices of every team with a SkyPilot API server, the history spot cost is priced with. */
export const sampleSpotPricesFunction = inngest.createFunction(
  { id: "sample-spot-prices", name: "Sample live spot prices", triggers: [cron("23 * * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => step.run("sample", () => sampleTeamSpotPrices()),
);
