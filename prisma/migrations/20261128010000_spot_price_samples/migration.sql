-- Live spot prices reported by a team's SkyPilot API server, one row per change of the cheapest price of a
-- GPU on a cloud: cost history prices spot ready time at the price in force then.
CREATE TABLE "SpotPriceSample" (
    "id" BIGSERIAL NOT NULL,
    "teamId" TEXT NOT NULL,
    "cloud" TEXT NOT NULL,
    "gpu" TEXT NOT NULL,
    "pricePerGpuHourMicros" BIGINT NOT NULL,
    "observedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "SpotPriceSample_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "SpotPriceSample_teamId_gpu_observedAt_idx" ON "SpotPriceSample"("teamId", "gpu", "observedAt");

ALTER TABLE "SpotPriceSample" ADD CONSTRAINT "SpotPriceSample_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "Team"("id") ON DELETE CASCADE ON UPDATE CASCADE;
