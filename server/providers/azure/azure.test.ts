import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { ProviderError } from "../base/errors";
import { assertProviderError, makeTestSpec } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { AzureFake } from "./fake";
import { azureProvider } from "./index";
import { azureAppName, planAzure } from "./plan";

const AZ = {
  tenantId: "tenant-1111",
  clientId: "client-2222",
  clientSecret: "cs~SUPERsecretValue_9876543210",
  subscriptionId: "sub-3333",
  resourceGroup: "rg-tuna",
};
const HF_TOKEN = "hf_SECRETtoken_abcdef123456";
const creds = { ...AZ, secrets: { HF_TOKEN } };
const PREFIX = `/subscriptions/${AZ.subscriptionId}/resourceGroups/${AZ.resourceGroup}/providers/Microsoft.App`;

let fake: AzureFake;
let ctx: ProviderContext;

before(async () => {
  fake = await new AzureFake(AZ).start();
});
after(() => fake.close());
beforeEach(() => {
  fake.apps.clear();
  fake.environments.clear();
  fake.requests.length = 0;
  fake.tokenLifetimeS = 3599;
  fake.now = () => Date.now();
  fake.operationPolls = 2;
  ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
});

const t4Spec = (over = {}) => makeTestSpec({ gpu: "T4", secretNames: ["HF_TOKEN"], ...over });

describe("azure plan", () => {
  test("exact container app body for T4 with --dtype half, spec.port, scaling and secret refs", () => {
    const spec = t4Spec({ port: 8080 });
    spec.serverlessScaling = { minWorkers: 0, maxWorkers: 2, concurrency: 10, idleTimeoutS: 300, coldStartTimeoutS: 900 };
    const plan = planAzure(spec);
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "Consumption-GPU-NC8as-T4", count: 1 });
    assert.equal(plan.region, "eastus");
    const req = plan.request as any;
    assert.equal(req.environment.name, "tuna-gpu-eastus");
    assert.deepEqual(req.environment.body.properties.workloadProfiles.map((w: any) => w.workloadProfileType), ["Consumption", "Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"]);
    assert.deepEqual(req.app.body, {
      location: "eastus",
      tags: { "managed-by": "tuna", "tuna-deployment": "dep_test_1" },
      properties: {
        workloadProfileName: "gpu-t4",
        configuration: {
          activeRevisionsMode: "Single",
          ingress: { external: true, targetPort: 8080, transport: "auto", allowInsecure: false },
          secrets: [{ name: "hf-token" }],
        },
        template: {
          containers: [
            {
              name: "engine",
              image: "vllm/vllm-openai:v0.15.1",
              command: ["vllm"],
              args: ["serve", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", "--port", "8080", "--served-model-name", "qwen-small", "--max-model-len", "4096", "--dtype", "half"],
              env: [{ name: "HF_TOKEN", secretRef: "hf-token" }],
              resources: { cpu: 8, memory: "56Gi" },
              probes: [{ type: "Startup", httpGet: { path: "/health", port: 8080 }, initialDelaySeconds: 30, periodSeconds: 90, failureThreshold: 10, timeoutSeconds: 5 }],
            },
          ],
          scale: { minReplicas: 0, maxReplicas: 2, cooldownPeriod: 300, rules: [{ name: "http-concurrency", http: { metadata: { concurrentRequests: "10" } } }] },
        },
      },
    });
    assert.ok(plan.notes.some((n) => n.includes("--dtype half")));
    assert.ok(!JSON.stringify(plan).includes("hf_"));
  });

  test("A100 profile and resources; unsupported GPUs and 2 GPUs are rejected; long names fit 32 chars", () => {
    const a = planAzure(makeTestSpec({ gpu: "A100-80GB" }));
    assert.equal((a.request as any).app.body.properties.workloadProfileName, "gpu-a100");
    assert.deepEqual((a.request as any).app.body.properties.template.containers[0].resources, { cpu: 24, memory: "220Gi" });
    assert.ok(!(a.request as any).app.body.properties.template.containers[0].args.includes("half"));
    assert.throws(() => planAzure(makeTestSpec({ gpu: "L4" })), (e: unknown) => e instanceof ProviderError && e.code === "validation");
    assert.throws(() => planAzure(makeTestSpec({ gpu: "T4", gpuCount: 2 })), /one GPU per replica/);
    const long = azureAppName("tuna-a-very-long-deployment-name-xyz1");
    assert.ok(long.length <= 32 && /^[a-z0-9-]+[a-z0-9]$/.test(long));
    assert.equal(long, azureAppName("tuna-a-very-long-deployment-name-xyz1"));
  });
});

describe("azure preflight", () => {
  test("missing credentials", async () => {
    const f = await azureProvider.preflight(planAzure(t4Spec()), { tenantId: "x" }, ctx);
    assert.deepEqual(f.map((x) => x.code), ["missing_credentials"]);
  });

  test("wrong client secret → unauthorized with Entra's reason, secret absent", async () => {
    const wrong = "cs~WRONGsecret_0000000000";
    const f = await azureProvider.preflight(planAzure(t4Spec()), { ...AZ, clientSecret: wrong }, ctx);
    const u = f.find((x) => x.code === "unauthorized")!;
    assert.match(u.message, /AADSTS7000215/);
    assert.ok(!f.some((x) => x.code === "credentials_accepted"));
    assert.ok(!u.message.includes(wrong));
    const tok = fake.requests[0];
    assert.equal(tok.method, "POST");
    assert.equal(tok.path, `/login/${AZ.tenantId}/oauth2/v2.0/token`);
    const form = new URLSearchParams(tok.raw);
    assert.equal(form.get("grant_type"), "client_credentials");
    assert.equal(form.get("scope"), "https://management.azure.com/.default");
  });

  test("region without the GPU profile (catalog and API), quota, missing resource group", async () => {
    const west = await azureProvider.preflight(planAzure(t4Spec({ region: "westus" })), creds, ctx);
    assert.equal(west.filter((x) => x.code === "gpu_unavailable_in_region").length, 1, JSON.stringify(west));
    const nowhere = await azureProvider.preflight(planAzure(t4Spec({ region: "mars-1" })), creds, ctx);
    assert.ok(nowhere.some((x) => x.code === "gpu_unavailable_in_region" && x.message.includes("swedencentral")));

    const a100 = await azureProvider.preflight(planAzure(makeTestSpec({ gpu: "A100-80GB" })), creds, ctx);
    assert.ok(a100.some((x) => x.code === "quota" && x.level === "error" && /A100/.test(x.message)), JSON.stringify(a100));

    const ok = await azureProvider.preflight(planAzure(t4Spec()), creds, ctx);
    assert.deepEqual(ok.filter((x) => x.level !== "info"), []);
    assert.ok(ok.some((x) => x.code === "credentials_accepted"));
    assert.ok(ok.some((x) => x.code === "environment_created"));

    const noRg = await azureProvider.preflight(planAzure(t4Spec()), { ...creds, resourceGroup: "rg-missing" }, ctx);
    assert.ok(noRg.some((x) => x.code === "resource_group_missing"));
  });
});

describe("azure deploy → status → destroy", () => {
  test("creates the GPU environment, then the app; polls Azure-AsyncOperation; FQDN is the endpoint", async () => {
    const plan = planAzure(t4Spec());
    const comp = await azureProvider.deploy(plan, creds, ctx);
    const calls = fake.requests.map((r) => `${r.method} ${r.path}`);
    const envPath = `${PREFIX}/managedEnvironments/tuna-gpu-eastus`;
    const appPath = `${PREFIX}/containerApps/tuna-qwen-small-k3j9`;
    assert.equal(calls[0], `POST /login/${AZ.tenantId}/oauth2/v2.0/token`);
    assert.equal(calls[1], `GET ${PREFIX}/managedEnvironments`);
    assert.equal(calls[2], `PUT ${envPath}`);
    assert.ok(calls.indexOf(`PUT ${appPath}`) > calls.indexOf(`GET ${envPath}`));
    assert.ok(calls.filter((c) => c.includes("managedEnvironmentOperationStatuses")).length >= 2);
    assert.ok(calls.filter((c) => c.includes("containerappOperationStatuses")).length >= 2);
    for (const r of fake.requests.slice(1)) {
      assert.match(r.headers.authorization, /^Bearer eyJ/);
      assert.equal(r.query["api-version"], "2025-07-01");
    }
    const put = fake.requests.find((r) => r.method === "PUT" && r.path === appPath)!.body as any;
    assert.equal(put.properties.environmentId, fake.environments.get("tuna-gpu-eastus")!.id);
    assert.equal(put.properties.workloadProfileName, "gpu-t4");
    assert.deepEqual(put.properties.configuration.secrets, [{ name: "hf-token", value: HF_TOKEN }]);
    assert.equal(put.properties.configuration.ingress.targetPort, 8000);
    assert.deepEqual(put.properties.template.scale.rules[0].http.metadata, { concurrentRequests: "32" });
    assert.equal(fake.appSecrets.get("tuna-qwen-small-k3j9")!["hf-token"], HF_TOKEN);

    const app = fake.apps.get("tuna-qwen-small-k3j9")!;
    assert.equal(comp.endpointUrl, `https://${app.properties.configuration.ingress.fqdn}`);
    assert.match(comp.endpointUrl, /^https:\/\/tuna-qwen-small-k3j9\.[a-f0-9]+\.eastus\.azurecontainerapps\.io$/);
    assert.deepEqual(comp.upstreamHeaders, {});
    assert.equal(comp.externalIds.environmentCreated, "true");

    const ref = refFromPlan(plan, comp.externalIds);
    assert.equal((await azureProvider.status(ref, creds, ctx)).state, "ready");

    fake.requests.length = 0;
    await azureProvider.destroy(ref, creds, ctx);
    assert.ok(fake.requests.some((r) => r.method === "DELETE" && r.path === appPath));
    assert.ok(fake.requests.some((r) => r.path.includes("containerappOperationResults")), "polls the Location header");
    assert.equal(fake.apps.size, 0);
    assert.equal(fake.environments.size, 1, "destroy keeps the environment (slow to recreate)");
    await azureProvider.destroy(ref, creds, ctx);
    assert.equal((await azureProvider.status(ref, creds, ctx)).state, "gone");
    await azureProvider.cleanupStorage(ref, creds, ctx);
    await azureProvider.cleanupStorage(ref, creds, ctx);
    assert.ok(fake.isEmpty());
  });

  test("reuses an environment that already has the profile (under another name) and never deletes it", async () => {
    fake.addEnvironment("team-env", "eastus", [{ name: "Consumption", workloadProfileType: "Consumption" }, { name: "my-t4", workloadProfileType: "Consumption-GPU-NC8as-T4" }]);
    const plan = planAzure(t4Spec());
    const comp = await azureProvider.deploy(plan, creds, ctx);
    assert.ok(!fake.requests.some((r) => r.method === "PUT" && r.path.includes("managedEnvironments")));
    const put = fake.requests.find((r) => r.method === "PUT")!.body as any;
    assert.equal(put.properties.workloadProfileName, "my-t4");
    assert.equal(comp.externalIds.environmentCreated, "false");
    const ref = refFromPlan(plan, comp.externalIds);
    await azureProvider.destroy(ref, creds, ctx);
    await azureProvider.cleanupStorage(ref, creds, ctx);
    assert.equal(fake.apps.size, 0);
    assert.ok(fake.environments.has("team-env"));
  });

  test("a Tuna environment still used by another app is kept by cleanupStorage", async () => {
    const a = planAzure(t4Spec());
    const b = planAzure(t4Spec({ name: "tuna-other-abcd" }));
    fake.gpuQuota["Consumption-GPU-NC8as-T4"] = 5;
    const ca = await azureProvider.deploy(a, creds, ctx);
    await azureProvider.deploy(b, creds, ctx);
    await azureProvider.destroy(refFromPlan(a, ca.externalIds), creds, ctx);
    await azureProvider.cleanupStorage(refFromPlan(a, ca.externalIds), creds, ctx);
    assert.equal(fake.environments.size, 1);
    await azureProvider.destroy(refFromPlan(b), creds, ctx);
    await azureProvider.cleanupStorage(refFromPlan(b), creds, ctx);
    assert.ok(fake.isEmpty());
    fake.gpuQuota["Consumption-GPU-NC8as-T4"] = 2;
  });

  test("app provisioning fails on GPU quota → quota error; destroy + cleanup from the plan alone empty the fake", async () => {
    const spec = t4Spec();
    spec.serverlessScaling = { ...spec.serverlessScaling, maxWorkers: 3 };
    const plan = planAzure(spec);
    await assert.rejects(azureProvider.deploy(plan, creds, ctx), (e: unknown) => e instanceof ProviderError && e.code === "quota" && !e.retryable && /MaxNumberOfGpusExceeded/.test(e.message));
    assert.equal(fake.apps.size, 1);
    assert.equal(fake.environments.size, 1);
    await azureProvider.destroy(refFromPlan(plan), creds, ctx);
    await azureProvider.cleanupStorage(refFromPlan(plan), creds, ctx);
    assert.ok(fake.isEmpty());
  });

  test("a later call failing (app PUT 500 after env creation) maps to a clear error without secrets; cleanup empties the fake", async () => {
    const plan = planAzure(t4Spec());
    fake.failNext("PUT", /containerApps\//, {
      status: 400,
      body: { error: { code: "InvalidRequestContent", message: `bad request echoing ${AZ.clientSecret} and ${HF_TOKEN}` } },
    });
    await assertProviderError(azureProvider.deploy(plan, creds, ctx), {
      code: "validation",
      status: 400,
      message: /create container app failed \(HTTP 400\): InvalidRequestContent/,
      hides: [AZ.clientSecret, HF_TOKEN],
    });
    assert.equal(fake.environments.size, 1);
    await azureProvider.destroy(refFromPlan(plan), creds, ctx);
    await azureProvider.cleanupStorage(refFromPlan(plan), creds, ctx);
    assert.ok(fake.isEmpty());
  });

  test("429 with Retry-After is retried; 5xx on PUT retried too (ARM PUT is idempotent)", async () => {
    const slept: number[] = [];
    fake.failNext("GET", /managedEnvironments$/, { status: 429 });
    fake.failNext("PUT", /containerApps\//, { status: 503 });
    const comp = await azureProvider.deploy(planAzure(t4Spec()), creds, { ...ctx, sleep: async (ms) => void slept.push(ms) });
    assert.ok(comp.endpointUrl.startsWith("https://"));
    assert.ok(slept.length > 0);
  });

  test("the fake rejects what ARM rejects", async () => {
    const appUrl = `${fake.url}${PREFIX}/containerApps/x1`;
    const body = structuredClone((planAzure(t4Spec()).request as any).app.body);
    const noAuth = await fetch(`${appUrl}?api-version=2025-07-01`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(noAuth.status, 401);
    assert.equal(((await noAuth.json()) as any).error.code, "InvalidAuthenticationToken");
    const tok = await fetch(`${fake.baseUrls.login}/${AZ.tenantId}/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: AZ.clientId, client_secret: AZ.clientSecret, scope: "https://management.azure.com/.default" }),
    });
    const auth = { authorization: `Bearer ${((await tok.json()) as any).access_token}`, "content-type": "application/json" };
    const noVersion = await fetch(appUrl, { method: "PUT", headers: auth, body: JSON.stringify(body) });
    assert.equal(((await noVersion.json()) as any).error.code, "MissingApiVersionParameter");
    fake.addEnvironment("env-x", "eastus", [{ name: "gpu-t4", workloadProfileType: "Consumption-GPU-NC8as-T4" }]);
    body.properties.environmentId = fake.environments.get("env-x")!.id;
    const noValue = await fetch(`${appUrl}?api-version=2025-07-01`, { method: "PUT", headers: auth, body: JSON.stringify(body) });
    assert.equal(noValue.status, 400);
    assert.equal(((await noValue.json()) as any).error.code, "ContainerAppSecretValueMissing");
    assert.equal(fake.apps.size, 0);
  });
});

describe("azure environment still provisioning", () => {
  test("an interrupted deploy's environment is waited for, then reused", async () => {
    fake.requests.length = 0;
    fake.apps.clear();
    fake.environments.clear();
    const plan = planAzure(t4Spec());
    fake.failNext("GET", /managedEnvironmentOperationStatuses/, { status: 500, times: 3 });
    await assert.rejects(azureProvider.deploy(plan, creds, ctx), (e: unknown) => e instanceof ProviderError && e.retryable);
    assert.notEqual(fake.environments.get("tuna-gpu-eastus")!.properties.provisioningState, "Succeeded");
    // The retry finds the environment still provisioning, waits (Azure finishes it meanwhile) and reuses it.
    const env = fake.environments.get("tuna-gpu-eastus")!;
    env.properties.provisioningState = "InfrastructureSetupInProgress";
    const slept: number[] = [];
    const comp = await azureProvider.deploy(plan, creds, {
      ...ctx,
      sleep: async (ms) => {
        slept.push(ms);
        env.properties.provisioningState = "Succeeded";
      },
    });
    assert.equal(slept[0], 5000);
    assert.equal(comp.externalIds.environmentName, "tuna-gpu-eastus");
    assert.equal(fake.requests.filter((r) => r.method === "PUT" && r.path.includes("managedEnvironments")).length, 1);
    await azureProvider.destroy(refFromPlan(plan), creds, ctx);
    await azureProvider.cleanupStorage(refFromPlan(plan), creds, ctx);
    assert.ok(fake.isEmpty());
  });
});

describe("azure access token outlived by a long deploy", () => {
  /** Simulated time: every wait of the client moves the clock of both the client and the fake. */
  const virtualTime = () => {
    const clock = { ms: Date.now() };
    fake.now = () => clock.ms;
    return { clock, sleep: async (ms: number) => void (clock.ms += ms) };
  };
  const tokenCalls = () => fake.requests.filter((r) => r.path.endsWith("/oauth2/v2.0/token")).length;

  test("a deploy that waits longer than a token lives gets a new token before the old one expires", async () => {
    // Tokens live 10 s here; the environment and the app each take 15 s of polling (Retry-After: 1).
    fake.tokenLifetimeS = 10;
    fake.operationPolls = 15;
    const { clock, sleep } = virtualTime();
    const started = clock.ms;
    const plan = planAzure(t4Spec());
    const statuses: number[] = [];
    const countingFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      statuses.push(res.status);
      return res;
    };
    const comp = await azureProvider.deploy(plan, creds, { ...ctx, sleep, now: () => clock.ms, fetch: countingFetch });
    assert.ok(!statuses.includes(401), "renewed ahead of expiry: no call was refused for an expired token");
    assert.ok(clock.ms - started >= 30_000, "the deploy outlived several tokens");
    assert.ok(comp.endpointUrl.startsWith("https://"));
    assert.ok(tokenCalls() >= 4, `tokens were renewed (${tokenCalls()} token calls)`);
    const tokens = new Set(fake.requests.filter((r) => !r.path.includes("/oauth2/")).map((r) => r.headers.authorization));
    assert.ok(tokens.size >= 4, "later calls carry the new tokens");
    assert.equal(fake.apps.get("tuna-qwen-small-k3j9")!.properties.provisioningState, "Succeeded");
  });

  test("an answer that the token expired (client clock behind) gets one new token and the call is repeated", async () => {
    // The client's clock does not move, so it never sees the token age; only ARM's 401 tells it.
    fake.tokenLifetimeS = 10;
    fake.operationPolls = 15;
    const { sleep } = virtualTime();
    const comp = await azureProvider.deploy(planAzure(t4Spec()), creds, { ...ctx, sleep });
    assert.ok(comp.endpointUrl.startsWith("https://"));
    assert.ok(tokenCalls() >= 3, `a new token after each ExpiredAuthenticationToken (${tokenCalls()} token calls)`);
  });

  test("a token refused again after the refresh fails as unauthorized after exactly one new token", async () => {
    // Tokens that are expired on arrival: refreshing cannot help, and the session must not loop.
    fake.tokenLifetimeS = 0;
    await assertProviderError(azureProvider.deploy(planAzure(t4Spec()), creds, ctx), {
      code: "unauthorized",
      status: 401,
      retryable: false,
      message: /ExpiredAuthenticationToken/,
      hides: [AZ.clientSecret],
    });
    assert.equal(tokenCalls(), 2);
    assert.equal(fake.requests.filter((r) => !r.path.includes("/oauth2/")).length, 2, "the first call, then once more with the new token");
  });

  test("InvalidAuthenticationToken is not an expired token: no refresh, unauthorized at once", async () => {
    fake.failNext("GET", /managedEnvironments$/, {
      status: 401,
      body: { error: { code: "InvalidAuthenticationToken", message: "The access token is invalid." } },
    });
    await assertProviderError(azureProvider.deploy(planAzure(t4Spec()), creds, ctx), { code: "unauthorized", status: 401 });
    assert.equal(tokenCalls(), 1);
  });
});
