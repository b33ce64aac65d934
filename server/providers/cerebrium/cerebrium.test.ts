import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, test } from "node:test";
import { assertProviderError, makeTestSpec, useFakeServer } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { FakeCerebrium, GATEWAY_NOT_FOUND } from "./fake";
import { cerebriumProvider, createCerebriumProvider, endpointFromDeployOutput, mapAppStatus } from "./index";
import { planCerebrium } from "./plan";

/** Quotes of every kind, a comment, a literal backslash-n and a command substitution. */
const HOSTILE = `x"; rm -rf / #'\\n$(id)`;

function pythonTomlEntrypoint(toml: string): string[] | null {
  try {
    execFileSync("python3", ["-c", "import tomllib"], { stdio: "ignore" });
  } catch {
    return null;
  }
  const dir = mkdtempSync(path.join(tmpdir(), "tuna-cbr-test-"));
  try {
    const file = path.join(dir, "cerebrium.toml");
    writeFileSync(file, toml);
    const out = execFileSync("python3", ["-c", "import json,sys,tomllib\nprint(json.dumps(tomllib.load(open(sys.argv[1],'rb'))['cerebrium']['runtime']['custom']['entrypoint']))", file]);
    return JSON.parse(out.toString()) as string[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EXPECTED_T4_TOML = `# Cerebrium app of one Tuna deployment, rendered by server/providers/cerebrium (variables: README.md).
# The engine runs as a custom web server. No secret value is written here: Cerebrium injects project
# secrets (e.g. HF_TOKEN) as environment variables.

[cerebrium.deployment]
name = "tuna-qwen-small-k3j9-serverless"
python_version = "3.12"
docker_base_image_url = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
disable_auth = false
include = ["main.py", "cerebrium.toml"]
exclude = [".*"]

[cerebrium.runtime.custom]
port = 8000
entrypoint = ["vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", "--port", "8000", "--served-model-name", "qwen-small", "--max-model-len", "4096", "--dtype", "half"]
healthcheck_endpoint = "/health"
readycheck_endpoint = "/v1/models"

[cerebrium.hardware]
cpu = 4
memory = 16.0
compute = "TURING_T4"
gpu_count = 1
provider = "aws"
region = "us-east-1"

[cerebrium.scaling]
min_replicas = 0
max_replicas = 1
cooldown = 60
replica_concurrency = 32

[cerebrium.dependencies.pip]
"vllm" = "==0.15.1"
"hf-transfer" = "latest"
`;

describe("cerebrium plan (pure)", () => {
  test("T4: exact cerebrium.toml with --dtype half and the spec's scaling knobs", () => {
    const plan = planCerebrium(makeTestSpec({ gpu: "T4" }));
    assert.equal(plan.files["cerebrium.toml"], EXPECTED_T4_TOML);
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "TURING_T4", count: 1 });
    assert.equal(plan.region, "us-east-1");
    assert.ok(plan.files["main.py"].startsWith("#"));
  });

  test("a hostile model name stays one TOML string", () => {
    const plan = planCerebrium(makeTestSpec({ model: HOSTILE }));
    assert.ok(plan.files["cerebrium.toml"].includes(String.raw`entrypoint = ["vllm", "serve", "x\"; rm -rf / #'\\n$(id)", "--host"`));
    assert.throws(() => planCerebrium(makeTestSpec({ model: "a\nb" })), /must not contain line breaks/);
    const parsed = pythonTomlEntrypoint(plan.files["cerebrium.toml"]);
    if (parsed) assert.equal(parsed[2], HOSTILE);
  });

  test("H100 ×2 scales CPU/memory and notes the Enterprise plan; unsupported GPU rejected", () => {
    const plan = planCerebrium(makeTestSpec({ gpu: "H100", gpuCount: 2, region: "eu-west-2" }));
    const toml = plan.files["cerebrium.toml"];
    for (const line of ['compute = "HOPPER_H100"', "gpu_count = 2", "cpu = 24", "memory = 128.0", 'region = "eu-west-2"', '"--tensor-parallel-size", "2"']) assert.ok(toml.includes(line), line);
    assert.ok(plan.notes.some((n) => n.includes("Enterprise")));
    assert.throws(() => planCerebrium(makeTestSpec({ gpu: "B200" })), /not offered by Cerebrium/);
  });

  test("endpoint parsing and status wording", () => {
    assert.equal(
      endpointFromDeployOutput("Endpoint: POST https://api.aws.us-east-1.cerebrium.ai/v4/p-1/app-x/{function_name}", "p-1", "app-x"),
      "https://api.aws.us-east-1.cerebrium.ai/v4/p-1/app-x",
    );
    assert.equal(endpointFromDeployOutput("https://api.aws.us-east-1.cerebrium.ai/v4/p-1/app-xy/run", "p-1", "app-x"), undefined);
    assert.equal(mapAppStatus({ status: "BUILD_FAILED" }).state, "failed");
    assert.equal(mapAppStatus({ status: "building" }).state, "creating");
    assert.equal(mapAppStatus({ status: "ready", replicas: 2 }).state, "ready");
    assert.equal(mapAppStatus(undefined).state, "gone");
  });
});

describe("cerebrium provider against the fake REST API + fake CLI", () => {
  const fake = new FakeCerebrium();
  let ctx: ProviderContext;
  let creds: { apiKey: string; projectId: string; inferenceKey?: string };
  const INFERENCE_KEY = "eyJhbGciOiJSUzI1NiJ9.cbr_inference_key_for_tests.sig";
  const APP = "tuna-qwen-small-k3j9-serverless";

  useFakeServer(fake);
  beforeEach(() => {
    fake.reset();
    ctx = { baseUrls: { cerebrium: fake.url }, exec: fake.exec, sleep: async () => {} };
    creds = { apiKey: fake.token, projectId: fake.projectId, inferenceKey: INFERENCE_KEY };
  });

  test("preflight: missing credentials, unauthorised token, unknown project, CLI missing, region warning", async () => {
    const plan = planCerebrium(makeTestSpec());
    assert.deepEqual((await cerebriumProvider.preflight(plan, { apiKey: "x" }, ctx)).map((f) => f.code), ["missing_credentials"]);
    const bad = await cerebriumProvider.preflight(plan, { ...creds, apiKey: "cbr_wrong_token_000000" }, ctx);
    assert.deepEqual(bad.map((f) => [f.level, f.code]), [["error", "unauthorized"]]);
    assert.ok(!JSON.stringify(bad).includes("cbr_wrong_token_000000"));
    assert.deepEqual((await cerebriumProvider.preflight(plan, { ...creds, projectId: "p-nope" }, ctx)).map((f) => f.code), ["project_not_found"]);
    fake.cliInstalled = false;
    const noCli = await cerebriumProvider.preflight(plan, creds, ctx);
    assert.deepEqual(noCli.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["error", "cli_missing"]]);
    assert.match(noCli[1].message, /pip install cerebrium/);
    fake.cliInstalled = true;
    assert.deepEqual((await cerebriumProvider.preflight(plan, creds, ctx)).map((f) => [f.level, f.code]), [["info", "credentials_accepted"]]);
    const elsewhere = await cerebriumProvider.preflight(planCerebrium(makeTestSpec({ gpu: "H100", region: "eu-west-2", secretNames: ["HF_TOKEN"] })), creds, ctx);
    assert.deepEqual(elsewhere.map((f) => f.code), ["credentials_accepted", "plan_required", "gpu_unavailable_in_region", "secret_manual"]);
  });

  test("deploy → status → destroy with exact CLI args/env and REST calls; destroy twice succeeds", async () => {
    const plan = planCerebrium(makeTestSpec());
    const app = "tuna-qwen-small-k3j9-serverless";
    const comp = await cerebriumProvider.deploy(plan, creds, ctx);
    assert.deepEqual(comp, {
      provider: "cerebrium",
      kind: "serverless",
      endpointUrl: `https://api.aws.us-east-1.cerebrium.ai/v4/${fake.projectId}/${app}`,
      upstreamHeaders: { authorization: `Bearer ${INFERENCE_KEY}` },
      externalIds: { appId: `${fake.projectId}-${app}`, projectId: fake.projectId },
    });
    assert.deepEqual(fake.commandLines(), ["cerebrium deploy -y --no-color"]);
    const call = fake.calls[0];
    assert.deepEqual(Object.keys(call.env).sort(), ["CEREBRIUM_PROJECT_ID", "CEREBRIUM_SERVICE_ACCOUNT_TOKEN", "HOME"]);
    assert.notEqual(call.env.HOME, process.env.HOME);
    assert.equal(call.files["cerebrium.toml"], plan.files["cerebrium.toml"]);
    assert.ok(!call.args.join(" ").includes(fake.token));
    assert.ok(!JSON.stringify(call.env).includes(INFERENCE_KEY));

    const ref = refFromPlan(plan, comp.externalIds);
    assert.equal((await cerebriumProvider.status(ref, creds, ctx)).state, "scaled_to_zero");
    fake.setApp(app, "ready", 1);
    const ready = await cerebriumProvider.status(ref, creds, ctx);
    assert.deepEqual([ready.state, ready.replicas, ready.endpointUrl], ["ready", { ready: 1, total: 1 }, comp.endpointUrl]);

    fake.requests.length = 0;
    await cerebriumProvider.destroy(ref, creds, ctx);
    await cerebriumProvider.destroy(ref, creds, ctx);
    await cerebriumProvider.cleanupStorage(ref, creds, ctx);
    const appsPath = `/v3/projects/${fake.projectId}/apps`;
    const appPath = `${appsPath}/${fake.projectId}-${app}`;
    // The second DELETE answers 404: the app list confirms it is gone.
    assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}`), [`DELETE ${appPath}`, `DELETE ${appPath}`, `GET ${appsPath}`]);
    assert.ok(fake.requests.every((r) => r.headers.authorization === `Bearer ${fake.token}`));
    assert.equal(fake.apps.size, 0);
    assert.equal((await cerebriumProvider.status(ref, creds, ctx)).state, "gone");
  });

  test("destroy after a half-finished deploy (app created, build failed) leaves the fake empty", async () => {
    const plan = planCerebrium(makeTestSpec());
    fake.failDeploy(`Error: build failed while starting the app (token ${fake.token})`, true);
    await assertProviderError(cerebriumProvider.deploy(plan, creds, ctx), { code: "failed", message: /cerebrium deploy failed \(exit 1\): Error: build failed/, hides: [fake.token] });
    assert.equal(fake.apps.size, 1);
    await cerebriumProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.apps.size, 0);
  });

  test("an unauthorised token fails deploy and status clearly without the token", async () => {
    const plan = planCerebrium(makeTestSpec());
    const wrong = { ...creds, apiKey: "cbr_bad_token_for_tests_1" };
    await assertProviderError(cerebriumProvider.deploy(plan, wrong, ctx), { code: "unauthorized", hides: [wrong.apiKey] });
    await assertProviderError(cerebriumProvider.status(refFromPlan(plan), wrong, ctx), { status: 401, hides: [wrong.apiKey] });
  });
});

describe("cerebrium: a 404 is 'gone' only when the project's app list confirms it", () => {
  const fake = new FakeCerebrium();
  let ctx: ProviderContext;
  let creds: { apiKey: string; projectId: string };
  const plan = planCerebrium(makeTestSpec());
  const ref = refFromPlan(plan);

  useFakeServer(fake);
  beforeEach(() => {
    fake.reset();
    ctx = { baseUrls: { cerebrium: fake.url }, exec: fake.exec, sleep: async () => {} };
    creds = { apiKey: fake.token, projectId: fake.projectId };
  });

  test("the fake answers an unknown route with the gateway's 404, an unknown app with the API's", async () => {
    const get = (p: string) => fetch(`${fake.url}${p}`, { headers: { authorization: `Bearer ${fake.token}` } });
    const route = await get(`/v2/projects/${fake.projectId}/apps/x`);
    assert.deepEqual([route.status, await route.json()], [404, GATEWAY_NOT_FOUND]);
    const app = await get(`/v3/projects/${fake.projectId}/apps/${fake.projectId}-nope`);
    assert.deepEqual([app.status, await app.json()], [404, { message: `App ${fake.projectId}-nope not found` }]);
  });

  test("destroy on a wrong API path (the API is not where we call it) rejects and the app keeps running", async () => {
    await cerebriumProvider.deploy(plan, creds, ctx);
    fake.apiVersion = "v2";
    await assertProviderError(cerebriumProvider.destroy(ref, creds, ctx), { code: "failed", message: /answered 404 too \(wrong API path or project, not a missing app\).*cannot be confirmed gone/ });
    await assertProviderError(cerebriumProvider.status(ref, creds, ctx), { code: "failed", message: /cannot be confirmed gone/ });
    assert.equal(fake.apps.size, 1);
  });

  test("destroy and status against a base URL with a wrong prefix reject", async () => {
    const wrong = { ...ctx, baseUrls: { cerebrium: `${fake.url}/api` } };
    await assertProviderError(cerebriumProvider.destroy(ref, creds, wrong), { code: "failed", message: /cannot be confirmed gone/ });
    await assertProviderError(cerebriumProvider.status(ref, creds, wrong), { code: "failed", message: /cannot be confirmed gone/ });
  });

  test("destroy of an app that never existed resolves; status says gone; both after reading the app list", async () => {
    await cerebriumProvider.destroy(ref, creds, ctx);
    assert.equal((await cerebriumProvider.status(ref, creds, ctx)).state, "gone");
    const appsPath = `/v3/projects/${fake.projectId}/apps`;
    assert.deepEqual(
      fake.requests.map((r) => `${r.method} ${r.path}`),
      [`DELETE ${appsPath}/${fake.projectId}-${ref.resourceName}`, `GET ${appsPath}`, `GET ${appsPath}/${fake.projectId}-${ref.resourceName}`, `GET ${appsPath}`],
    );
  });

  test("a 404 on the app while the list still shows it (app-id format wrong) rejects", async () => {
    await cerebriumProvider.deploy(plan, creds, ctx);
    fake.failNext("DELETE", /\/apps\//, { status: 404, body: { message: "App not found" } });
    await assertProviderError(cerebriumProvider.destroy(ref, creds, ctx), { code: "failed", message: /still lists .*cannot be confirmed gone/ });
    assert.equal(fake.apps.size, 1);
  });

  test("an unknown project rejects destroy instead of calling it done", async () => {
    await assertProviderError(cerebriumProvider.destroy(ref, { ...creds, projectId: "p-nope" }, ctx), { code: "failed", message: /Project p-nope not found/ });
  });
});

describe("cerebrium: REST calls time out", () => {
  const fake = new FakeCerebrium();
  useFakeServer(fake);
  beforeEach(() => fake.reset());

  test("a stalled answer fails destroy, status and preflight within the injected request timeout", async () => {
    const provider = createCerebriumProvider({ requestTimeoutMs: 150 });
    const ctx: ProviderContext = { baseUrls: { cerebrium: fake.url }, exec: fake.exec, sleep: async () => {} };
    const creds = { apiKey: fake.token, projectId: fake.projectId };
    const ref = refFromPlan(planCerebrium(makeTestSpec()));
    fake.stallRequests = true;
    const started = Date.now();
    await assertProviderError(provider.destroy(ref, creds, ctx), { code: "timeout", message: /request timed out/ });
    await assertProviderError(provider.status(ref, creds, ctx), { code: "timeout" });
    const findings = await provider.preflight(planCerebrium(makeTestSpec()), creds, ctx);
    assert.deepEqual(findings[0] && [findings[0].code, findings[0].message.includes("request timed out")], ["unreachable", true]);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  });
});

describe("cerebrium: inference key", () => {
  const fake = new FakeCerebrium();
  useFakeServer(fake);
  beforeEach(() => fake.reset());

  test("without inferenceKey preflight warns and the router gets the service-account token; errors hide the inference key", async () => {
    const ctx: ProviderContext = { baseUrls: { cerebrium: fake.url }, exec: fake.exec, sleep: async () => {} };
    const plan = planCerebrium(makeTestSpec());
    const creds = { apiKey: fake.token, projectId: fake.projectId };
    const findings = await cerebriumProvider.preflight(plan, creds, ctx);
    assert.deepEqual(findings.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["warning", "inference_key_missing"]]);
    assert.deepEqual((await cerebriumProvider.deploy(plan, creds, ctx)).upstreamHeaders, { authorization: `Bearer ${fake.token}` });
    const inferenceKey = "eyJ.leaky_inference_key.sig";
    fake.failDeploy(`Error: build failed (key ${inferenceKey})`);
    await assertProviderError(cerebriumProvider.deploy(plan, { ...creds, inferenceKey }, ctx), { code: "failed", hides: [inferenceKey] });
  });
});

describe("cerebriumProvider catalog", () => {
  test("every GPU it lists can be planned", () => {
    for (const gpu of cerebriumProvider.supportedGpus()) assert.equal(planCerebrium(makeTestSpec({ gpu })).gpu.catalogName, gpu);
  });
});
