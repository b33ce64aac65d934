-- Why a router's view of a backend changed ("ejected: 3 consecutive failures (connect)", "idle: no requests
-- for 60 s"), as the router sent it in the backend_state event, cut to 200 characters by the contract.
-- The deployment page shows it next to the state. Null for events of routers that sent none (older versions)
-- and for the history before this column. Adding a nullable column without a default rewrites nothing.
-- (No semicolons in comments: Prisma's JS schema engine splits the script at every one.)

-- AlterTable
ALTER TABLE "UsageBackendEvent" ADD COLUMN "reason" TEXT;
