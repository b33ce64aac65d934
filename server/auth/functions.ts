import { cron } from "inngest";
import { inngest } from "../workflows/client";
import { pruneAuth } from "./session-version";

/** Daily: revoked sessions past every copy's lifetime and long-expired reset links are forgotten (server/auth/README.md). */
export const pruneAuthFunction = inngest.createFunction(
  { id: "prune-auth", name: "Prune expired sign-out records and reset links", triggers: [cron("41 3 * * *")], retries: 1, concurrency: [{ limit: 1 }] },
  async ({ step }) => step.run("prune", () => pruneAuth(new Date())),
);
