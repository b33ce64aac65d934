import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import {
  getProvider,
  hasProvider,
  listProviders,
  loadConfiguredPlugins,
  loadProviderPlugins,
  ProviderRegistryError,
  registerProvider,
  unregisterProvider,
} from "./index";
import type { Provider } from "./index";

const dir = mkdtempSync(path.join(os.tmpdir(), "tuna-plugins-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A plugin module as a third party would ship it: plain ESM, its own (duck-typed) schema, no Tuna imports. */
function pluginSource(name: string, exportStyle: "default" | "named", overrides = ""): string {
  return `
const schema = {
  parse(v) { if (typeof v?.apiKey !== "string") throw new Error("apiKey required"); return v; },
  safeParse(v) { try { return { success: true, data: this.parse(v) }; } catch (error) { return { success: false, error }; } },
};
const p = {
  name: ${JSON.stringify(name)},
  displayName: "Acme GPUs",
  kind: "serverless",
  credentialsSchema: schema,
  supportedGpus: () => ["L4"],
  plan: (spec) => ({ provider: ${JSON.stringify(name)}, kind: "serverless", resourceName: spec.name + "-acme", gpu: { catalogName: spec.gpu, providerGpuId: "acme-" + spec.gpu, count: 1 }, region: "acme-1", request: {}, files: {}, env: {}, secretEnv: [], notes: [] }),
  preflight: async () => [],
  deploy: async (plan) => ({ provider: ${JSON.stringify(name)}, kind: "serverless", endpointUrl: "https://acme.example/" + plan.resourceName, upstreamHeaders: {}, externalIds: { id: "42" } }),
  status: async () => ({ state: "ready" }),
  destroy: async () => {},
  cleanupStorage: async () => {},
  ${overrides}
};
${exportStyle === "default" ? "export default p;" : "export const provider = p;"}
`;
}

function write(file: string, text: string): string {
  const full = path.join(dir, file);
  writeFileSync(full, text);
  return full;
}

describe("provider registry", () => {
  test("built-ins are registered: local (serverless) and local-spot (spot)", () => {
    assert.equal(getProvider("local").kind, "serverless");
    assert.equal(getProvider("local-spot").kind, "spot");
    assert.ok(listProviders({ kind: "spot" }).some((p) => p.name === "local-spot"));
    assert.ok(!listProviders({ kind: "serverless" }).some((p) => p.name === "local-spot"));
  });

  test("an unknown name is an error listing the known providers", () => {
    assert.throws(() => getProvider("nope"), (e: unknown) => e instanceof ProviderRegistryError && /unknown provider "nope"; known providers: .*local, local-spot/.test(e.message));
  });

  test("a second provider with a taken name is refused", () => {
    const clone = { ...getProvider("local") } as Provider;
    assert.throws(() => registerProvider(clone), /a provider named "local" is already registered/);
    // Re-registering the very same object is harmless.
    registerProvider(getProvider("local"));
  });

  test("a plugin module in a temp folder (default export) is loaded and found by name", async () => {
    const file = write("acme-plugin.mjs", pluginSource("acme", "default"));
    const loaded = await loadProviderPlugins([file]);
    try {
      assert.deepEqual(loaded.map((p) => p.name), ["acme"]);
      const p = getProvider("acme");
      assert.equal(p.displayName, "Acme GPUs");
      assert.equal(p.credentialsSchema.safeParse({ apiKey: "k" }).success, true);
      assert.equal(p.credentialsSchema.safeParse({}).success, false);
      const plan = p.plan({ name: "tuna-x", gpu: "L4" } as never);
      assert.equal(plan.gpu.providerGpuId, "acme-L4");
      const c = await p.deploy(plan, { apiKey: "k" });
      assert.equal(c.endpointUrl, "https://acme.example/tuna-x-acme");
      // Loading it again (e.g. a second call at startup) is idempotent.
      await loadProviderPlugins([file]);
    } finally {
      unregisterProvider("acme");
    }
    assert.equal(hasProvider("acme"), false);
  });

  test("TUNA_PROVIDER_PLUGINS: comma-separated, relative to the working directory, named `provider` export", async () => {
    const a = write("named-plugin.mjs", pluginSource("acme-named", "named"));
    const b = write("second-plugin.mjs", pluginSource("acme-second", "default"));
    const rel = path.relative(process.cwd(), a);
    try {
      const loaded = await loadConfiguredPlugins({ TUNA_PROVIDER_PLUGINS: ` ${rel.startsWith(".") ? rel : `./${rel}`} ,${b},` } as unknown as NodeJS.ProcessEnv);
      assert.deepEqual(loaded.map((p) => p.name), ["acme-named", "acme-second"]);
      assert.equal(getProvider("acme-named").kind, "serverless");
      assert.deepEqual(await loadConfiguredPlugins({} as unknown as NodeJS.ProcessEnv), []);
    } finally {
      unregisterProvider("acme-named");
      unregisterProvider("acme-second");
    }
  });

  test("a module that is not a provider is rejected with the fields that are wrong", async () => {
    const file = write("broken-plugin.mjs", pluginSource("acme-broken", "default", `kind: "gpu", deploy: "soon", credentialsSchema: {},`));
    await assert.rejects(loadProviderPlugins([file]), (e: unknown) => {
      assert.ok(e instanceof ProviderRegistryError);
      assert.match(e.message, /^not a valid provider from plugin ".*broken-plugin\.mjs": /);
      assert.match(e.message, /kind: /);
      assert.match(e.message, /credentialsSchema: must be a zod schema/);
      assert.match(e.message, /deploy: must be a function/);
      return true;
    });
    assert.equal(hasProvider("acme-broken"), false);
  });

  test("refreshUpstreamHeaders is optional, but a provider offering it must say how long headers live", async () => {
    const without = write("refresh-no-ttl-plugin.mjs", pluginSource("acme-refresh", "default", "refreshUpstreamHeaders: async () => ({}),"));
    await assert.rejects(loadProviderPlugins([without]), /upstreamHeadersTtlMs: is required with refreshUpstreamHeaders/);
    assert.equal(hasProvider("acme-refresh"), false);
    const withTtl = write("refresh-plugin.mjs", pluginSource("acme-refresh", "default", "refreshUpstreamHeaders: async () => ({}), upstreamHeadersTtlMs: 600000,"));
    try {
      const [p] = await loadProviderPlugins([withTtl]);
      assert.equal(p.upstreamHeadersTtlMs, 600_000);
      assert.equal(typeof p.refreshUpstreamHeaders, "function");
    } finally {
      unregisterProvider("acme-refresh");
    }
  });

  test("missing exports, missing files and name clashes are clear errors", async () => {
    const empty = write("empty-plugin.mjs", "export const nothing = 1;\n");
    await assert.rejects(loadProviderPlugins([empty]), /must default-export a provider \(or export one named "provider"\)/);
    await assert.rejects(loadProviderPlugins([path.join(dir, "missing.mjs")]), /cannot import provider plugin ".*missing\.mjs"/);
    const clash = write("clash-plugin.mjs", pluginSource("local", "default"));
    await assert.rejects(loadProviderPlugins([clash]), /a provider named "local" is already registered from plugin/);
    assert.equal(getProvider("local").displayName, "Local simulator (serverless)");
  });
});
