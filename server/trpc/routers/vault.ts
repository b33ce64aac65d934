import { z } from "zod";
import * as vault from "../../vault";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);
/** Large enough for a service-account JSON file; the value is never echoed back. */
const valueSchema = z.string().min(1).max(20_000);

export const vaultRouter = router({
  kinds: teamProcedure("vault.read-metadata").query(() =>
    vault.SECRET_KINDS.map((kind) => ({ kind, displayName: vault.KIND_SPECS[kind].displayName, format: vault.KIND_SPECS[kind].format })),
  ),
  list: teamProcedure("vault.read-metadata").query(({ ctx }) => vault.listSecrets(ctx.teamId)),
  create: teamProcedure("vault.write")
    .input(z.object({ kind: z.enum(vault.SECRET_KINDS), label: z.string().trim().min(1).max(80), value: valueSchema }))
    .mutation(({ ctx, input }) => vault.createSecret(ctx.teamId, ctx.actor, input)),
  rotate: teamProcedure("vault.write")
    .input(z.object({ secretId: idSchema, value: valueSchema }))
    .mutation(({ ctx, input }) => vault.rotateSecret(ctx.teamId, ctx.actor, input.secretId, input.value)),
  delete: teamProcedure("vault.write")
    .input(z.object({ secretId: idSchema }))
    .mutation(({ ctx, input }) => vault.deleteSecret(ctx.teamId, ctx.actor, input.secretId)),
  test: teamProcedure("vault.write")
    .input(z.object({ secretId: idSchema }))
    .mutation(async ({ ctx, input }) => {
      const r = await vault.testSecret(ctx.teamId, ctx.actor, input.secretId);
      return { outcome: r.outcome, ok: r.ok, message: r.message, findings: r.findings };
    }),
});
