/**
 * The latest backend state event of each router × backend of some deployments, optionally before a time: the
 * routers' word on a backend now (router view), or the state at the start of a range (cost, charts).
 *
 * A skip scan over the (deploymentId, routerId, backendId, at DESC, id DESC) index: each step seeks the first row
 * of the next router × backend of the deployment, which is its latest event (before `before`: rows at or after it
 * are passed over, and those are the range's own events, which the callers read anyway). So the cost follows the
 * number of routers and backends, not the length of the history kept (400 days of state changes), which
 * `DISTINCT ON` would read and sort in full. The id breaks a tie of timestamps: events of one report are inserted
 * in order.
 */
import { Prisma } from "@prisma/client";
import { db } from "../db";

export interface LatestEventRow {
  deploymentId: string;
  routerId: string;
  backendId: string;
  backendKind: string | null;
  state: string;
  at: Date;
  replicas: number;
  /** The router's reason for the change (router view); null when it sent none. */
  reason: string | null;
}

export async function latestBackendEvents(deploymentIds: readonly string[], before?: Date): Promise<LatestEventRow[]> {
  const ids = [...new Set(deploymentIds)];
  if (ids.length === 0) return [];
  const cut = before ? Prisma.sql`AND e.at < ${before}` : Prisma.empty;
  return db.$queryRaw<LatestEventRow[]>`
    WITH RECURSIVE latest AS (
      SELECT f.* FROM unnest(${ids}::text[]) AS d(id) CROSS JOIN LATERAL (
        SELECT e."deploymentId", e."routerId", e."backendId", e."backendKind", e.state, e.at, e.replicas, e.reason FROM "UsageBackendEvent" e
        WHERE e."deploymentId" = d.id ${cut}
        ORDER BY e."routerId", e."backendId", e.at DESC, e.id DESC LIMIT 1) f
      UNION ALL
      SELECT n.* FROM latest l CROSS JOIN LATERAL (
        SELECT e."deploymentId", e."routerId", e."backendId", e."backendKind", e.state, e.at, e.replicas, e.reason FROM "UsageBackendEvent" e
        WHERE e."deploymentId" = l."deploymentId" AND (e."routerId", e."backendId") > (l."routerId", l."backendId") ${cut}
        ORDER BY e."routerId", e."backendId", e.at DESC, e.id DESC LIMIT 1) n
    )
    SELECT * FROM latest`;
}
