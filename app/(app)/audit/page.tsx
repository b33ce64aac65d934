"use client";

import { useInfiniteQuery, useMutation, useQuery } from "@tanstack/react-query";
import type { ColumnDef } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
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
  ip: string | null;
  metadata: unknown;
}

const columns: ColumnDef<Row>[] = [
  { header: "#", cell: ({ row }) => row.original.seq },
  { header: "Time", cell: ({ row }) => new Date(row.original.createdAt).toLocaleString() },
  { header: "Actor", cell: ({ row }) => row.original.actorLabel },
  { header: "Action", cell: ({ row }) => <code data-testid="audit-action">{row.original.action}</code> },
  { header: "Target", cell: ({ row }) => (row.original.targetType ? `${row.original.targetType} ${row.original.targetId ?? ""}` : "—") },
  { header: "IP", cell: ({ row }) => row.original.ip ?? "—" },
  {
    header: "Details",
    cell: ({ row }) => {
      const m = row.original.metadata as Record<string, unknown> | null;
      return m && Object.keys(m).length ? <code className="text-xs text-gray-600">{JSON.stringify(m)}</code> : "—";
    },
  },
];

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
        actions={<button type="button" className="btn-secondary" onClick={() => verify.mutate()} disabled={verify.isPending}>{verify.isPending ? "Verifying…" : "Verify integrity"}</button>}
      />
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
            <span>{rows.length} entries shown</span>
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
