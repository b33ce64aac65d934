export { handleUsageRequest, ingestUsageReport, type IngestResult, type UsageReport } from "./ingest";
export {
  attributeToKeys,
  computeCost,
  priceMs,
  readyIntervalsFromEvents,
  serverlessBilledMs,
  type CostInput,
  type CostResult,
  type ServerlessBilling,
} from "./cost";
export { costForDeployments, loadDeploymentsForCost } from "./pricing";
export {
  blockForDeployment,
  budgetBlocks,
  budgetPeriod,
  deleteBudget,
  evaluateBudgets,
  listBudgets,
  monthToDateSpend,
  setBudget,
  setBudgetEvaluationDelay,
  teamBudgetBlocks,
  type BudgetBlock,
  type TeamBudgetBlock,
  type SetBudgetInput,
} from "./budgets";
export { deploymentSeries, seriesBucketMs, teamOverview } from "./metrics";
export { pruneUsage, RETENTION } from "./retention";
export { setUsageLinks, type UsageLinks } from "./links";
