import Link from "next/link";

/** A budget at 100% this month, as `usage.teamOverview` and `deployments.get` return it. */
export interface BudgetBlockView {
  budgetId: string;
  scope: string;
  /** "team Acme", "deployment qwen-small", "key ci-bot". */
  name: string;
  /** What the router answers with, e.g. "Monthly budget of team Acme ($100.00) reached". */
  message: string;
}

function refused(b: BudgetBlockView): string {
  if (b.scope === "team") return "every request to this team’s deployments";
  if (b.scope === "apikey") return `every request made with ${b.name}`;
  return `every request to ${b.name}`;
}

/**
 * Says plainly that requests are being refused: a blocked team otherwise looks healthy on the dashboard
 * while its clients get 429 insufficient_quota.
 */
export function BudgetBlockedBanner({ blocks }: { blocks: BudgetBlockView[] }) {
  if (blocks.length === 0) return null;
  return (
    <div role="alert" data-testid="budget-blocked" className="mb-4 rounded-md bg-red-50 p-4 text-sm text-red-900 ring-1 ring-red-300">
      <p className="font-semibold">{blocks.length === 1 ? "A monthly budget is used up: requests are refused" : `${blocks.length} monthly budgets are used up: requests are refused`}</p>
      <ul className="mt-1 list-disc space-y-0.5 pl-5">
        {blocks.map((b) => (
          <li key={b.budgetId}>
            {b.message}. The router answers <code>429 insufficient_quota</code> to {refused(b)}.
          </li>
        ))}
      </ul>
      <p className="mt-2">
        Requests resume when the month ends or an admin raises the limit.{" "}
        <Link className="font-medium underline" href="/settings#budgets-heading">Review budgets in Settings</Link>
      </p>
    </div>
  );
}
