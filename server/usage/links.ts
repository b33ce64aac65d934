/**
 * The usage domain's calls into other domains (alerts, router config), in one place. Tests replace them
 * with `setUsageLinks` to observe calls; production uses the domains' own functions.
 */
import type { Tx } from "../db";
import { notify } from "../alerts";
import { bumpRouterConfigVersion, recordKeysUsed, routerTokenValid } from "../routerconfig";

export interface BudgetAlert {
  type: "budget.threshold";
  deploymentId?: string;
  title: string;
  text: string;
  [k: string]: unknown;
}

export interface UsageLinks {
  notify(teamId: string, alert: BudgetAlert): Promise<unknown>;
  routerTokenValid(authorizationHeader: string | null): boolean | Promise<boolean>;
  bumpRouterConfigVersion(tx: Tx): Promise<unknown>;
  recordKeysUsed(keyIds: string[], at: Date): unknown;
}

const defaults: UsageLinks = {
  notify,
  routerTokenValid,
  bumpRouterConfigVersion,
  recordKeysUsed,
};

let current: UsageLinks = defaults;

export function usageLinks(): UsageLinks {
  return current;
}

/** Overrides some links (tests, bench); returns a function restoring the previous ones. */
export function setUsageLinks(partial: Partial<UsageLinks>): () => void {
  const prev = current;
  current = { ...current, ...partial };
  return () => {
    current = prev;
  };
}
