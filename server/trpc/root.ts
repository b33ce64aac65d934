import { auditRouter, authRouter, inviteRouter, meRouter, teamRouter } from "./routers/core";
import { vaultRouter } from "./routers/vault";
import { apiKeysRouter } from "./routers/apikeys";
import { approvalsRouter } from "./routers/approvals";
import { policyRouter } from "./routers/policy";
import { alertsRouter } from "./routers/alerts";
import { usageRouter } from "./routers/usage";
import { catalogRouter } from "./routers/catalog";
import { deploymentsRouter } from "./routers/deployments";
import { createCallerFactory, router } from "./init";

export const appRouter = router({
  auth: authRouter,
  me: meRouter,
  invite: inviteRouter,
  team: teamRouter,
  audit: auditRouter,
  deployments: deploymentsRouter,
  usage: usageRouter,
  vault: vaultRouter,
  apiKeys: apiKeysRouter,
  approvals: approvalsRouter,
  policy: policyRouter,
  alerts: alertsRouter,
  catalog: catalogRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
