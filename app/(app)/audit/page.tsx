"use client";

import { useInfiniteQuery, useMutation, useQuery } from "@tanstack/react-query";
import type { ColumnDef } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { withTransportErrors } from "@/app/_lib/error-text";
import { EXPORT_MAX_ROWS_HEADER, EXPORT_ROWS_HEADER, EXPORT_TRUNCATED_HEADER } from "@/app/api/audit/export/headers";
import { TEAM_HEADER } from "@/server/teams/cookie";
import { useHydrated } from "@/app/_lib/hydrated";
import { q, type QuerySchema, useFilterDraft, useQueryState } from "@/app/_lib/url-state";
import { DataTable } from "@/app/_components/DataTable";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Field } from "@/app/_components/controls";
import { useTeam } from "../AppShell";

interface Row {
  seq: number;
  createdAt: Date;
  actorLabel: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  /** Readable name of the target (slug, label, email…), null when unknown; the id stays shown beside it. */
  targetName: string | null;
  targetGone: boolean;
  ip: string | null;
  metadata: unknown;
}

const columns: ColumnDef<Row>[] = [
  { header: "#", cell: ({ row }) => row.original.seq },
  { header: "Time", cell: ({ row }) => new Date(row.original.createdAt).toLocaleString() },
  { header: "Actor", cell: ({ row }) => row.original.actorLabel },
  { header: "Action", cell: ({ row }) => <code data-testid="audit-action">{row.original.action}</code> },
  { header: "Target", cell: ({ row }) => <Target row={row.original} /> },
  { header: "IP", cell: ({ row }) => row.original.ip ?? "—" },
  {
    header: "Details",
    cell: ({ row }) => {
      const m = row.original.metadata as Record<string, unknown> | null;
      return m && Object.keys(m).length ? <code className="text-xs text-gray-600">{JSON.stringify(m)}</code> : "—";
    },
  },
];

/** Target types as the rest of the dashboard names them. */
const TARGET_TYPES: Record<string, string> = {
  deployment: "Deployment",
  apikey: "API key",
  secret: "Credential",
  alert_channel: "Alert channel",
  user: "Member",
  team: "Team",
  invitation: "Invitation",
  approval: "Approval",
};

/** The target by name, its id underneath (and in the tooltip) for searching and support; the id alone when no name is known. */
function Target({ row }: { row: Row }) {
  if (!row.targetType) return <>—</>;
  const type = TARGET_TYPES[row.targetType] ?? row.targetType;
  if (!row.targetId) return <>{type}</>;
  const gone = row.targetGone ? (row.targetType === "user" ? " (no longer a member)" : " (deleted)") : "";
  return (
    <div data-testid="audit-target" title={`${row.targetType} ${row.targetId}`} className="min-w-0">
      <span className="text-gray-500">{type}</span>{" "}
      {row.targetName ? <span className="font-medium text-gray-900 [overflow-wrap:anywhere]">{row.targetName}</span> : <code className="text-xs [overflow-wrap:anywhere]">{row.targetId}</code>}
      {gone ? <span className="text-gray-500">{gone}</span> : null}
      {row.targetName ? <div className="font-mono text-xs text-gray-500 [overflow-wrap:anywhere]" data-testid="audit-target-id">{row.targetId}</div> : null}
    </div>
  );
}

/** The export's fetch: Tuna answers CSV, or JSON saying why not; anything else (a proxy's page, no answer) is a plain message. */
const exportFetch = withTransportErrors(undefined, ["text/csv", "json"]);

type ExportOutcome = { rows: number; truncated: boolean; maxRows: number; filename: string } | { error: string };

/** The filters, kept in the URL (?actor=…&action=member.&from=2026-11-01): refresh, Back and shared links keep them. */
interface Query {
  actor: string;
  action: string;
  from: string;
  to: string;
}
const QUERY: QuerySchema<Query> = { actor: q.text(64), action: q.text(100), from: q.day(), to: q.day() };

export default function AuditPage() {
  const { can } = useTeam();
  // Without the permission nothing is fetched (not even the member list the actor filter offers).
  if (!can("audit.read")) {
    return (
      <>
        <PageHeader title="Audit log" />
        <Notice>Your role cannot see the audit log (needs “audit.read”).</Notice>
      </>
    );
  }
  return <AuditLog />;
}

function AuditLog() {
  const trpc = useTRPC();
  const { teamId } = useTeam();
  const members = useQuery(trpc.team.members.queryOptions());
  const [query, setQuery] = useQueryState(QUERY);
  // Days are the user's own calendar days: From at its start, To at its end (the same day twice is that day).
  const filters = {
    actorId: query.actor,
    action: query.action,
    from: query.from ? new Date(`${query.from}T00:00:00`) : undefined,
    to: query.to ? new Date(`${query.to}T23:59:59.999`) : undefined,
  };
  const [form, setDraft, applied] = useFilterDraft<Partial<Query>>(query);
  const [toError, setToError] = useState<string | null>(null);
  const log = useInfiniteQuery(
    trpc.audit.list.infiniteQueryOptions({ ...filters, limit: 50 }, { getNextPageParam: (last) => last.nextCursor ?? undefined }),
  );
  const verify = useMutation(trpc.audit.verify.mutationOptions());
  const hydrated = useHydrated();
  const [exporting, setExporting] = useState(false);
  const [exported, setExported] = useState<ExportOutcome | null>(null);

  /** Downloads the log under the applied filters (those in the URL, not a draft not yet applied). */
  async function onExport() {
    setExporting(true);
    setExported(null);
    try {
      const params = new URLSearchParams();
      if (filters.actorId) params.set("actor", filters.actorId);
      if (filters.action) params.set("action", filters.action);
      if (filters.from) params.set("from", filters.from.toISOString());
      if (filters.to) params.set("to", filters.to.toISOString());
      const res = await exportFetch(`/api/audit/export?${params}`, { headers: teamId ? { [TEAM_HEADER]: teamId } : {} });
      if (!res.ok) {
        const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
        setExported({ error: body?.error?.message ?? `The export failed (HTTP ${res.status}). Try again.` });
        return;
      }
      const filename = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")?.[1] ?? "tuna-audit.csv";
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = filename;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      setExported({
        filename,
        rows: Number(res.headers.get(EXPORT_ROWS_HEADER) ?? 0),
        truncated: res.headers.get(EXPORT_TRUNCATED_HEADER) === "1",
        maxRows: Number(res.headers.get(EXPORT_MAX_ROWS_HEADER) ?? 0),
      });
      // The export is itself in the log now (audit.export): show it when the filters let it through.
      void log.refetch();
    } catch (e) {
      setExported({ error: errorMessage(e) });
    } finally {
      setExporting(false);
    }
  }

  function onFilter(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const from = form.from || undefined;
    const to = form.to || undefined;
    // Both are YYYY-MM-DD, so they compare as strings; the same day twice is one day, from its start to its end.
    if (from && to && from > to) {
      setToError("Must be on or after the From date.");
      return;
    }
    setToError(null);
    const next = { actor: form.actor || undefined, action: form.action?.trim() || undefined, from, to };
    applied(next);
    setQuery(next);
  }

  const rows = log.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <PageHeader
        title="Audit log"
        description="Every change in this team, hash-chained so that edits, insertions and deletions are detectable."
        actions={
          <>
            <button type="button" className="btn-secondary" onClick={() => void onExport()} disabled={!hydrated || exporting}>{exporting ? "Exporting…" : "Export CSV"}</button>
            <button type="button" className="btn-secondary" onClick={() => verify.mutate()} disabled={verify.isPending}>{verify.isPending ? "Verifying…" : "Verify integrity"}</button>
          </>
        }
      />
      {exported ? (
        <div className="mb-4" data-testid="audit-export-result">
          {"error" in exported ? (
            <ErrorBox message={exported.error} onRetry={() => void onExport()} />
          ) : exported.truncated ? (
            <Notice tone="warning">
              Exported the newest {exported.maxRows.toLocaleString()} entries to {exported.filename}: the filtered log has more. Narrow the dates or other filters to export the rest.
            </Notice>
          ) : (
            <Notice tone="success">Exported {exported.rows.toLocaleString()} {exported.rows === 1 ? "entry" : "entries"} to {exported.filename}.</Notice>
          )}
        </div>
      ) : null}
      {verify.data ? (
        <div className="mb-4">
          {verify.data.ok ? (
            <Notice tone="success">Chain intact: {verify.data.checked} entries verified.</Notice>
          ) : (
            <ErrorBox message={`Tampering detected: ${verify.data.problems.map((p) => p.message).join("; ")}`} />
          )}
        </div>
      ) : verify.error ? <div className="mb-4"><ErrorBox message={errorMessage(verify.error)} /></div> : null}
      <form method="post" onSubmit={onFilter} className="card mb-4 grid gap-3 sm:grid-cols-5" aria-label="Filter the audit log">
        <div>
          <label htmlFor="f-actor" className="field-label">Actor</label>
          <select id="f-actor" name="actor" className="field-input" value={form.actor ?? ""} onChange={(e) => setDraft({ actor: e.target.value })}>
            <option value="">Anyone</option>
            {members.data?.map((m) => <option key={m.userId} value={m.userId}>{m.email}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="f-action" className="field-label">Action starts with</label>
          <input id="f-action" name="action" placeholder="member." className="field-input" value={form.action ?? ""} onChange={(e) => setDraft({ action: e.target.value })} maxLength={100} />
        </div>
        <div>
          <label htmlFor="f-from" className="field-label">From</label>
          <input id="f-from" name="from" type="date" className="field-input" value={form.from ?? ""} onChange={(e) => { setToError(null); setDraft({ from: e.target.value }); }} />
        </div>
        <Field id="f-to" label="To" error={toError ?? undefined}>
          <input id="f-to" name="to" type="date" className="field-input" value={form.to ?? ""} aria-invalid={!!toError} aria-describedby={toError ? "f-to-error" : undefined} onChange={(e) => { setToError(null); setDraft({ to: e.target.value }); }} />
        </Field>
        <div className="flex items-end"><button type="submit" className="btn-primary w-full" disabled={!hydrated}>Apply filters</button></div>
      </form>
      {log.isPending ? <Loading /> : log.error ? <ErrorBox message={errorMessage(log.error)} onRetry={() => log.refetch()} /> : rows.length === 0 ? (
        <Empty title="No audit entries match these filters" />
      ) : (
        <>
          <DataTable testId="audit-table" caption="Audit log entries" data={rows as Row[]} columns={columns} />
          <div className="mt-3 flex items-center justify-between text-sm text-gray-600">
            <span>{rows.length} {rows.length === 1 ? "entry" : "entries"} shown</span>
            {log.hasNextPage ? (
              <button type="button" className="btn-secondary" onClick={() => log.fetchNextPage()} disabled={log.isFetchingNextPage}>
                {log.isFetchingNextPage ? "Loading…" : "Load older entries"}
              </button>
            ) : <span>End of log</span>}
          </div>
        </>
      )}
    </>
  );
}
