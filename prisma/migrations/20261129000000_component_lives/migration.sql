-- When a component's provider resource existed, for cost. DeploymentComponent."updatedAt" cannot end its live
-- time: every later write moves it (a destroy after reconcile saw it gone billed the whole time in between).
-- "startedAt"/"endedAt" hold the current life ("endedAt" set once: first seen gone, or destroyed). A relaunch
-- reuses the row, so the lives before it are kept in "DeploymentComponentLife".
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)
ALTER TABLE "DeploymentComponent" ADD COLUMN "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN "endedAt" TIMESTAMP(3);

-- Components made before these columns: alive since they were created, and an ended one ended at its last write,
-- the best there is (what cost used until now). A relaunched one has no record of its gap, billed as before.
UPDATE "DeploymentComponent" SET "startedAt" = "createdAt";
UPDATE "DeploymentComponent" SET "endedAt" = "updatedAt" WHERE "status" IN ('destroyed', 'gone');

-- CreateTable
CREATE TABLE "DeploymentComponentLife" (
    "id" TEXT NOT NULL,
    "componentId" TEXT NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "endedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "DeploymentComponentLife_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "DeploymentComponentLife_componentId_idx" ON "DeploymentComponentLife"("componentId");

-- AddForeignKey
ALTER TABLE "DeploymentComponentLife" ADD CONSTRAINT "DeploymentComponentLife_componentId_fkey" FOREIGN KEY ("componentId") REFERENCES "DeploymentComponent"("id") ON DELETE CASCADE ON UPDATE CASCADE;
