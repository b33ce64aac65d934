-- When a component's upstream auth headers were minted (NULL: none were), so the refresh-upstream-headers
-- cron can re-mint expiring ones (Cloud Run ID tokens live one hour). DeploymentComponent."updatedAt" cannot
-- serve: every reconcile status check moves it.
ALTER TABLE "DeploymentComponent" ADD COLUMN "upstreamHeadersAt" TIMESTAMP(3);

-- Components deployed before this column: their headers are at least as old as the row, so those of
-- providers that refresh are due at once (a refresh that finds no headers to mint sets NULL again).
UPDATE "DeploymentComponent" SET "upstreamHeadersAt" = "createdAt"
WHERE "upstreamHeadersCipher" IS NOT NULL AND "upstreamHeadersCipher" <> 'null'::jsonb;
