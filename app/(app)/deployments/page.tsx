"use client";

import Link from "next/link";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { useHydrated } from "@/app/_lib/hydrated";
import { q, type QuerySchema, useFilterDraft, useQueryState } from "@/app/_lib/url-state";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { ConfirmButton, DisabledWithReason, StatusBadge } from "@/app/_components/controls";
import { formatDate, formatUsd } from "@/app/_components/format";
import { useTeam } from "../AppShell";
import { isStopped } from "./lifecycle";
import { listRouterMarker } from "./router-view";

const STATUSES = ["pending_approval", "queued", "deploying", "active", "degraded", "failed", "destroying", "destroyed", "rejected", "expired"] as const;
type Status = (typeof STATUSES)[number];
const SORTS = [
  { value: "newest", label: "Newest first" },
  { value: "oldest", label: "Oldest first" },
  { value: "slug", label: "Name (A–Z)" },
] as const;
type Sort = (typeof SORTS)[number]["value"];
const DESTROYABLE: string[] = ["pending_approval", "queued", "deploying", "active", "degraded", "failed"];
const PAGE_SIZE = 25;

/** The list's filters and sort, kept in the URL (?status=active&sort=slug…): refresh, Back and shared links keep them. */
interface Query {
  status: Status;
  provider: string;
  gpu: string;
  owner: string;
  sort: Sort;
}
const QUERY: QuerySchema<Query> = {
  status: q.oneOf(STATUSES),
  provider: q.text(64),
  gpu: q.text(64),
  owner: q.text(64),
  sort: q.oneOf(SORTS.map((s) => s.value)),
};
type Draft = Partial<Pick<Query, "status" | "provider" | "gpu" | "owner">>;

export default function DeploymentsPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useTeam();
  const [query, setQuery] = useQueryState(QUERY);
  const queryKey = JSON.stringify(query);
  const filters = { status: query.status, provider: query.provider, gpu: query.gpu, ownerId: query.owner };
  const sort = query.sort ?? "newest";
  const [form, setDraft, applied] = useFilterDraft<Draft>({ status: query.status, provider: query.provider, gpu: query.gpu, owner: query.owner });
  // Cursor stack: cursors[i] opens page i (page 0 has none); server-side keyset pagination. Another query starts on page 1.
  const [paging, setPaging] = useState<{ key: string; cursors: Array<string | null> }>({ key: queryKey, cursors: [null] });
  const cursors = paging.key === queryKey ? paging.cursors : [null];
  const setCursors = (next: Array<string | null>) => setPaging({ key: queryKey, cursors: next });
  const page = cursors.length - 1;
  const input = { ...filters, sort, limit: PAGE_SIZE, cursor: cursors[page], withRouterView: true };
  const list = useQuery({
    ...trpc.deployments.list.queryOptions(input),
    placeholderData: keepPreviousData,
    // Keep badges honest while something is moving, and the routers' word on spot fresh while spot serves.
    refetchInterval: (q) => {
      const items = q.state.data?.items ?? [];
      if (items.some((d) => ["queued", "deploying", "destroying"].includes(d.status))) return 3000;
      return items.some((d) => d.routerView !== null) ? 10_000 : false;
    },
  });
  const members = useQuery(trpc.team.members.queryOptions());
  const providers = useQuery(trpc.catalog.providers.queryOptions());
  const catalog = useQuery(trpc.catalog.table.queryOptions());
  const [actionError, setActionError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const hydrated = useHydrated();
  const refresh = () => qc.invalidateQueries({ queryKey: trpc.deployments.list.queryKey() });
  const destroy = useMutation(trpc.deployments.destroy.mutationOptions({ onSuccess: refresh, onError: (e) => setActionError(errorMessage(e)) }));
  const destroyAll = useMutation(
    trpc.deployments.destroyAll.mutationOptions({
      onSuccess: (r) => {
        setNotice(`Destroying ${r.count} deployment(s).`);
        refresh();
      },
      onError: (e) => setActionError(errorMessage(e)),
    }),
  );
  const emailOf = (id: string) => members.data?.find((m) => m.userId === id)?.email ?? "former member";

  function onFilter(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const next = { status: form.status, provider: form.provider, gpu: form.gpu, owner: form.owner };
    applied(next);
    setQuery(next);
  }

  const canCreate = can("deployment.create");
  const canDestroy = can("deployment.destroy");
  return (
    <>
      <PageHeader
        title="Deployments"
        description="Models served behind the router, on serverless and spot GPUs."
        actions={
          <>
            {can("deployment.destroy-all") ? (
              <ConfirmButton
                label="Destroy all"
                title="Destroy every deployment of this team?"
                message="Every serverless, spot and router component of every live deployment is torn down. Clients get errors until you deploy again."
                confirmLabel="Destroy everything"
                typeToConfirm="destroy all"
                danger
                className="btn-secondary"
                onConfirm={() => { setActionError(null); destroyAll.mutate({ confirm: "destroy all" }); }}
              />
            ) : null}
            {canCreate ? <Link href="/deployments/new" className="btn-primary">New deployment</Link> : <DisabledWithReason label="New deployment" reason="Viewers cannot deploy." />}
          </>
        }
      />
      {actionError ? <div className="mb-4"><ErrorBox message={actionError} /></div> : null}
      {notice ? <div className="mb-4"><Notice tone="success">{notice}</Notice></div> : null}
      <form method="post" onSubmit={onFilter} className="card mb-4 grid gap-3 sm:grid-cols-3 lg:grid-cols-6" aria-label="Filter deployments">
        <div>
          <label htmlFor="f-status" className="field-label">Status</label>
          <select id="f-status" name="status" className="field-input" value={form.status ?? ""} onChange={(e) => setDraft({ status: (e.target.value || undefined) as Status | undefined })}>
            <option value="">Any</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s.replace(/_/g, " ")}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="f-provider" className="field-label">Provider</label>
          <select id="f-provider" name="provider" className="field-input" value={form.provider ?? ""} onChange={(e) => setDraft({ provider: e.target.value || undefined })}>
            <option value="">Any</option>
            {providers.data?.filter((p) => p.kind === "serverless").map((p) => <option key={p.name} value={p.name}>{p.displayName}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="f-gpu" className="field-label">GPU</label>
          <select id="f-gpu" name="gpu" className="field-input" value={form.gpu ?? ""} onChange={(e) => setDraft({ gpu: e.target.value || undefined })}>
            <option value="">Any</option>
            {catalog.data?.gpus.map((g) => <option key={g.gpu} value={g.gpu}>{g.gpu}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="f-owner" className="field-label">Owner</label>
          <select id="f-owner" name="owner" className="field-input" value={form.owner ?? ""} onChange={(e) => setDraft({ owner: e.target.value || undefined })}>
            <option value="">Anyone</option>
            {members.data?.map((m) => <option key={m.userId} value={m.userId}>{m.email}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="f-sort" className="field-label">Sort</label>
          <select id="f-sort" className="field-input" value={sort} onChange={(e) => setQuery({ sort: e.target.value === "newest" ? undefined : (e.target.value as Sort) })}>
            {SORTS.map((s) => <option key={s.value} value={s.value}>{s.label}</option>)}
          </select>
        </div>
        <div className="flex items-end"><button type="submit" className="btn-primary w-full" disabled={!hydrated}>Apply filters</button></div>
      </form>
      {list.isPending ? <Loading /> : list.error ? <ErrorBox message={errorMessage(list.error)} onRetry={() => list.refetch()} /> : list.data.items.length === 0 ? (
        <Empty title={page === 0 && !Object.values(filters).some(Boolean) ? "No deployments yet" : "No deployments match these filters"}>
          {canCreate && page === 0 ? <Link className="text-blue-600 hover:underline" href="/deployments/new">Deploy a model</Link> : null}
        </Empty>
      ) : (
        <>
          <div className="relative overflow-x-auto rounded-lg bg-white shadow-sm ring-1 ring-gray-200">
            <table className="min-w-full divide-y divide-gray-200 text-sm" data-testid="deployments-table" aria-busy={list.isFetching}>
              <caption className="sr-only">Deployments, {SORTS.find((s) => s.value === sort)?.label.toLowerCase()}</caption>
              <thead className="bg-gray-50 text-left text-gray-600">
                <tr>
                  <th scope="col" className="px-4 py-2 font-medium">Name</th>
                  <th scope="col" className="px-4 py-2 font-medium">Status</th>
                  <th scope="col" className="px-4 py-2 font-medium">Mode</th>
                  <th scope="col" className="px-4 py-2 font-medium">Provider · GPU</th>
                  <th scope="col" className="px-4 py-2 text-right font-medium">Cost / hour</th>
                  <th scope="col" className="px-4 py-2 font-medium">Owner</th>
                  <th scope="col" className="px-4 py-2 font-medium">Created</th>
                  <th scope="col" className="px-4 py-2"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody className="divide-y divide-gray-100">
                {list.data.items.map((d) => (
                  <tr key={d.id} className="hover:bg-gray-50" data-testid={`deployment-row-${d.slug}`}>
                    <td className="px-4 py-2">
                      <Link href={`/deployments/${d.id}`} className="font-medium text-blue-700 hover:underline">{d.slug}</Link>
                      <span className="block max-w-[16rem] truncate text-xs text-gray-500" title={d.model}>{d.model}</span>
                    </td>
                    <td className="px-4 py-2">
                      <StatusBadge status={d.status} testId="deployment-status" />
                      {d.failureReason ? <span className="block max-w-[14rem] truncate text-xs text-red-700" title={d.failureReason}>{d.failureStep}: {d.failureReason}</span> : null}
                      <RouterMarker marker={listRouterMarker(d.routerView, d.mode === "spot")} />
                    </td>
                    <td className="px-4 py-2">{d.mode === "serverless" ? "serverless only" : d.mode === "spot" ? "spot only" : "hybrid"}</td>
                    <td className="px-4 py-2 text-xs">
                      {d.serverlessProvider ? `${d.serverlessProvider} · ${d.serverlessGpu}` : null}
                      {d.spotGpu && d.mode !== "serverless" ? <span className="block">spot · {d.spotGpu}</span> : null}
                      {d.gpuCount > 1 ? <span className="block text-gray-500">× {d.gpuCount} GPUs</span> : null}
                    </td>
                    <td className="px-4 py-2 text-right tabular-nums" data-testid="deployment-cost">
                      {isStopped(d.status) ? <span className="text-gray-400" title="It no longer runs: no hourly cost.">—<span className="sr-only"> not running</span></span> : formatUsd(d.estimatedCostPerHourMicros, { perHour: true })}
                    </td>
                    <td className="px-4 py-2 text-xs">{emailOf(d.createdById)}</td>
                    <td className="px-4 py-2 text-xs">{formatDate(d.createdAt)}</td>
                    <td className="px-4 py-2 text-right">
                      <div className="flex justify-end gap-2">
                        {d.status === "pending_approval" && can("deployment.approve") ? <Link href="/approvals" className="btn-secondary px-2 py-1 text-xs">Review</Link> : null}
                        {canDestroy && DESTROYABLE.includes(d.status) ? (
                          <ConfirmButton
                            label="Destroy"
                            title={`Destroy ${d.slug}?`}
                            message="Its serverless and spot components are torn down and the router stops serving it."
                            confirmLabel="Destroy"
                            typeToConfirm={d.slug}
                            danger
                            className="btn-secondary px-2 py-1 text-xs"
                            onConfirm={() => { setActionError(null); destroy.mutate({ id: d.id }); }}
                          />
                        ) : null}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav aria-label="Pages" className="mt-3 flex items-center justify-between text-sm text-gray-600">
            <span>Page {page + 1} · {list.data.items.length} shown</span>
            <div className="flex gap-2">
              <button type="button" className="btn-secondary" disabled={page === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
              <button type="button" className="btn-secondary" disabled={!list.data.nextCursor} onClick={() => list.data.nextCursor && setCursors([...cursors, list.data.nextCursor])}>Next</button>
            </div>
          </nav>
          {!canDestroy ? <p className="mt-2 text-xs text-gray-500">Your role cannot destroy deployments (needs “deployment.destroy”).</p> : null}
        </>
      )}
    </>
  );
}

/** The routers took spot out (the status badge, from the provider, catches up within minutes): said in words. */
function RouterMarker({ marker }: { marker: ReturnType<typeof listRouterMarker> }) {
  if (!marker) return null;
  return (
    <span className={`block text-xs font-medium ${marker.tone === "red" ? "text-red-700" : "text-amber-800"}`} data-testid="deployment-router-view">
      {marker.text}
    </span>
  );
}
