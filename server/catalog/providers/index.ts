import type { ProviderCatalogEntry } from "../types";
import { localCatalog } from "./local";
import { runpodCatalog } from "./runpod";
import { cloudrunCatalog } from "./cloudrun";
import { azureCatalog } from "./azure";

/** Every provider's catalog entry. Adding a provider = one import and one line in this array. */
export const providerCatalogEntries: ProviderCatalogEntry[] = [
  localCatalog,
  runpodCatalog,
  cloudrunCatalog,
  azureCatalog,
];
