import { cron } from "inngest";
import { inngest } from "../workflows/client";
import { expireApprovals } from "./index";

/** Marks pending approval requests past their expiry as expired (audited); the deploy workflow's own timeout closes the deployment. */
export const expireApprovalsFunction = inngest.createFunction(
  { id: "expire-approvals", name: "Expire approval requests", triggers: [cron("*/5 * * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => step.run("expire", async () => ({ expired: await expireApprovals(new Date()) })),
);
