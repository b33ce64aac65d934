"use client";

import { AreaChart, BarChart, Card, LineChart, Title } from "@tremor/react";
import type { ReactNode } from "react";
import { formatUsd } from "./format";

/** One point of `usage.deploymentSeries` (the fields the charts read). */
export interface SeriesPointView {
  t: string;
  requests: number;
  rps: number;
  errorRate: number | null;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  ttftMs: { p50: number | null; p95: number | null; p99: number | null };
  backends: { serverless: number; spot: number };
  cost: { total: number | null };
  counterfactual: { allServerless: number | null; allOnDemand: number | null };
  savings: { vsServerless: number | null; vsOnDemand: number | null } | null;
}

const ms = (v: number) => `${Math.round(v)} ms`;
const usd = (v: number) => formatUsd(Math.round(v * 1_000_000));

function label(t: string, bucketMs: number): string {
  const d = new Date(t);
  return bucketMs >= 86_400_000 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function ChartCard({ title, testId, children }: { title: string; testId: string; children: ReactNode }) {
  return (
    <Card data-testid={testId} className="p-4">
      <Title className="text-sm">{title}</Title>
      {children}
    </Card>
  );
}

/**
 * Requests per second, latency and TTFT quantiles, error rate, backend split and cost/savings over time.
 * Nulls (a bucket without requests has no latency) stay gaps; money is micro-dollars turned into USD here.
 */
export function UsageCharts({ points, bucketMs }: { points: SeriesPointView[]; bucketMs: number }) {
  const data = points.map((p) => ({
    time: label(p.t, bucketMs),
    "Requests/s": p.rps,
    p50: p.latencyMs.p50,
    p95: p.latencyMs.p95,
    p99: p.latencyMs.p99,
    "TTFT p50": p.ttftMs.p50,
    "TTFT p95": p.ttftMs.p95,
    "TTFT p99": p.ttftMs.p99,
    "Error rate %": p.errorRate === null ? null : Math.round(p.errorRate * 10_000) / 100,
    Serverless: p.backends.serverless,
    Spot: p.backends.spot,
    Cost: p.cost.total === null ? null : p.cost.total / 1_000_000,
    "All-serverless cost": p.counterfactual.allServerless === null ? null : p.counterfactual.allServerless / 1_000_000,
    Savings: p.savings?.vsServerless == null ? null : p.savings.vsServerless / 1_000_000,
  }));
  const common = { data, index: "time", className: "mt-2 h-48", showAnimation: false, yAxisWidth: 72 } as const;
  // A line needs two points: with traffic in a single bucket, quantiles read better as bars.
  const withLatency = points.filter((p) => p.latencyMs.p50 !== null).length;
  const QuantileChart = withLatency < 2 ? BarChart : LineChart;
  const RateChart = withLatency < 2 ? BarChart : AreaChart;
  return (
    <div className="grid gap-4 md:grid-cols-2" data-testid="usage-charts">
      <ChartCard title="Requests per second" testId="chart-rps">
        <AreaChart {...common} categories={["Requests/s"]} colors={["blue"]} valueFormatter={(v) => v.toFixed(2)} />
      </ChartCard>
      <ChartCard title="Latency (p50 / p95 / p99)" testId="chart-latency">
        <QuantileChart {...common} categories={["p50", "p95", "p99"]} colors={["emerald", "amber", "rose"]} valueFormatter={ms} />
      </ChartCard>
      <ChartCard title="Time to first token (p50 / p95 / p99)" testId="chart-ttft">
        <QuantileChart {...common} categories={["TTFT p50", "TTFT p95", "TTFT p99"]} colors={["emerald", "amber", "rose"]} valueFormatter={ms} />
      </ChartCard>
      <ChartCard title="Error rate" testId="chart-errors">
        <RateChart {...common} categories={["Error rate %"]} colors={["rose"]} valueFormatter={(v) => `${v.toFixed(2)}%`} />
      </ChartCard>
      <ChartCard title="Backend split (requests)" testId="chart-backends">
        <BarChart {...common} categories={["Serverless", "Spot"]} colors={["violet", "cyan"]} stack valueFormatter={(v) => String(Math.round(v))} />
      </ChartCard>
      <ChartCard title="Cost and savings vs all-serverless" testId="chart-cost">
        <AreaChart {...common} categories={["Cost", "All-serverless cost", "Savings"]} colors={["blue", "gray", "emerald"]} valueFormatter={usd} />
      </ChartCard>
    </div>
  );
}
