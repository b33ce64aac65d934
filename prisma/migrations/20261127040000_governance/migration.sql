-- Alerts: keep the queued alert with its delivery row, so retries and the delivery history need no other store.

ALTER TABLE "AlertDelivery" ADD COLUMN "payload" JSONB;
