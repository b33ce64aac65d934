/** Public surface of the providers domain: the contract, its helpers, and the registry. */
export * from "./base/types";
export * from "./base/errors";
export * from "./base/templates";
export * from "./base/engine";
export {
  getProvider,
  hasProvider,
  listProviders,
  loadConfiguredPlugins,
  loadProviderPlugins,
  ProviderRegistryError,
  providerShapeSchema,
  registerProvider,
  unregisterProvider,
} from "./registry";
export { createLocalProvider, localServerless, localSpot, preemptLocal, waitForLocalReady } from "./local/index";
