/** Test helpers of the usage domain: deployments, keys and router reports shaped like production ones. */
import { randomBytes, randomUUID } from "node:crypto";
import type { DeploymentMode, Prisma } from "@prisma/client";
import { db } from "../db";
import { CANONICAL_BOUNDS_MS } from "./histogram";
import type { UsageReport } from "./ingest";
import { usdToMicros } from "../catalog/money";
import { localCatalog } from "../catalog/providers/local";

/** What the local simulator's L4 bills per GPU-hour (µ$): tests derive their amounts from it, not a copy. */
export const LOCAL_L4_MICROS_PER_HOUR = usdToMicros(localCatalog.offers.find((o) => o.gpu === "L4")?.pricePerGpuHourUsd ?? Number.NaN);

export async function makeDeployment(
  teamId: string,
  createdById: string,
  over: Partial<{ slug: string; mode: DeploymentMode; serverlessProvider: string | null; serverlessGpu: string | null; spotGpu: string | null; spotClouds: string[]; createdAt: Date; spec: Prisma.InputJsonValue }> = {},
) {
  return db.deployment.create({
    data: {
      teamId,
      createdById,
      slug: over.slug ?? `dep-${randomBytes(3).toString("hex")}`,
      model: "Qwen/Qwen3-0.6B",
      servedModelName: "qwen-small",
      mode: over.mode ?? "hybrid",
      status: "active",
      serverlessProvider: over.serverlessProvider === undefined ? "local" : over.serverlessProvider,
      serverlessGpu: over.serverlessGpu === undefined ? "L4" : over.serverlessGpu,
      spotGpu: over.spotGpu === undefined ? "L4" : over.spotGpu,
      spotClouds: over.spotClouds ?? ["aws"],
      spec: over.spec ?? { serverlessScaling: { minWorkers: 0, maxWorkers: 2, concurrency: 32, idleTimeoutS: 60, coldStartTimeoutS: 600 } },
      createdAt: over.createdAt ?? new Date("2026-11-01T00:00:00Z"),
      activatedAt: over.createdAt ?? new Date("2026-11-01T00:00:00Z"),
    },
  });
}

export async function makeApiKey(teamId: string, createdById: string, label = "ci-bot") {
  return db.apiKey.create({
    data: { teamId, createdById, label, prefix: "tuna_sk_test", hash: randomBytes(32).toString("hex") },
  });
}

/** A histogram with `n` samples in the bucket whose bound is `ms`. */
export function hist(samples: Array<[ms: number, n: number]>) {
  const counts = new Array(CANONICAL_BOUNDS_MS.length + 1).fill(0);
  for (const [ms, n] of samples) {
    let i = 0;
    while (i < CANONICAL_BOUNDS_MS.length && ms > CANONICAL_BOUNDS_MS[i]) i++;
    counts[i] += n;
  }
  return { bounds: [...CANONICAL_BOUNDS_MS], counts };
}

export interface EntryOpts {
  keyId: string;
  deploymentId: string;
  backendId?: string;
  backendKind?: "serverless" | "spot";
  requests?: number;
  errors?: number;
  inputTokens?: number;
  outputTokens?: number;
  busyMs?: number;
  latencyMs?: number;
}

export function makeReport(at: Date, entries: EntryOpts[], events: UsageReport["events"] = [], routerId = "router-a"): UsageReport {
  return {
    routerId,
    batchId: randomUUID(),
    periodStart: at.toISOString(),
    periodEnd: new Date(at.getTime() + 5000).toISOString(),
    configVersion: 1,
    entries: entries.map((e) => {
      const requests = e.requests ?? 1;
      const kind = e.backendKind ?? "serverless";
      return {
        keyId: e.keyId,
        deploymentId: e.deploymentId,
        backendId: e.backendId ?? kind,
        backendKind: kind,
        requests,
        errors: e.errors ?? 0,
        inputTokens: e.inputTokens ?? requests * 100,
        outputTokens: e.outputTokens ?? requests * 50,
        latencyMs: hist([[e.latencyMs ?? 800, requests]]),
        ttftMs: hist([[(e.latencyMs ?? 800) / 4, requests]]),
        busyMs: e.busyMs ?? requests * (e.latencyMs ?? 800),
      };
    }),
    events,
  };
}
