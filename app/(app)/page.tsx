"use client";

import Link from "next/link";
import { useQuery } from "@tanstack/react-query";
import { Card, Metric, Text } from "@tremor/react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { StatusBadge } from "@/app/_components/controls";
import { formatDate, formatUsd } from "@/app/_components/format";
import { BudgetBlockedBanner } from "./BudgetBlockedBanner";

export default function OverviewPage() {
  const trpc = useTRPC();
  const team = useQuery(trpc.team.get.queryOptions());
  const members = useQuery(trpc.team.members.queryOptions());
  const overview = useQuery(trpc.usage.teamOverview.queryOptions());
  if (team.isPending) return <Loading />;
  if (team.error) return <ErrorBox message={errorMessage(team.error)} onRetry={() => team.refetch()} />;
  const can = (p: string) => (team.data.permissions as string[]).includes(p);
  return (
    <>
      <PageHeader title={team.data.name} description={`You are ${team.data.role} of this team.`} />
      {overview.data ? <BudgetBlockedBanner blocks={overview.data.budgetBlocks} /> : null}
      {overview.data && overview.data.unpricedDeployments.length > 0 ? (
        <div className="mb-4">
          <Notice tone="warning">
            <span data-testid="unpriced-notice">
              {overview.data.unpricedDeployments.length === 1 ? "One deployment has" : `${overview.data.unpricedDeployments.length} deployments have`} a part with
              no known price (its GPU on that provider or cloud), so this month's spend and budgets count only the part that has one:{" "}
              {overview.data.unpricedDeployments.map((d, i) => (
                <span key={d.id}>
                  {i > 0 ? ", " : ""}
                  <Link className="underline" href={`/deployments/${d.id}`}>{d.slug}</Link>
                </span>
              ))}
              .
            </span>
          </Notice>
        </div>
      ) : null}
      <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-4">
        <Card>
          <Text>Spend this month</Text>
          <Metric data-testid="spend-month">{overview.data ? formatUsd(overview.data.spendMicros) : "–"}</Metric>
        </Card>
        <SavingsCard saving={overview.data?.savings?.vsServerless ?? null} pct={overview.data?.savings?.vsServerlessPct ?? null} />
        <Card>
          <Text>Requests this month</Text>
          <Metric>{overview.data ? overview.data.requests.toLocaleString() : "–"}</Metric>
        </Card>
        <Card>
          <Text>Members</Text>
          <Metric data-testid="member-count">{members.data?.length ?? "–"}</Metric>
        </Card>
      </div>
      <section className="card mt-6" aria-labelledby="top-heading">
        <h2 id="top-heading" className="mb-2 font-medium text-gray-900">Top deployments by spend this month</h2>
        {overview.isPending ? <Loading /> : overview.error ? <ErrorBox message={errorMessage(overview.error)} onRetry={() => overview.refetch()} /> : overview.data.topDeployments.length === 0 ? (
          <Empty title="No spend yet this month" />
        ) : (
          <ul className="divide-y text-sm">
            {overview.data.topDeployments.map((d) => (
              <li key={d.deploymentId} className="flex flex-wrap items-center justify-between gap-2 py-1.5" data-testid={`top-deployment-${d.deploymentId}`}>
                <span className="flex flex-wrap items-center gap-2">
                  <Link className="text-blue-700 hover:underline" href={`/deployments/${d.deploymentId}`}>{d.slug}</Link>
                  {d.status ? <StatusBadge status={d.status} testId="top-deployment-status" /> : null}
                  <span className="text-xs text-gray-500">{d.destroyedAt ? `destroyed ${formatDate(d.destroyedAt)}` : `created ${formatDate(d.createdAt)}`}</span>
                </span>
                <span className="tabular-nums text-gray-700">{formatUsd(d.spendMicros)} · {d.requests.toLocaleString()} requests</span>
              </li>
            ))}
          </ul>
        )}
      </section>
      <div className="card mt-6 text-sm text-gray-700">
        <h2 className="mb-2 font-medium text-gray-900">Next steps</h2>
        <ul className="list-inside list-disc space-y-1">
          {can("deployment.create") ? <li><Link className="text-blue-600 hover:underline" href="/deployments/new">Deploy a model</Link> on serverless and spot GPUs behind one endpoint.</li> : null}
          {can("vault.write") ? <li>Add provider keys to the <Link className="text-blue-600 hover:underline" href="/vault">vault</Link>.</li> : null}
          <li>Compare GPU prices in the <Link className="text-blue-600 hover:underline" href="/catalog">GPU catalog</Link>.</li>
          <li><Link className="text-blue-600 hover:underline" href="/members">Invite your team</Link> and give each person a role.</li>
          {can("audit.read") ? <li>Every change is recorded in the <Link className="text-blue-600 hover:underline" href="/audit">audit log</Link>.</li> : null}
        </ul>
      </div>
    </>
  );
}

/** Savings against all-serverless; a negative saving (spot kept warm for little traffic) is said plainly, as on a deployment's page. */
function SavingsCard({ saving, pct }: { saving: number | null; pct: number | null }) {
  if (saving !== null && saving < 0) {
    return (
      <Card>
        <Text>More than all-serverless</Text>
        <Metric data-testid="savings-month">{formatUsd(-saving)}</Metric>
        {pct !== null ? <Text>{-pct}% more</Text> : null}
      </Card>
    );
  }
  return (
    <Card>
      <Text>Saved vs all-serverless</Text>
      <Metric data-testid="savings-month">{saving !== null ? formatUsd(saving) : "–"}</Metric>
      {pct !== null ? <Text>{pct}% less</Text> : null}
    </Card>
  );
}
