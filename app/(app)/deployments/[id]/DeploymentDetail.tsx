"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { q, type QuerySchema, useQueryState } from "@/app/_lib/url-state";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Badge, ConfirmButton, CopyButton, DisabledWithReason, StatusBadge } from "@/app/_components/controls";
import { formatDate, formatUsd, relativeTime } from "@/app/_components/format";
import { UsageCharts, type SeriesPointView } from "@/app/_components/UsageCharts";
import { useTeam } from "../../AppShell";
import { BudgetBlockedBanner } from "../../BudgetBlockedBanner";
import { hasEnded } from "../lifecycle";
import { type RouterLine, serverlessRouterLine, spotRouterLine } from "../router-view";

/** Statuses in which the workflow is writing the timeline: poll every second. */
const MOVING = ["queued", "deploying", "destroying"];
const DESTROYABLE = ["pending_approval", "queued", "deploying", "active", "degraded", "failed"];
const LIFETIME = Number.POSITIVE_INFINITY;
const RANGES = [
  { id: "15m", label: "15 min", ms: 15 * 60_000 },
  { id: "1h", label: "1 hour", ms: 3_600_000 },
  { id: "24h", label: "24 hours", ms: 86_400_000 },
  { id: "7d", label: "7 days", ms: 7 * 86_400_000 },
  { id: "lifetime", label: "Lifetime", ms: LIFETIME },
] as const;
type RangeId = (typeof RANGES)[number]["id"];
/** The charts' range in the URL (?range=7d), so a refresh or a shared link shows the same span. */
const CHART_QUERY: QuerySchema<{ range: RangeId }> = { range: q.oneOf(RANGES.map((r) => r.id)) };
/** The series query accepts at most 400 days. */
const MAX_RANGE_MS = 399 * 86_400_000;

/** The control plane's view of spot, in the words the router uses (cold → warming → ready). */
function spotState(status: string | undefined): { label: string; tone: "gray" | "amber" | "green" | "red" } {
  switch (status) {
    case "ready":
      return { label: "ready", tone: "green" };
    case "creating":
      return { label: "warming", tone: "amber" };
    case "failed":
      return { label: "failed", tone: "red" };
    case "destroying":
    case "destroyed":
    case "gone":
      return { label: "gone", tone: "gray" };
    default:
      // pending, scaled_to_zero, draining (preempted): nothing serving yet
      return { label: "cold", tone: "gray" };
  }
}

export function DeploymentDetail({ id, routerUrl }: { id: string; routerUrl: string }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const router = useRouter();
  const { can } = useTeam();
  const dep = useQuery({
    ...trpc.deployments.get.queryOptions({ id }),
    refetchInterval: (q) => {
      const s = q.state.data?.status;
      if (s && MOVING.includes(s)) return 1000;
      if (s === "pending_approval") return 5000;
      if (s === "active" || s === "degraded") return 5000;
      return false;
    },
  });
  const destroy = useMutation(trpc.deployments.destroy.mutationOptions({ onSuccess: () => qc.invalidateQueries({ queryKey: trpc.deployments.get.queryKey({ id }) }) }));

  if (dep.isPending) return <Loading />;
  if (dep.error) {
    return (
      <>
        <PageHeader title="Deployment" />
        <ErrorBox message={errorMessage(dep.error)} onRetry={() => dep.refetch()} />
        <p className="mt-4 text-sm"><Link className="text-blue-600 hover:underline" href="/deployments">Back to deployments</Link></p>
      </>
    );
  }
  const d = dep.data;
  const serving = d.status === "active" || d.status === "degraded";
  const spot = d.components.find((c) => c.kind === "spot");
  const svl = d.components.find((c) => c.kind === "serverless");
  const st = spotState(spot?.status);
  const ended = hasEnded(d.status);
  // The routers' view (seconds old) beside the provider's status (refreshed every few minutes); it comes with
  // every poll of the deployment. Not for a deployment that no longer serves, nor one reached without the router.
  const routerView = !ended && !d.direct ? d.routerView : null;
  const spotRouter = routerView ? spotRouterLine(routerView, { spotOnly: d.mode === "spot", providerReady: st.label === "ready" }) : null;
  const svlRouter = routerView ? serverlessRouterLine(routerView) : null;
  // A destroyed deployment's charts end where it did, so its history and cost so far stay in view.
  const chartsEndMs = d.status === "destroyed" && d.destroyedAt ? new Date(d.destroyedAt).getTime() : null;

  return (
    <>
      <PageHeader
        title={d.slug}
        description={`${d.model} · ${d.mode === "hybrid" ? "hybrid (serverless + spot)" : d.mode === "serverless" ? "serverless only" : "spot only"}`}
        actions={
          can("deployment.destroy") ? (
            DESTROYABLE.includes(d.status) ? (
              <ConfirmButton
                label="Destroy"
                testId="destroy-button"
                title={`Destroy ${d.slug}?`}
                message="Every component (serverless, spot, router entry) is torn down and its provider storage cleaned. Clients using this endpoint get errors."
                confirmLabel="Destroy deployment"
                typeToConfirm={d.slug}
                danger
                onConfirm={() => destroy.mutate({ id })}
              />
            ) : null
          ) : (
            <DisabledWithReason label="Destroy" reason="Your role cannot destroy deployments." />
          )
        }
      />
      {destroy.error ? <div className="mb-4"><ErrorBox message={errorMessage(destroy.error)} /></div> : null}
      <div className="mb-6 flex flex-wrap items-center gap-3 text-sm">
        <StatusBadge status={d.status} testId="detail-status" />
        {!ended ? <span className="text-gray-600">Estimated {formatUsd(d.estimatedCostPerHourMicros, { perHour: true })} while serving</span> : null}
        <span className="text-gray-600">Created {formatDate(d.createdAt)}</span>
        {d.activatedAt ? <span className="text-gray-600">Active since {formatDate(d.activatedAt)}</span> : null}
        <button type="button" className="ml-auto text-blue-600 hover:underline" onClick={() => router.push("/deployments")}>All deployments</button>
      </div>
      {ended ? <EndedSummary d={d} /> : null}
      {!ended && d.budgetBlock ? <BudgetBlockedBanner blocks={[d.budgetBlock]} /> : null}
      {d.status === "failed" && d.failureReason ? <div className="mb-4"><ErrorBox message={`Failed at ${d.failureStep ?? "a step"}: ${d.failureReason}`} /></div> : null}
      {d.status === "pending_approval" && d.approval ? (
        <div className="mb-4" data-testid="pending-approval">
          <Notice tone="warning">
            Waiting for an admin’s approval (expires {relativeTime(d.approval.expiresAt)}): {d.approval.reasons.join("; ")}.{" "}
            {can("deployment.approve") ? <Link className="font-medium underline" href="/approvals">Review it</Link> : null}
          </Notice>
        </div>
      ) : null}

      <div className="grid gap-6 lg:grid-cols-3">
        {/* min-w-0: a grid item is at least as wide as its content by default, and the code snippet's long lines
            would widen the page past a phone's screen instead of scrolling inside their own box. */}
        <div className="min-w-0 space-y-6 lg:col-span-2">
          {!ended ? <Endpoint routerUrl={routerUrl} directUrl={d.directUrl} model={d.servedModelName} serving={serving} /> : null}
          <section className="card" aria-labelledby="components-heading">
            <h2 id="components-heading" className="mb-3 text-base font-semibold text-gray-900">Components</h2>
            <ul className="divide-y text-sm" data-testid="components">
              {d.mode !== "spot" ? (
                <ComponentRow
                  name="Serverless"
                  testId="component-serverless"
                  status={svl?.status ?? "not created"}
                  detail={
                    <>
                      {svl ? `${svl.provider} · ${d.serverlessGpu} × ${d.gpuCount}` : `${d.serverlessProvider ?? ""} · ${d.serverlessGpu ?? ""}`}
                      {svlRouter ? <RouterViewLine line={svlRouter} testId="serverless-router-view" /> : null}
                    </>
                  }
                  error={svl?.lastError ?? null}
                />
              ) : null}
              {d.mode !== "serverless" ? (
                <ComponentRow
                  name="Spot"
                  testId="component-spot"
                  status={spot?.status ?? "not created"}
                  detail={
                    <>
                      {spot ? `${spot.provider} · ` : ""}{d.spotGpu} × {d.gpuCount}{d.spotClouds.length ? ` · ${d.spotClouds.join(", ")}` : ""}
                      {spot?.replicasTotal != null ? ` · ${spot.replicasReady ?? 0}/${spot.replicasTotal} replicas ready` : ""}
                      <span className="ml-2">Spot state: <Badge tone={st.tone} testId="spot-state">{st.label}</Badge></span>
                      {spotRouter ? <RouterViewLine line={spotRouter} testId="spot-router-view" /> : null}
                    </>
                  }
                  error={spot?.lastError ?? null}
                />
              ) : null}
              <ComponentRow
                name="Router"
                testId="component-router"
                status={serving ? "ready" : ended ? "gone" : "pending"}
                detail={serving ? (d.direct ? "direct endpoint (router bypassed)" : "published in the router snapshot") : "not in the router snapshot"}
                error={null}
              />
            </ul>
          </section>
          <Charts id={id} serving={serving} ended={ended} direct={d.direct} createdAt={d.createdAt} endAtMs={chartsEndMs} />
        </div>
        <Timeline events={d.events} live={MOVING.includes(d.status)} />
      </div>
    </>
  );
}

interface EndedDeployment {
  status: string;
  destroyedAt: Date | null;
  updatedAt: Date;
  destroyRequestedBy: string | null;
  failureStep: string | null;
  events: Array<{ status: string; at: Date }>;
}

/** What happened to a deployment that will not serve again, in place of its endpoint and cost estimate. */
function EndedSummary({ d }: { d: EndedDeployment }) {
  const by = d.destroyRequestedBy ? ` by ${d.destroyRequestedBy}` : "";
  let text: string;
  switch (d.status) {
    case "destroyed":
      text = `Destroyed ${formatDate(d.destroyedAt ?? d.updatedAt)}${by}. It no longer serves requests; its timeline, traffic and cost so far stay below.`;
      break;
    case "destroying":
      text = `Being destroyed${d.destroyRequestedBy ? `, requested${by}` : ""}. It no longer serves requests.`;
      break;
    case "failed": {
      const failedAt = [...d.events].reverse().find((e) => e.status === "failed")?.at ?? d.updatedAt;
      text = `Failed ${formatDate(failedAt)}${d.failureStep ? ` at step ${d.failureStep}` : ""}. It does not serve requests; destroy it to remove whatever it left behind.`;
      break;
    }
    case "rejected":
      text = "This request was rejected: it never ran.";
      break;
    default:
      text = "This request expired before it was approved: it never ran.";
  }
  return (
    <div className="mb-4 rounded-md bg-gray-50 p-4 text-sm text-gray-800 ring-1 ring-gray-200" role="status" data-testid="ended-summary">
      {text}
    </div>
  );
}

const LINE_TONE: Record<RouterLine["tone"], string> = {
  red: "font-medium text-red-700",
  amber: "font-medium text-amber-800",
  green: "text-green-700",
  gray: "text-gray-600",
};

/** The routers' word on a backend, in words (the colour only repeats them); announced when it changes. */
function RouterViewLine({ line, testId }: { line: RouterLine; testId: string }) {
  return (
    <span className="mt-1 block" role="status">
      <span className={LINE_TONE[line.tone]} data-testid={testId}>{line.text}</span>
      {line.contradictsProvider ? (
        <span className="block text-xs text-gray-500" data-testid={`${testId}-note`}>
          Routers notice a failing backend within seconds; the provider status above is checked every few minutes.
        </span>
      ) : null}
    </span>
  );
}

function ComponentRow({ name, status, detail, error, testId }: { name: string; status: string; detail: ReactNode; error: string | null; testId: string }) {
  return (
    <li className="flex flex-wrap items-start justify-between gap-2 py-2" data-testid={testId}>
      <div>
        <p className="font-medium text-gray-900">{name}</p>
        <p className="text-gray-600">{detail}</p>
        {error ? <p className="text-red-700">{error}</p> : null}
      </div>
      <StatusBadge status={status} testId={`${testId}-status`} />
    </li>
  );
}

function Endpoint({ routerUrl, directUrl, model, serving }: { routerUrl: string; directUrl: string | null; model: string; serving: boolean }) {
  const base = `${directUrl ?? routerUrl}/v1`;
  const [tab, setTab] = useState<"curl" | "python" | "node">("curl");
  const snippets = {
    curl: `curl ${base}/chat/completions \\
  -H "Authorization: Bearer $TUNA_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
    python: `import os
from openai import OpenAI

client = OpenAI(base_url="${base}", api_key=os.environ["TUNA_API_KEY"])
reply = client.chat.completions.create(
    model="${model}",
    messages=[{"role": "user", "content": "Hello!"}],
)
print(reply.choices[0].message.content)`,
    node: `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${base}", apiKey: process.env.TUNA_API_KEY });
const reply = await client.chat.completions.create({
  model: "${model}",
  messages: [{ role: "user", content: "Hello!" }],
});
console.log(reply.choices[0].message.content);`,
  };
  return (
    <section className="card" aria-labelledby="endpoint-heading">
      <h2 id="endpoint-heading" className="text-base font-semibold text-gray-900">Endpoint</h2>
      <div className="mt-2 flex flex-wrap items-center gap-2">
        <code className="rounded bg-gray-100 px-2 py-1 text-sm" data-testid="endpoint-url">{base}</code>
        <CopyButton text={base} label="Copy URL" />
        <span className="text-sm text-gray-600">model <code>{model}</code></span>
        {!serving ? <Badge tone="amber">not serving yet</Badge> : null}
      </div>
      <p className="mt-2 text-xs text-gray-500">Authenticate with a team <Link className="text-blue-600 hover:underline" href="/api-keys">API key</Link>{directUrl ? "; this serverless-only deployment is reached directly, without the router’s limits." : "."}</p>
      <div role="tablist" aria-label="Client snippets" className="mt-3 flex gap-1">
        {(["curl", "python", "node"] as const).map((t) => (
          <button key={t} type="button" role="tab" id={`tab-${t}`} aria-selected={tab === t} aria-controls="snippet-panel" onClick={() => setTab(t)} className={`rounded-md px-3 py-1 text-sm ${tab === t ? "bg-gray-900 text-white" : "text-gray-700 hover:bg-gray-100"}`}>
            {t === "curl" ? "curl" : t === "python" ? "openai (Python)" : "openai (Node)"}
          </button>
        ))}
      </div>
      <div id="snippet-panel" role="tabpanel" aria-labelledby={`tab-${tab}`} className="relative mt-2">
        <pre className="overflow-x-auto rounded-md bg-gray-900 p-3 text-xs text-gray-100" data-testid={`snippet-${tab}`}>{snippets[tab]}</pre>
        <div className="absolute right-2 top-2"><CopyButton text={snippets[tab]} /></div>
      </div>
    </section>
  );
}

interface TimelineEvent {
  id: string;
  step: string;
  status: string;
  message: string | null;
  at: Date;
}

function Timeline({ events, live }: { events: TimelineEvent[]; live: boolean }) {
  return (
    <section className="card self-start" aria-labelledby="timeline-heading">
      <h2 id="timeline-heading" className="mb-3 flex items-center gap-2 text-base font-semibold text-gray-900">
        Timeline {live ? <span className="inline-flex items-center gap-1 text-xs font-normal text-blue-700"><span className="h-2 w-2 animate-pulse rounded-full bg-blue-600" /> live</span> : null}
      </h2>
      {events.length === 0 ? <Empty title="No steps yet" /> : (
        <ol className="relative space-y-3 border-l border-gray-200 pl-4 text-sm" data-testid="timeline" aria-live={live ? "polite" : "off"}>
          {events.map((e) => (
            <li key={e.id} data-testid="timeline-step">
              <span className={`absolute -left-1.5 mt-1.5 h-3 w-3 rounded-full ring-2 ring-white ${/fail|error/.test(e.status) ? "bg-red-500" : /ok|ready|done|destroyed|approved/.test(e.status) ? "bg-green-500" : "bg-blue-400"}`} aria-hidden />
              <p className="font-medium text-gray-900"><code>{e.step}</code> <StatusBadge status={e.status} /></p>
              {e.message ? <p className="text-gray-600">{e.message}</p> : null}
              <p className="text-xs text-gray-400">{new Date(e.at).toLocaleTimeString()}</p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function Charts({ id, serving, ended, direct, createdAt, endAtMs }: { id: string; serving: boolean; ended: boolean; direct: boolean; createdAt: Date; endAtMs: number | null }) {
  const trpc = useTRPC();
  const [query, setQuery] = useQueryState(CHART_QUERY);
  const range = RANGES.find((r) => r.id === query.range)?.ms ?? (ended ? LIFETIME : RANGES[0].ms);
  // Re-anchored on every refetch so "the last N minutes" keeps moving.
  const [tick, setTick] = useState(0);
  const span = useMemo(() => {
    void tick;
    const now = Date.now();
    const to = new Date(endAtMs !== null ? Math.min(now, endAtMs + 60_000) : now);
    const from = new Date(Math.max(to.getTime() - Math.min(range, MAX_RANGE_MS), new Date(createdAt).getTime() - 60_000));
    return { from, to: new Date(Math.max(to.getTime(), from.getTime() + 60_000)) };
  }, [range, createdAt, endAtMs, tick]);
  const series = useQuery({
    ...trpc.usage.deploymentSeries.queryOptions({ deploymentId: id, from: span.from, to: span.to }),
    placeholderData: keepPreviousData,
  });
  useEffect(() => {
    if (!serving) return;
    const t = setInterval(() => setTick((n) => n + 1), 5000);
    return () => clearInterval(t);
  }, [serving]);
  const points = (series.data?.points ?? []) as SeriesPointView[];
  const total = points.reduce((s, p) => s + p.requests, 0);
  const summary = series.data?.summary;
  return (
    <section className="space-y-3" aria-labelledby="charts-heading">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="charts-heading" className="text-base font-semibold text-gray-900">Traffic and cost</h2>
        <div role="group" aria-label="Time range" className="flex gap-1">
          {RANGES.map((r) => (
            <button key={r.label} type="button" aria-pressed={range === r.ms} onClick={() => setQuery({ range: r.id }, { replace: true })} className={`rounded-md px-2 py-1 text-xs ${range === r.ms ? "bg-blue-50 font-medium text-blue-700 ring-1 ring-blue-200" : "text-gray-700 hover:bg-gray-100"}`}>
              {r.label}
            </button>
          ))}
        </div>
      </div>
      {direct ? (
        // Requests to a direct endpoint never pass a router, so nothing here can count them: say so, not "$0".
        <p className="rounded-md border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-900" data-testid="direct-not-metered">
          Requests sent to its direct URL go straight to the provider, not through the router: they, their tokens and
          the serverless time they use are not recorded here, and API-key limits and budget blocks do not apply to them.
          Below are only the requests that came through the router and the workers kept up without requests (minimum
          workers); the provider&apos;s billing has the rest.
        </p>
      ) : null}
      {series.isPending ? <Loading /> : series.error ? <ErrorBox message={errorMessage(series.error)} onRetry={() => series.refetch()} /> : total === 0 && (ended || direct) ? (
        <>
          {/* An idle spot replica or a warm worker still costs: an ended or direct deployment shows what it cost even without recorded traffic. */}
          <div className="grid gap-3 sm:grid-cols-4" data-testid="usage-summary">
            <Stat label="Requests" value={direct ? "none via the router" : "0"} testId="stat-requests" />
            <Stat label="Cost" value={formatUsd(summary?.actual.total ?? null)} testId="stat-cost" />
          </div>
          {direct ? null : <div data-testid="no-traffic"><Empty title="No traffic recorded">No requests reached it in this range.</Empty></div>}
        </>
      ) : total === 0 ? (
        <div data-testid="no-traffic"><Empty title="No traffic yet">Requests sent through the router show up here within a few seconds.</Empty></div>
      ) : (
        <>
          <div className="grid gap-3 sm:grid-cols-4" data-testid="usage-summary">
            <Stat label="Requests" value={String(summary?.usage.requests ?? total)} testId="stat-requests" />
            <Stat label="Cost" value={formatUsd(summary?.actual.total ?? null)} testId="stat-cost" />
            <Stat label="All-serverless would cost" value={formatUsd(summary?.counterfactual.allServerless ?? null)} />
            {summary?.savings?.vsServerless != null && summary.savings.vsServerless < 0 ? (
              // Spot kept warm for little traffic can cost more than serverless would have: say so plainly.
              <Stat label="More than all-serverless" value={formatUsd(-summary.savings.vsServerless)} />
            ) : (
              <Stat label="Saved" value={summary?.savings?.vsServerless != null ? `${formatUsd(summary.savings.vsServerless)}${summary.savings.vsServerlessPct != null ? ` (${summary.savings.vsServerlessPct}%)` : ""}` : "—"} />
            )}
          </div>
          {summary?.explanation.length ? (
            <details className="rounded-md border border-gray-200 bg-white px-3 py-2 text-sm" data-testid="cost-explanation">
              <summary className="cursor-pointer text-gray-700">How this cost is computed</summary>
              <ul className="mt-2 list-disc space-y-1 pl-5 text-gray-600">
                {summary.explanation.map((line) => (
                  <li key={line}>{line}</li>
                ))}
              </ul>
            </details>
          ) : null}
          <UsageCharts points={points} bucketMs={series.data.bucketMs} />
        </>
      )}
    </section>
  );
}

function Stat({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <div className="rounded-lg bg-white p-3 shadow-sm ring-1 ring-gray-200">
      <p className="text-xs text-gray-500">{label}</p>
      <p className="text-lg font-semibold tabular-nums" data-testid={testId}>{value}</p>
    </div>
  );
}
