-- The routers' latest word on each backend of a deployment (the dashboard's router view, polled while a
-- deployment page or list is open) is read by a skip scan over this index: one probe per deployment, router
-- and backend, whatever the length of the history kept (400 days of state changes).
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

-- CreateIndex
CREATE INDEX "UsageBackendEvent_deploymentId_routerId_backendId_at_id_idx" ON "UsageBackendEvent"("deploymentId", "routerId", "backendId", "at" DESC, "id" DESC);
