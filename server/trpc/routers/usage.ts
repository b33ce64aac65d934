import { z } from "zod";
import { BudgetScope } from "@prisma/client";
import * as usage from "../../usage";
import { router, teamProcedure } from "../init";

const idSchema = z.string().min(1).max(64);
const DAY_MS = 86_400_000;
/** The smallest monthly budget, $0.01 in micro-dollars. */
const MIN_BUDGET_MICROS = 10_000;

export const usageRouter = router({
  deploymentSeries: teamProcedure("budget.read")
    .input(
      z
        .object({ deploymentId: idSchema, from: z.date(), to: z.date() })
        .refine((i) => i.to > i.from, { message: "`to` must be after `from`", path: ["to"] })
        .refine((i) => i.to.getTime() - i.from.getTime() <= 400 * DAY_MS, { message: "At most 400 days", path: ["from"] }),
    )
    .query(({ ctx, input }) => usage.deploymentSeries(ctx.teamId, input)),
  teamOverview: teamProcedure("budget.read").query(({ ctx }) => usage.teamOverview(ctx.teamId)),
  budgets: router({
    list: teamProcedure("budget.read").query(({ ctx }) => usage.listBudgets(ctx.teamId)),
    set: teamProcedure("budget.manage")
      .input(
        z.object({
          scope: z.enum(BudgetScope),
          targetId: idSchema.nullish(),
          // At least $0.01 (10,000 micro-dollars): a smaller limit is a typo, not a budget (New deployment refuses it too).
          monthlyLimitMicros: z.number().int().min(MIN_BUDGET_MICROS, "A monthly limit must be at least $0.01.").max(Number.MAX_SAFE_INTEGER),
        }),
      )
      .mutation(({ ctx, input }) => usage.setBudget(ctx.teamId, ctx.actor, input)),
    delete: teamProcedure("budget.manage")
      .input(z.object({ budgetId: idSchema }))
      .mutation(({ ctx, input }) => usage.deleteBudget(ctx.teamId, ctx.actor, input.budgetId)),
  }),
});
