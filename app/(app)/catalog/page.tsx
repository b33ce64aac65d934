"use client";

import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { Empty, ErrorBox, Loading, PageHeader } from "@/app/_components/ui";
import { Badge } from "@/app/_components/controls";
import { formatUsd } from "@/app/_components/format";

export default function CatalogPage() {
  const trpc = useTRPC();
  const table = useQuery(trpc.catalog.table.queryOptions());
  const [filter, setFilter] = useState("");
  const gpus = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return (table.data?.gpus ?? []).filter((g) => !f || g.gpu.toLowerCase().includes(f) || g.arch.includes(f));
  }, [table.data, filter]);

  return (
    <>
      <PageHeader
        title="GPU catalog"
        description="Published serverless prices per GPU-hour for every provider, spot prices per cloud, and how much spot saves. The cheapest serverless offer of each GPU is highlighted."
      />
      {table.isPending ? <Loading /> : table.error ? <ErrorBox message={errorMessage(table.error)} onRetry={() => table.refetch()} /> : (
        <>
          <div className="mb-3 flex flex-wrap items-end gap-4">
            <div className="w-64">
              <label htmlFor="catalog-filter" className="field-label">Filter GPUs</label>
              <input id="catalog-filter" className="field-input" placeholder="H100, ampere…" value={filter} onChange={(e) => setFilter(e.target.value)} />
            </div>
            <ul className="text-xs text-gray-600">
              {table.data.spotSources.map((s) => (
                <li key={s.cloud} title={s.reason}>
                  <span className="font-medium uppercase">{s.cloud}</span> spot: {s.source === "live" ? "live prices from your SkyPilot API server" : `static table${s.asOf ? ` as of ${s.asOf}` : ""}`}
                </li>
              ))}
            </ul>
          </div>
          {gpus.length === 0 ? <Empty title="No GPU matches this filter" /> : (
            <div className="overflow-x-auto rounded-lg bg-white shadow-sm ring-1 ring-gray-200">
              <table className="min-w-full divide-y divide-gray-200 text-sm" data-testid="catalog-table">
                <caption className="sr-only">GPU prices by provider, per GPU-hour</caption>
                <thead className="bg-gray-50">
                  <tr>
                    <th scope="col" className="sticky left-0 bg-gray-50 px-3 py-2 text-left font-medium text-gray-600">GPU</th>
                    {table.data.providers.map((p) => (
                      <th key={p.provider} scope="col" className="px-3 py-2 text-right font-medium text-gray-600" title={`prices as of ${p.pricesAsOf}`}>
                        {p.displayName}
                        {!p.installed ? <span className="block text-[10px] font-normal text-gray-400">not installed</span> : null}
                      </th>
                    ))}
                    {table.data.spotSources.map((s) => (
                      <th key={s.cloud} scope="col" className="px-3 py-2 text-right font-medium text-gray-600">{s.cloud.toUpperCase()} spot</th>
                    ))}
                    <th scope="col" className="px-3 py-2 text-right font-medium text-gray-600">Spot saves</th>
                  </tr>
                </thead>
                <tbody className="divide-y divide-gray-100">
                  {gpus.map((g) => {
                    const cheapestSpot = Math.min(...g.spot.map((s) => s.priceMicros ?? Number.POSITIVE_INFINITY));
                    return (
                      <tr key={g.gpu} data-testid={`catalog-row-${g.gpu}`}>
                        <th scope="row" className="sticky left-0 bg-white px-3 py-2 text-left font-medium text-gray-900">
                          {g.gpu}
                          <span className="block text-xs font-normal text-gray-500">{g.vramGb} GB · {g.arch}</span>
                        </th>
                        {table.data.providers.map((p) => {
                          const o = g.offers.find((x) => x.provider === p.provider);
                          const cheapest = g.cheapest.provider === p.provider;
                          return (
                            <td
                              key={p.provider}
                              className={`whitespace-nowrap px-3 py-2 text-right tabular-nums ${cheapest ? "bg-green-50 font-semibold text-green-800" : "text-gray-800"}`}
                              title={cheapest ? g.cheapest.reason : (o?.note ?? undefined)}
                              data-testid={cheapest ? `cheapest-${g.gpu}` : undefined}
                            >
                              {o ? formatUsd(o.priceMicros) : <span className="text-gray-300">—</span>}
                              {cheapest ? <span className="sr-only"> (cheapest)</span> : null}
                            </td>
                          );
                        })}
                        {g.spot.map((s) => (
                          <td key={s.cloud} className={`whitespace-nowrap px-3 py-2 text-right tabular-nums ${s.priceMicros !== null && s.priceMicros === cheapestSpot ? "font-semibold text-blue-800" : "text-gray-800"}`} title={s.instanceType ? `${s.instanceType} in ${s.region}` : undefined}>
                            {s.priceMicros !== null ? formatUsd(s.priceMicros) : <span className="text-gray-300">—</span>}
                          </td>
                        ))}
                        <td className="whitespace-nowrap px-3 py-2 text-right" data-testid={`savings-${g.gpu}`}>
                          {g.savings.percent !== null ? <Badge tone={g.savings.percent > 0 ? "green" : "amber"}>{g.savings.display}</Badge> : <span className="text-gray-400">n/a</span>}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
          <p className="mt-3 text-xs text-gray-500">
            Prices are USD per GPU-hour as published by each provider; the local simulator is never picked as “cheapest” unless chosen explicitly. Savings compare the cheapest spot price across clouds with the cheapest serverless price.
          </p>
        </>
      )}
    </>
  );
}
