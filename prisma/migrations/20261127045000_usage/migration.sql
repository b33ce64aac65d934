-- Usage ingest: raw backend state events (spot ready intervals) and indexes for retention pruning.

CREATE TABLE "UsageBackendEvent" (
    "id" BIGSERIAL NOT NULL,
    "batchId" TEXT NOT NULL,
    "routerId" TEXT NOT NULL,
    "deploymentId" TEXT NOT NULL,
    "backendId" TEXT NOT NULL,
    "backendKind" TEXT,
    "state" TEXT NOT NULL,
    "replicas" INTEGER NOT NULL DEFAULT 1,
    "at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "UsageBackendEvent_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "UsageBackendEvent_deploymentId_at_idx" ON "UsageBackendEvent"("deploymentId", "at");

CREATE INDEX "UsageBackendEvent_at_idx" ON "UsageBackendEvent"("at");

CREATE INDEX "UsageBatch_receivedAt_idx" ON "UsageBatch"("receivedAt");

-- Rollup rows are updated in place many times a minute: leave room on each page so PostgreSQL can do
-- heap-only (HOT) updates, which skip touching the three indexes. Pruning by bucket uses the unique index.
ALTER TABLE "UsageRollup" SET (fillfactor = 60);
