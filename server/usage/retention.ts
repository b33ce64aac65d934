import { db } from "../db";
import { MINUTE_RETENTION_DAYS } from "./pricing";

const DAY_MS = 86_400_000;

export const RETENTION = {
  /** Minute rollups and backend events: long enough to price any month-to-date with minute precision. */
  minuteDays: MINUTE_RETENTION_DAYS,
  hourDays: 400,
  /** Batch ids only guard against resends; routers spool at most a few hours of reports. */
  batchDays: 7,
} as const;

/**
 * Deletes usage data past retention (for a cron). Backend events keep, per router and backend, the last
 * one before the cut-off: it is the state at the start of the retained window.
 */
export async function pruneUsage(now: Date = new Date()) {
  const minuteCut = new Date(now.getTime() - RETENTION.minuteDays * DAY_MS);
  const hourCut = new Date(now.getTime() - RETENTION.hourDays * DAY_MS);
  const batchCut = new Date(now.getTime() - RETENTION.batchDays * DAY_MS);
  const minuteRollups = await db.$executeRaw`DELETE FROM "UsageRollup" WHERE granularity = 'minute' AND bucket < ${minuteCut}`;
  const hourRollups = await db.$executeRaw`DELETE FROM "UsageRollup" WHERE granularity = 'hour' AND bucket < ${hourCut}`;
  const batches = await db.$executeRaw`DELETE FROM "UsageBatch" WHERE "receivedAt" < ${batchCut}`;
  const events = await db.$executeRaw`
    DELETE FROM "UsageBackendEvent" e WHERE e.at < ${minuteCut} AND EXISTS (
      SELECT 1 FROM "UsageBackendEvent" n
      WHERE n."deploymentId" = e."deploymentId" AND n."routerId" = e."routerId" AND n."backendId" = e."backendId"
        AND n.at < ${minuteCut} AND (n.at > e.at OR (n.at = e.at AND n.id > e.id)))`;
  return { minuteRollups, hourRollups, batches, events };
}
