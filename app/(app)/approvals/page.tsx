"use client";

import Link from "next/link";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { StatusBadge } from "@/app/_components/controls";
import { formatDate, relativeTime } from "@/app/_components/format";
import { useTeam } from "../AppShell";

const FILTERS = [
  { value: "pending", label: "Waiting" },
  { value: "approved", label: "Approved" },
  { value: "rejected", label: "Rejected" },
  { value: "expired", label: "Expired" },
  { value: "", label: "All" },
] as const;
type Filter = (typeof FILTERS)[number]["value"];

export default function ApprovalsPage() {
  const trpc = useTRPC();
  const { can } = useTeam();
  const decide = can("deployment.approve");
  const me = useQuery(trpc.me.get.queryOptions());
  const [status, setStatus] = useState<Filter>("pending");
  const list = useQuery({ ...trpc.approvals.list.queryOptions(status ? { status } : {}), refetchInterval: 10_000 });

  return (
    <>
      <PageHeader title="Approvals" description="Deployment requests that the team policy sends to an admin. An admin cannot approve their own request." />
      {!decide ? <div className="mb-4"><Notice>Only admins can approve or reject requests (needs “deployment.approve”).</Notice></div> : null}
      <div role="group" aria-label="Show requests" className="mb-4 flex flex-wrap gap-1">
        {FILTERS.map((f) => (
          <button key={f.value || "all"} type="button" aria-pressed={status === f.value} onClick={() => setStatus(f.value)} className={`rounded-md px-3 py-1.5 text-sm ${status === f.value ? "bg-blue-50 font-medium text-blue-700 ring-1 ring-blue-200" : "text-gray-700 hover:bg-gray-100"}`}>
            {f.label}
          </button>
        ))}
      </div>
      {list.isPending ? <Loading /> : list.error ? <ErrorBox message={errorMessage(list.error)} onRetry={() => list.refetch()} /> : list.data.length === 0 ? (
        <Empty title={status === "pending" ? "Nothing is waiting for approval" : "No requests"} />
      ) : (
        <ul className="space-y-3" data-testid="approvals-list">
          {list.data.map((a) => (
            <ApprovalCard key={a.id} approval={a} canDecide={decide} myId={me.data?.id ?? null} />
          ))}
        </ul>
      )}
    </>
  );
}

interface ApprovalView {
  id: string;
  deploymentId: string;
  deploymentSlug: string;
  requestedById: string;
  requestedByEmail: string | null;
  status: string;
  reasons: string[];
  summary: unknown;
  estimatedCostDisplay: string | null;
  decidedByEmail: string | null;
  comment: string | null;
  decidedAt: Date | null;
  expiresAt: Date;
  createdAt: Date;
  /** Members other than the requester who may approve it; 0: it waits for an admin to be invited. */
  otherApprovers: number;
}

function ApprovalCard({ approval: a, canDecide, myId }: { approval: ApprovalView; canDecide: boolean; myId: string | null }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const commentId = useId();
  const [comment, setComment] = useState("");
  const decideM = useMutation(trpc.approvals.decide.mutationOptions({ onSuccess: () => qc.invalidateQueries({ queryKey: trpc.approvals.list.queryKey() }) }));
  const s = (a.summary ?? {}) as Record<string, unknown>;
  const own = a.requestedById === myId;
  const pending = a.status === "pending";
  // Nobody approves their own request: with no other admin in the team, this one waits for a new admin.
  const stuck = pending && a.otherApprovers === 0;
  return (
    <li className="card" data-testid={`approval-${a.deploymentSlug}`}>
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div className="min-w-0 [overflow-wrap:anywhere]">
          <h2 className="text-base font-semibold text-gray-900">
            <Link className="text-blue-700 hover:underline" href={`/deployments/${a.deploymentId}`}>{a.deploymentSlug}</Link> <StatusBadge status={a.status} testId="approval-status" />
          </h2>
          <p className="text-sm text-gray-600">
            Requested by {a.requestedByEmail ?? "a former member"} {relativeTime(a.createdAt)} · {pending ? `expires ${relativeTime(a.expiresAt)}` : a.decidedAt ? `decided ${formatDate(a.decidedAt)}${a.decidedByEmail ? ` by ${a.decidedByEmail}` : ""}` : null}
          </p>
        </div>
        <p className="text-right text-sm"><span className="block text-gray-500">Estimated</span><span className="text-lg font-semibold tabular-nums">{a.estimatedCostDisplay ?? "—"}</span></p>
      </div>
      <dl className="mt-3 grid gap-x-6 gap-y-1 text-sm sm:grid-cols-2 lg:grid-cols-4">
        {[
          ["Model", s.model],
          ["Mode", s.mode],
          ["Serverless", s.serverlessProvider ? `${s.serverlessProvider} · ${s.serverlessGpu ?? ""}` : "—"],
          ["Spot", s.spotProvider ? `${s.spotProvider} · ${s.spotGpu ?? ""}` : "—"],
        ].map(([k, v]) => (
          <div key={String(k)} className="min-w-0"><dt className="text-gray-500">{String(k)}</dt><dd className="font-medium text-gray-900 [overflow-wrap:anywhere]">{v == null ? "—" : String(v)}</dd></div>
        ))}
      </dl>
      {Array.isArray(s.unknownPrices) && s.unknownPrices.length ? (
        <p className="mt-3 text-sm text-amber-800 [overflow-wrap:anywhere]" data-testid="approval-unknown-prices">
          {(s.unknownPrices as string[]).join("; ")}: its spend there cannot be counted, so a team with a budget cannot approve it.
        </p>
      ) : null}
      <div className="mt-3 text-sm">
        <p className="font-medium text-gray-900">Why approval is needed</p>
        <ul className="list-inside list-disc text-gray-700 [overflow-wrap:anywhere]">{a.reasons.map((r) => <li key={r}>{r}</li>)}</ul>
      </div>
      {a.comment ? <p className="mt-2 text-sm text-gray-700 [overflow-wrap:anywhere]" data-testid="approval-comment"><span className="font-medium">Comment:</span> {a.comment}</p> : null}
      {stuck ? (
        <div role="status" data-testid="approval-no-other-approver" className="mt-3 rounded-md bg-amber-50 p-3 text-sm text-amber-900 ring-1 ring-amber-200">
          <p className="font-medium">
            {own ? "You requested this, and this team has no other admin to approve it" : "Nobody in this team can approve it yet: its requester is the team's only admin"} (nobody approves their own request).
          </p>
          <p className="mt-1">
            {canDecide ? <Link className="font-medium text-blue-700 underline" href="/members">Invite an admin in Members</Link> : "An admin must invite another admin in Members"}; they can approve it until it expires {relativeTime(a.expiresAt)}.
            {own && canDecide ? " Or withdraw it below." : ""}
          </p>
        </div>
      ) : null}
      {pending && canDecide ? (
        <form method="post" className="mt-4 space-y-2" aria-label={`Decide on ${a.deploymentSlug}`} onSubmit={(e) => e.preventDefault()}>
          <label htmlFor={commentId} className="field-label">Comment (optional, sent to the requester and the team’s alert channels)</label>
          <textarea id={commentId} className="field-input" rows={2} maxLength={2000} value={comment} onChange={(e) => setComment(e.target.value)} />
          <div className="flex flex-wrap items-center gap-2">
            <button type="button" className="btn-primary" disabled={decideM.isPending || own} aria-describedby={own ? `${commentId}-own` : undefined} onClick={() => decideM.mutate({ approvalId: a.id, decision: "approve", comment })}>Approve</button>
            <button type="button" className="btn-danger" disabled={decideM.isPending} onClick={() => decideM.mutate({ approvalId: a.id, decision: "reject", comment })}>{own ? "Withdraw (reject)" : "Reject"}</button>
            {own ? <span id={`${commentId}-own`} className="text-xs text-gray-500">{stuck ? "You requested this: an admin you invite must approve it." : "You requested this: another admin must approve it."}</span> : null}
          </div>
          {decideM.error ? <p role="alert" className="field-error">{errorMessage(decideM.error)}</p> : null}
        </form>
      ) : null}
    </li>
  );
}
