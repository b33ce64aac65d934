import { db } from "../db";
import { MINUTE_RETENTION_DAYS } from "./pricing";

const DAY_MS = 86_400_000;
const HOUR_ROLLUP_DAYS = 400;

export const RETENTION = {
  /** Minute rollups: long enough to price any month-to-date with minute precision. */
  minuteDays: MINUTE_RETENTION_DAYS,
  hourDays: HOUR_ROLLUP_DAYS,
  /**
   * Backend state events: as long as the hour rollups, since spot ready time over any range the metrics allow is
   * derived from them (they are few: one per state change, not per request).
   */
  eventDays: HOUR_ROLLUP_DAYS,
  /**
   * Batch ids guard against resends (routers spool at most a few hours of reports); each router's last batch is
   * kept whatever its age: it is the router's last sign of life, where its view of the spot backends ends.
   */
  batchDays: 7,
} as const;

/**
 * Deletes usage data past retention (for a cron). Backend events keep, per router and backend, the last
 * one before the cut-off: it is the state at the start of the retained window (the "last event before the
 * range" that pricing reads). Batches keep each router's last one: pricing ends a silent router's view there
 * (`routerViewEnds`), and the router's events may outlive its batches by far.
 */
export async function pruneUsage(now: Date = new Date()) {
  const minuteCut = new Date(now.getTime() - RETENTION.minuteDays * DAY_MS);
  const hourCut = new Date(now.getTime() - RETENTION.hourDays * DAY_MS);
  const batchCut = new Date(now.getTime() - RETENTION.batchDays * DAY_MS);
  const eventCut = new Date(now.getTime() - RETENTION.eventDays * DAY_MS);
  const minuteRollups = await db.$executeRaw`DELETE FROM "UsageRollup" WHERE granularity = 'minute' AND bucket < ${minuteCut}`;
  const hourRollups = await db.$executeRaw`DELETE FROM "UsageRollup" WHERE granularity = 'hour' AND bucket < ${hourCut}`;
  const batches = await db.$executeRaw`
    DELETE FROM "UsageBatch" b WHERE b."receivedAt" < ${batchCut} AND EXISTS (
      SELECT 1 FROM "UsageBatch" n
      WHERE n."routerId" = b."routerId" AND (n."receivedAt" > b."receivedAt" OR (n."receivedAt" = b."receivedAt" AND n."batchId" > b."batchId")))`;
  const events = await db.$executeRaw`
    DELETE FROM "UsageBackendEvent" e WHERE e.at < ${eventCut} AND EXISTS (
      SELECT 1 FROM "UsageBackendEvent" n
      WHERE n."deploymentId" = e."deploymentId" AND n."routerId" = e."routerId" AND n."backendId" = e."backendId"
        AND n.at < ${eventCut} AND (n.at > e.at OR (n.at = e.at AND n.id > e.id)))`;
  return { minuteRollups, hourRollups, batches, events };
}
