import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import type { Provider } from "./base/types";
import { localServerless, localSpot } from "./local/index";
import { runpodProvider } from "./runpod/index";
import { cloudrunProvider } from "./cloudrun/index";
import { azureProvider } from "./azure/index";
import { skyserveProvider } from "./skyserve/index";
import { modalProvider } from "./modal/index";
import { basetenProvider } from "./baseten/index";
import { cerebriumProvider } from "./cerebrium/index";

/**
 * Providers by name. Built-ins are listed once below; plugins (modules named in TUNA_PROVIDER_PLUGINS) are
 * validated at load time and registered the same way, so the rest of Tuna cannot tell them apart.
 */

/** Built-in providers. Adding one = one import above and one line here. */
const BUILTIN_PROVIDERS: Provider[] = [
  localServerless,
  localSpot,
  runpodProvider,
  cloudrunProvider,
  azureProvider,
  modalProvider,
  basetenProvider,
  cerebriumProvider,
  skyserveProvider,
];

const providers = new Map<string, Provider>();

const fn = z.custom<(...args: unknown[]) => unknown>((v) => typeof v === "function", { error: "must be a function" });

/**
 * The runtime shape of `Provider`. `credentialsSchema` is checked by duck type (a plugin may bundle its own
 * copy of zod, so `instanceof` would wrongly reject it).
 */
export const providerShapeSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, { error: "must be lowercase letters, digits and dashes (≤ 40)" }),
  displayName: z.string().min(1),
  kind: z.enum(["serverless", "spot"]),
  credentialsSchema: z.custom<unknown>(
    (v) => typeof v === "object" && v !== null && typeof (v as { parse?: unknown }).parse === "function" && typeof (v as { safeParse?: unknown }).safeParse === "function",
    { error: "must be a zod schema (an object with parse and safeParse)" },
  ),
  supportedGpus: fn,
  plan: fn,
  preflight: fn,
  deploy: fn,
  status: fn,
  destroy: fn,
  cleanupStorage: fn,
  refreshUpstreamHeaders: fn.optional(),
  upstreamHeadersTtlMs: z.number().int().positive().optional(),
  routerConnectionIdleMs: z.number().int().positive().max(600_000).optional(),
}).refine((p) => p.refreshUpstreamHeaders === undefined || p.upstreamHeadersTtlMs !== undefined, {
  path: ["upstreamHeadersTtlMs"],
  error: "is required with refreshUpstreamHeaders (how long the headers stay valid, in ms)",
});

export class ProviderRegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProviderRegistryError";
  }
}

function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : "(value)"}: ${i.message}`).join("; ");
}

/** Validates and registers a provider. A second provider with the same name is an error unless `replace`. */
export function registerProvider(p: Provider, opts: { replace?: boolean; source?: string } = {}): Provider {
  const parsed = providerShapeSchema.safeParse(p);
  const from = opts.source ? ` from ${opts.source}` : "";
  if (!parsed.success) throw new ProviderRegistryError(`not a valid provider${from}: ${describeIssues(parsed.error)}`);
  if (providers.has(p.name) && !opts.replace && providers.get(p.name) !== p) {
    throw new ProviderRegistryError(`a provider named "${p.name}" is already registered${from}`);
  }
  providers.set(p.name, p);
  return p;
}

export function getProvider(name: string): Provider {
  const p = providers.get(name);
  if (!p) {
    throw new ProviderRegistryError(`unknown provider "${name}"; known providers: ${[...providers.keys()].sort().join(", ") || "(none)"}`);
  }
  return p;
}

export function hasProvider(name: string): boolean {
  return providers.has(name);
}

export function listProviders(filter: { kind?: "serverless" | "spot" } = {}): Provider[] {
  return [...providers.values()].filter((p) => !filter.kind || p.kind === filter.kind);
}

/** Removes a provider (tests, and unloading a plugin). Returns whether it was registered. */
export function unregisterProvider(name: string): boolean {
  return providers.delete(name);
}

for (const p of BUILTIN_PROVIDERS) registerProvider(p, { source: "built-ins" });

/**
 * Imports provider plugin modules and registers what they export: `default` or a named `provider` export,
 * each either one `Provider` or an array of them. Relative paths resolve against the working directory;
 * anything else (absolute path, `file:` URL, package name) is imported as given.
 */
export async function loadProviderPlugins(specifiers: string[]): Promise<Provider[]> {
  const loaded: Provider[] = [];
  for (const raw of specifiers) {
    const spec = raw.trim();
    if (!spec) continue;
    const target =
      spec.startsWith(".") || path.isAbsolute(spec) ? pathToFileURL(path.resolve(/*turbopackIgnore: true*/ process.cwd(), spec)).href : spec;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(target)) as Record<string, unknown>;
    } catch (err) {
      throw new ProviderRegistryError(`cannot import provider plugin "${spec}": ${err instanceof Error ? err.message : String(err)}`);
    }
    const exported = mod.default ?? mod.provider;
    if (exported === undefined) {
      throw new ProviderRegistryError(`provider plugin "${spec}" must default-export a provider (or export one named "provider")`);
    }
    const list = Array.isArray(exported) ? exported : [exported];
    for (const p of list) loaded.push(registerProvider(p as Provider, { source: `plugin "${spec}"` }));
  }
  return loaded;
}

/**
 * Loads the plugins listed (comma-separated) in TUNA_PROVIDER_PLUGINS. Safe to call more than once: modules
 * are cached by the runtime and re-registering the same provider object is a no-op.
 */
export function loadConfiguredPlugins(env: NodeJS.ProcessEnv = process.env): Promise<Provider[]> {
  return loadProviderPlugins((env.TUNA_PROVIDER_PLUGINS ?? "").split(","));
}
