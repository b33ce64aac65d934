"use client";

import Link from "next/link";
import { useQuery } from "@tanstack/react-query";
import { Card, Metric, Text } from "@tremor/react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { ErrorBox, Loading, PageHeader } from "@/app/_components/ui";

export default function OverviewPage() {
  const trpc = useTRPC();
  const team = useQuery(trpc.team.get.queryOptions());
  const members = useQuery(trpc.team.members.queryOptions());
  if (team.isPending) return <Loading />;
  if (team.error) return <ErrorBox message={errorMessage(team.error)} onRetry={() => team.refetch()} />;
  return (
    <>
      <PageHeader title={team.data.name} description={`You are ${team.data.role} of this team.`} />
      <div className="grid gap-4 sm:grid-cols-3">
        <Card>
          <Text>Members</Text>
          <Metric data-testid="member-count">{members.data?.length ?? "–"}</Metric>
        </Card>
        <Card>
          <Text>Your role</Text>
          <Metric className="capitalize">{team.data.role}</Metric>
        </Card>
        <Card>
          <Text>Permissions</Text>
          <Metric>{team.data.permissions.length}</Metric>
        </Card>
      </div>
      <div className="card mt-6 text-sm text-gray-700">
        <h2 className="mb-2 font-medium text-gray-900">Next steps</h2>
        <ul className="list-inside list-disc space-y-1">
          <li><Link className="text-blue-600 hover:underline" href="/members">Invite your team</Link> and give each person a role.</li>
          {team.data.permissions.includes("audit.read") ? <li>Every change is recorded in the <Link className="text-blue-600 hover:underline" href="/audit">audit log</Link>.</li> : null}
        </ul>
      </div>
    </>
  );
}
