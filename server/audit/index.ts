import type { Prisma } from "@prisma/client";
import { db, type Tx } from "../db";
import { GENESIS, chainHash, headMac, type ChainFields } from "./chain";

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

export interface AuditQuery {
  teamId: string;
  actorId?: string;
  action?: string;
  from?: Date;
  to?: Date;
  /** seq of the last row of the previous page. */
  cursor?: number;
  limit: number;
}

/**
 * Newest first, cursor = seq (unique per team), so pages are stable while new rows arrive.
 * An upper date bound is turned into a seq bound first (seq grows with createdAt in the append-only chain):
 * otherwise PostgreSQL walks back through every newer row to reach an old date range.
 */
export async function listAudit(q: AuditQuery) {
  let maxSeq = q.cursor ? q.cursor - 1 : undefined;
  if (q.to) {
    const last = await db.auditLog.findFirst({
      where: { teamId: q.teamId, createdAt: { lte: q.to } },
      orderBy: [{ createdAt: "desc" }, { seq: "desc" }],
      select: { seq: true },
    });
    if (!last) return { items: [], nextCursor: null };
    maxSeq = maxSeq === undefined ? last.seq : Math.min(maxSeq, last.seq);
  }
  const rows = await db.auditLog.findMany({
    where: {
      teamId: q.teamId,
      ...(q.actorId ? { actorId: q.actorId } : {}),
      ...(q.action ? { action: { startsWith: q.action } } : {}),
      ...(q.from || q.to ? { createdAt: { ...(q.from ? { gte: q.from } : {}), ...(q.to ? { lte: q.to } : {}) } } : {}),
      ...(maxSeq !== undefined ? { seq: { lte: maxSeq } } : {}),
    },
    orderBy: { seq: "desc" },
    take: q.limit + 1,
    select: {
      id: true, seq: true, actorId: true, actorLabel: true, action: true, targetType: true, targetId: true,
      metadata: true, ip: true, userAgent: true, createdAt: true,
    },
  });
  const hasMore = rows.length > q.limit;
  const items = hasMore ? rows.slice(0, q.limit) : rows;
  return { items, nextCursor: hasMore ? items[items.length - 1].seq : null };
}
