import { db } from "../db";
import { type AuditActor, type AuditFilters, appendAudit, filteredAuditBatches } from "./index";

/** The most rows one export holds (newest first); the page says when the filtered log had more. */
export const AUDIT_EXPORT_MAX_ROWS = 50_000;
const BATCH = 5_000;

export const AUDIT_CSV_COLUMNS = [
  "seq", "time", "actor", "actor_id", "action", "target_type", "target_id", "target_name", "ip", "user_agent", "details", "prev_hash", "hash",
] as const;

/**
 * One CSV cell (RFC 4180): quoted when it holds a quote, comma or line break, quotes doubled. A cell that a
 * spreadsheet would run as a formula (starting with = + - @, or a tab or carriage return that some strip
 * first) gets a leading apostrophe: log text comes from users (labels, names, emails) and must not become a
 * formula in the auditor's spreadsheet.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  let s = value instanceof Date ? value.toISOString() : typeof value === "string" ? value : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(cells: readonly unknown[]): string {
  return `${cells.map(csvCell).join(",")}\r\n`;
}

export interface AuditExport {
  filename: string;
  csv: string;
  rows: number;
  /** The filtered log has more than AUDIT_EXPORT_MAX_ROWS rows: only the newest are in `csv`. */
  truncated: boolean;
  maxRows: number;
}

/**
 * The team's audit log under the page's filters as CSV, newest first: what the page shows (with target
 * names), plus the user agent and each row's hash-chain links so the file can be checked against the chain.
 * The caller has checked the permission and scoped `teamId` (audit.export, like audit.list).
 */
export async function exportAuditCsv(q: AuditFilters, maxRows = AUDIT_EXPORT_MAX_ROWS): Promise<AuditExport> {
  const team = await db.team.findUniqueOrThrow({ where: { id: q.teamId }, select: { slug: true } });
  const parts: string[] = [csvLine(AUDIT_CSV_COLUMNS)];
  let rows = 0;
  let truncated = false;
  for await (const batch of filteredAuditBatches(q, { max: maxRows, batch: BATCH })) {
    for (const r of batch.rows) {
      parts.push(csvLine([
        r.seq, r.createdAt, r.actorLabel, r.actorId, r.action, r.targetType, r.targetId, r.targetName, r.ip, r.userAgent,
        r.metadata && typeof r.metadata === "object" && Object.keys(r.metadata).length ? JSON.stringify(r.metadata) : null,
        r.prevHash, r.hash,
      ]));
    }
    rows += batch.rows.length;
    truncated ||= batch.truncated;
  }
  const day = new Date().toISOString().slice(0, 10);
  return { filename: `tuna-audit-${team.slug}-${day}.csv`, csv: parts.join(""), rows, truncated, maxRows };
}

/**
 * Taking a copy of the log is itself an audited act: who exported, with which filters, and how many rows went
 * out. Appended after the file was built, so the export never contains its own row.
 */
export async function recordAuditExport(q: AuditFilters, actor: AuditActor, result: Pick<AuditExport, "rows" | "truncated">): Promise<void> {
  const filters = {
    ...(q.actorId ? { actorId: q.actorId } : {}),
    ...(q.action?.trim() ? { action: q.action.trim() } : {}),
    ...(q.from ? { from: q.from.toISOString() } : {}),
    ...(q.to ? { to: q.to.toISOString() } : {}),
  };
  await db.$transaction((tx) =>
    appendAudit(tx, q.teamId, actor, {
      action: "audit.export", targetType: "team", targetId: q.teamId, metadata: { rows: result.rows, truncated: result.truncated, filters },
    }),
  );
}
