import { usdToMicros } from "@/app/_components/format";

/**
 * The budget field as micro-dollars: undefined when empty, an error when it is not an amount the API
 * takes (a positive number of micro-dollars). Checked before anything is created, because the budget is
 * set only after the deployment exists. `badInput` is the number input's validity.badInput: what the
 * browser could not read as a number ("-", "1e") reaches the page as "", which is not "no budget".
 */
export function budgetMicrosOf(budgetUsd: string, badInput = false): { micros?: number; error?: string } {
  const text = budgetUsd.trim();
  if (text === "" && !badInput) return {};
  const usd = Number(text);
  const micros = Number.isFinite(usd) ? usdToMicros(usd) : Number.NaN;
  if (!Number.isSafeInteger(micros) || micros <= 0 || usd < 0.01) {
    return { error: "Enter a monthly budget of at least $0.01, or leave it empty for no budget." };
  }
  return { micros };
}
