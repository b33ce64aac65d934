import { z } from "zod";
import * as apikeys from "../../apikeys";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);
const limit = z.number().int().positive().max(100_000_000).nullable().optional();
const scope = z.union([z.literal("*"), z.array(idSchema).max(200)]);

export const apiKeysRouter = router({
  list: teamProcedure("apikey.read").query(({ ctx }) => apikeys.listApiKeys(ctx.teamId)),
  /** The only response that ever contains the key. */
  create: teamProcedure("apikey.manage")
    .input(
      z.object({
        label: z.string().trim().min(1).max(80),
        deployments: scope.default("*"),
        rpm: limit,
        tpm: limit,
        maxConcurrent: limit,
        expiresAt: z.date().nullable().optional(),
      }),
    )
    .mutation(({ ctx, input }) => apikeys.createApiKey(ctx.teamId, ctx.actor, input)),
  update: teamProcedure("apikey.manage")
    .input(
      z.object({
        keyId: idSchema,
        label: z.string().trim().min(1).max(80).optional(),
        deployments: scope.optional(),
        rpm: limit,
        tpm: limit,
        maxConcurrent: limit,
        expiresAt: z.date().nullable().optional(),
      }),
    )
    .mutation(({ ctx, input: { keyId, ...patch } }) => apikeys.updateApiKey(ctx.teamId, ctx.actor, keyId, patch)),
  revoke: teamProcedure("apikey.manage")
    .input(z.object({ keyId: idSchema }))
    .mutation(({ ctx, input }) => apikeys.revokeApiKey(ctx.teamId, ctx.actor, input.keyId)),
});
