-- A router's last sign of life (its last report, else its last backend event) ends its view of the spot
-- backends when it stops reporting. Read once per cost computation for the routers involved.
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

-- CreateIndex
CREATE INDEX "UsageBatch_routerId_receivedAt_idx" ON "UsageBatch"("routerId", "receivedAt");

-- CreateIndex
CREATE INDEX "UsageBackendEvent_routerId_at_idx" ON "UsageBackendEvent"("routerId", "at");
