import { auditRouter, authRouter, inviteRouter, meRouter, teamRouter } from "./routers/core";
import { vaultRouter } from "./routers/vault";
import { createCallerFactory, router } from "./init";

export const appRouter = router({
  auth: authRouter,
  me: meRouter,
  invite: inviteRouter,
  team: teamRouter,
  audit: auditRouter,
  vault: vaultRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
