import type { ProviderCatalogEntry } from "../types";
import { localCatalog } from "./local";

/** Every provider's catalog entry. Adding a provider = one import and one line in this array. */
export const providerCatalogEntries: ProviderCatalogEntry[] = [
  localCatalog,
];
