import type { Prisma } from "@prisma/client";
import { db, type Tx } from "../db";
import { GENESIS, chainHash, headMac, type ChainFields } from "./chain";
import { resolveTargetNames } from "./targets";

export interface AuditActor {
  userId: string | null;
  /** Email or "system"/"router"; stored so the log stays readable after a user is deleted. */
  label: string;
  ip?: string | null;
  userAgent?: string | null;
}

export interface AuditEntry {
  action: string;
  targetType?: string;
  targetId?: string;
  metadata?: Record<string, unknown>;
}

export const SYSTEM_ACTOR: AuditActor = { userId: null, label: "system" };

/**
 * Appends one row to the team's chain inside the caller's transaction, so a mutation and its audit row
 * commit or roll back together. A per-team advisory lock serialises writers of one chain.
 */
export async function appendAudit(tx: Tx, teamId: string, actor: AuditActor, entry: AuditEntry): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`audit:${teamId}`}, 0))`;
  const head = await tx.auditHead.findUnique({ where: { teamId } });
  const seq = (head?.seq ?? 0) + 1;
  const prevHash = head?.hash ?? GENESIS;
  const fields: ChainFields = {
    teamId,
    seq,
    actorId: actor.userId,
    actorLabel: actor.label,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    metadata: entry.metadata ?? {},
    ip: actor.ip ?? null,
    userAgent: actor.userAgent ?? null,
    // Millisecond precision: what PostgreSQL timestamp(3) stores, so the hash verifies after a round trip.
    createdAt: new Date(Math.floor(Date.now())),
  };
  const hash = chainHash(prevHash, fields);
  await tx.auditLog.create({
    data: { ...fields, metadata: fields.metadata as Prisma.InputJsonValue, prevHash, hash },
  });
  const mac = headMac(teamId, seq, hash);
  await tx.auditHead.upsert({
    where: { teamId },
    create: { teamId, seq, hash, mac },
    update: { seq, hash, mac, at: new Date() },
  });
}

export interface VerifyProblem {
  seq: number | null;
  kind: "edited" | "deleted" | "inserted" | "head_mismatch" | "reordered";
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  problems: VerifyProblem[];
}

/**
 * Walks the team's chain in seq order. Detects edited rows (hash mismatch), deleted rows (gap in seq or
 * broken prevHash, or a head that points past the last row), inserted rows (duplicate/foreign seq, or a
 * hash that does not verify), and a head record that was itself altered.
 */
export async function verifyAuditChain(teamId: string, client: Pick<Tx, "auditLog" | "auditHead"> = db): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [];
  let prevHash = GENESIS;
  let expectedSeq = 1;
  let checked = 0;
  let cursor: string | undefined;
  const BATCH = 5000;
  for (;;) {
    const rows = await client.auditLog.findMany({
      where: { teamId },
      orderBy: [{ seq: "asc" }, { id: "asc" }],
      take: BATCH,
      ...(cursor ? { skip: 1, cursor: { id: cursor } } : {}),
    });
    for (const r of rows) {
      checked++;
      if (r.seq < expectedSeq) {
        problems.push({ seq: r.seq, kind: "inserted", message: `row ${r.id} repeats sequence ${r.seq}` });
        continue;
      }
      if (r.seq > expectedSeq) {
        problems.push({ seq: expectedSeq, kind: "deleted", message: `rows ${expectedSeq}..${r.seq - 1} are missing` });
      }
      if (r.prevHash !== prevHash && r.seq === expectedSeq) {
        problems.push({ seq: r.seq, kind: "inserted", message: `row ${r.seq} does not link to the previous row` });
      }
      const recomputed = chainHash(r.prevHash, {
        teamId: r.teamId,
        seq: r.seq,
        actorId: r.actorId,
        actorLabel: r.actorLabel,
        action: r.action,
        targetType: r.targetType,
        targetId: r.targetId,
        metadata: r.metadata,
        ip: r.ip,
        userAgent: r.userAgent,
        createdAt: r.createdAt,
      });
      if (recomputed !== r.hash) {
        problems.push({ seq: r.seq, kind: "edited", message: `row ${r.seq} (${r.action}) was modified after it was written` });
      }
      prevHash = r.hash;
      expectedSeq = r.seq + 1;
    }
    if (rows.length < BATCH) break;
    cursor = rows[rows.length - 1].id;
  }
  const head = await client.auditHead.findUnique({ where: { teamId } });
  const lastSeq = expectedSeq - 1;
  if (head) {
    if (head.mac !== headMac(teamId, head.seq, head.hash)) {
      problems.push({ seq: head.seq, kind: "head_mismatch", message: "the chain head record was modified" });
    } else if (head.seq > lastSeq) {
      problems.push({ seq: lastSeq + 1, kind: "deleted", message: `rows ${lastSeq + 1}..${head.seq} are missing at the end of the log` });
    } else if (head.seq < lastSeq || head.hash !== prevHash) {
      problems.push({ seq: head.seq, kind: "inserted", message: "rows were added after the last recorded entry" });
    }
  } else if (checked > 0) {
    problems.push({ seq: null, kind: "head_mismatch", message: "the chain head record is missing" });
  }
  return { ok: problems.length === 0, checked, problems };
}

export interface AuditFilters {
  teamId: string;
  actorId?: string;
  /** "Action starts with": trimmed and compared case-insensitively ("Deployment" finds deployment.request). */
  action?: string;
  from?: Date;
  to?: Date;
}

export interface AuditQuery extends AuditFilters {
  /** seq of the last row of the previous page. */
  cursor?: number;
  limit: number;
}

/**
 * The action filter as stored. Actions are lowercase dotted names ("deployment.request", written only by
 * code), so lowercasing the input makes the filter case-insensitive while `startsWith` keeps using the
 * text_pattern_ops index (ILIKE could not). Empty or blank means no filter.
 */
export function actionPrefix(action: string | undefined): string | undefined {
  const a = action?.trim().toLowerCase();
  return a ? a : undefined;
}

/**
 * The `where` of the filtered log, newest rows bounded by `maxSeq` (a cursor); null when nothing can match.
 * An upper date bound is turned into a seq bound first (seq grows with createdAt in the append-only chain):
 * otherwise PostgreSQL walks back through every newer row to reach an old date range.
 */
async function filteredWhere(q: AuditFilters, maxSeq?: number): Promise<Prisma.AuditLogWhereInput | null> {
  let bound = maxSeq;
  if (q.to) {
    const last = await db.auditLog.findFirst({
      where: { teamId: q.teamId, createdAt: { lte: q.to } },
      orderBy: [{ createdAt: "desc" }, { seq: "desc" }],
      select: { seq: true },
    });
    if (!last) return null;
    bound = bound === undefined ? last.seq : Math.min(bound, last.seq);
  }
  const action = actionPrefix(q.action);
  return {
    teamId: q.teamId,
    ...(q.actorId ? { actorId: q.actorId } : {}),
    ...(action ? { action: { startsWith: action } } : {}),
    ...(q.from || q.to ? { createdAt: { ...(q.from ? { gte: q.from } : {}), ...(q.to ? { lte: q.to } : {}) } } : {}),
    ...(bound !== undefined ? { seq: { lte: bound } } : {}),
  };
}

/** Rows newest first from `where`, with their targets' readable names (see resolveTargetNames). */
async function auditRows(teamId: string, where: Prisma.AuditLogWhereInput, take: number) {
  const rows = await db.auditLog.findMany({
    where,
    orderBy: { seq: "desc" },
    take,
    select: {
      id: true, seq: true, actorId: true, actorLabel: true, action: true, targetType: true, targetId: true,
      metadata: true, ip: true, userAgent: true, createdAt: true, prevHash: true, hash: true,
    },
  });
  const names = await resolveTargetNames(teamId, rows);
  return rows.map((r, i) => ({ ...r, ...names[i] }));
}

/** Newest first, cursor = seq (unique per team), so pages are stable while new rows arrive. */
export async function listAudit(q: AuditQuery) {
  const where = await filteredWhere(q, q.cursor ? q.cursor - 1 : undefined);
  if (!where) return { items: [], nextCursor: null };
  const rows = await auditRows(q.teamId, where, q.limit + 1);
  const hasMore = rows.length > q.limit;
  const items = (hasMore ? rows.slice(0, q.limit) : rows).map(({ prevHash: _p, hash: _h, ...r }) => r);
  return { items, nextCursor: hasMore ? items[items.length - 1].seq : null };
}

/** Every row of the filtered log, newest first, `batch` rows a query, up to `max` (the last batch then says `truncated`). */
export async function* filteredAuditBatches(q: AuditFilters, opts: { max: number; batch: number }) {
  const where = await filteredWhere(q);
  if (!where) return;
  const upTo = (where.seq as { lte?: number } | undefined)?.lte;
  let cursor: number | undefined;
  let yielded = 0;
  for (;;) {
    const want = Math.min(opts.batch, opts.max - yielded);
    // Past the first batch the cursor is below the date bound already.
    const bound = cursor ?? upTo;
    // One row more than wanted tells whether the log goes on past this batch.
    const rows = await auditRows(q.teamId, { ...where, ...(bound !== undefined ? { seq: { lte: bound } } : {}) }, want + 1);
    const batch = rows.slice(0, want);
    yielded += batch.length;
    const more = rows.length > want;
    if (batch.length) yield { rows: batch, truncated: more && yielded >= opts.max };
    if (!more || yielded >= opts.max) return;
    cursor = batch[batch.length - 1].seq - 1;
  }
}
