/** Public surface of the deployments domain. */
export {
  appendTimeline,
  getDeployment,
  getTimeline,
  LIST_SORTS,
  listDeployments,
  LIVE_STATUSES,
  quoteDeployment,
  requestDeployment,
  requestDestroy,
  requestDestroyAll,
  type ListDeploymentsOptions,
  type ListSort,
  type Quote,
} from "./service";
export {
  deploymentInputSchema,
  resolveDeployment,
  resourceBaseName,
  slugFromModel,
  type DeploymentInput,
  type ResolvedDeployment,
  type StoredSpec,
} from "./plan";
export * as lifecycle from "./lifecycle";
export { setWorkflowFaultHook } from "./lifecycle";
