import type { ProviderCatalogEntry } from "../types";
import { localCatalog } from "./local";
import { runpodCatalog } from "./runpod";
import { cloudrunCatalog } from "./cloudrun";
import { azureCatalog } from "./azure";
import { modalCatalog } from "./modal";
import { basetenCatalog } from "./baseten";
import { cerebriumCatalog } from "./cerebrium";

/** Every provider's catalog entry. Adding a provider = one import and one line in this array. */
export const providerCatalogEntries: ProviderCatalogEntry[] = [
  localCatalog,
  modalCatalog,
  runpodCatalog,
  cloudrunCatalog,
  azureCatalog,
  cerebriumCatalog,
  basetenCatalog,
];
