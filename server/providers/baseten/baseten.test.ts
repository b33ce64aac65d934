import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, test } from "node:test";
import { assertProviderError, makeTestSpec, useFakeServer } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { FakeBaseten } from "./fake";
import { basetenProvider, parsePushOutput } from "./index";
import { planBaseten } from "./plan";

const HF = "hf_baseten_secret_value_4242";
/** Quotes of every kind, a comment, a literal backslash-n and a command substitution. */
const HOSTILE = `x"; rm -rf / #'\\n$(id)`;

const EXPECTED_T4_CONFIG = `# Truss config of one Tuna deployment, rendered by server/providers/baseten (variables: README.md).
# A custom-server Truss: Baseten runs the engine image and forwards HTTP to server_port. Secret values are
# never written here: \`secrets:\` only declares Baseten workspace secrets, mounted at /secrets/<name>.
model_name: "tuna-qwen-small-k3j9-serverless"
base_image:
  image: "vllm/vllm-openai:v0.15.1"
  python_executable_path: /usr/bin/python3
docker_server:
  start_command: "sh -c 'export HF_TOKEN=\\"$(cat /secrets/hf_access_token 2>/dev/null)\\"; exec vllm serve '\\\\''Qwen/Qwen3-0.6B'\\\\'' --host 0.0.0.0 --port 8000 --served-model-name '\\\\''qwen-small'\\\\'' --max-model-len 4096 --dtype half'"
  server_port: 8000
  predict_endpoint: /v1/chat/completions
  readiness_endpoint: /health
  liveness_endpoint: /health
resources:
  accelerator: "T4"
  use_gpu: true
runtime:
  predict_concurrency: 32
secrets:
  hf_access_token: null
`;

/** Runs a start_command in a real `sh` with a stub `vllm` that prints its argv, one JSON string per line. */
function runStartCommand(startCommand: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), "tuna-bt-test-"));
  try {
    const stub = path.join(dir, "vllm");
    writeFileSync(stub, `#!/usr/bin/env node\nfor (const a of process.argv.slice(2)) console.log(JSON.stringify(a));\n`);
    chmodSync(stub, 0o755);
    const out = execFileSync("sh", ["-c", startCommand], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } }).toString();
    return out.trim().split("\n").map((l) => JSON.parse(l) as string);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("baseten plan (pure)", () => {
  test("T4: exact Truss config with --dtype half and the HF token declared, never valued", () => {
    const plan = planBaseten(makeTestSpec({ gpu: "T4", secretNames: ["HF_TOKEN"] }));
    assert.equal(plan.files["config.yaml"], EXPECTED_T4_CONFIG);
    assert.deepEqual(plan.request.autoscaling_settings, { min_replica: 0, max_replica: 1, concurrency_target: 32, scale_down_delay: 60 });
    assert.deepEqual(plan.request.secrets, { HF_TOKEN: "hf_access_token" });
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "T4", count: 1 });
  });

  test("a hostile model name is one argv element when the start command runs in a shell", () => {
    const plan = planBaseten(makeTestSpec({ model: HOSTILE }));
    const line = plan.files["config.yaml"].split("\n").find((l) => l.startsWith("  start_command: ")) ?? "";
    const startCommand = JSON.parse(line.slice("  start_command: ".length)) as string;
    const argv = runStartCommand(startCommand);
    assert.equal(argv[0], "serve");
    assert.equal(argv[1], HOSTILE);
    assert.deepEqual(argv.slice(2, 4), ["--host", "0.0.0.0"]);
    assert.throws(() => planBaseten(makeTestSpec({ model: "a\nb" })), /must not contain line breaks/);
  });

  test("H100 ×2 and unsupported GPUs; long idle timeouts are clamped to Baseten's limit", () => {
    const base = makeTestSpec();
    const plan = planBaseten(makeTestSpec({ gpu: "H100", gpuCount: 2, serverlessScaling: { ...base.serverlessScaling, idleTimeoutS: 7200 } }));
    assert.match(plan.files["config.yaml"], /accelerator: "H100:2"/);
    assert.equal((plan.request.autoscaling_settings as { scale_down_delay: number }).scale_down_delay, 3600);
    assert.throws(() => planBaseten(makeTestSpec({ gpu: "A4000" })), /not offered by Baseten/);
  });

  test("push output parsing", () => {
    assert.deepEqual(parsePushOutput("View logs at https://app.baseten.co/models/abc123/logs/dep9"), { modelId: "abc123", deploymentId: "dep9" });
    assert.deepEqual(parsePushOutput("model id: zz9"), { modelId: "zz9", deploymentId: undefined });
    assert.deepEqual(parsePushOutput("https://model-qq1.api.baseten.co/production/predict"), { modelId: "qq1", deploymentId: undefined });
  });
});

describe("baseten provider against the fake API + fake truss", () => {
  const fake = new FakeBaseten();
  let ctx: ProviderContext;
  let creds: { apiKey: string; secrets: Record<string, string> };

  useFakeServer(fake);
  beforeEach(() => {
    fake.reset();
    ctx = { baseUrls: { baseten: fake.url }, exec: fake.exec, sleep: async () => {} };
    creds = { apiKey: fake.apiKey, secrets: { HF_TOKEN: HF } };
  });

  test("preflight: missing key, unauthorised key, truss missing, fine", async () => {
    const plan = planBaseten(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    assert.deepEqual((await basetenProvider.preflight(plan, {}, ctx)).map((f) => f.code), ["missing_credentials"]);
    const bad = await basetenProvider.preflight(plan, { apiKey: "bt_wrong_key_77777777" }, ctx);
    assert.deepEqual(bad.map((f) => [f.level, f.code]), [["error", "unauthorized"]]);
    assert.ok(!JSON.stringify(bad).includes("bt_wrong_key_77777777"));
    fake.trussInstalled = false;
    const noCli = await basetenProvider.preflight(plan, creds, ctx);
    // The API accepted the key even though the CLI is missing (the vault's "Test" reads credentials_accepted).
    assert.deepEqual(noCli.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["error", "cli_missing"]]);
    assert.match(noCli[1].message, /pip install truss/);
    fake.trussInstalled = true;
    assert.deepEqual((await basetenProvider.preflight(plan, creds, ctx)).map((f) => [f.level, f.code]), [["info", "credentials_accepted"]]);
  });

  test("deploy → status → destroy with exact requests and CLI args; destroy twice succeeds", async () => {
    const plan = planBaseten(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const comp = await basetenProvider.deploy(plan, creds, ctx);
    const model = fake.models.get("tuna-qwen-small-k3j9-serverless");
    assert.ok(model);
    const deploymentId = fake.production(model)?.id;
    assert.deepEqual(comp, {
      provider: "baseten",
      kind: "serverless",
      endpointUrl: `https://model-${model.id}.api.baseten.co/environments/production/sync`,
      upstreamHeaders: { authorization: `Api-Key ${fake.apiKey}` },
      externalIds: { modelId: model.id, deploymentId },
    });
    assert.deepEqual(fake.httpLines(), ["GET /v1/models", "POST /v1/secrets", `PATCH /v1/models/${model.id}/deployments/${deploymentId}/autoscaling_settings`]);
    assert.ok(fake.requests.every((r) => r.headers.authorization === `Api-Key ${fake.apiKey}`));
    assert.deepEqual(fake.requests[1].body, { name: "hf_access_token", value: HF });
    assert.deepEqual(fake.requests[2].body, { min_replica: 0, max_replica: 1, concurrency_target: 32, scale_down_delay: 60 });
    assert.deepEqual(fake.commandLines(), ["truss push . --remote baseten --publish"]);
    const push = fake.calls[0];
    assert.equal(push.files["config.yaml"], plan.files["config.yaml"]);
    assert.deepEqual(Object.keys(push.env), ["HOME"]);
    assert.ok(!push.args.join(" ").includes(fake.apiKey), "the key is not on the command line");
    assert.ok(!push.files["config.yaml"].includes(fake.apiKey) && !push.files["config.yaml"].includes(HF));

    const ref = refFromPlan(plan, comp.externalIds);
    const states: string[] = [];
    for (let i = 0; i < 3; i++) states.push((await basetenProvider.status(ref, creds, ctx)).state);
    assert.deepEqual(states, ["creating", "creating", "scaled_to_zero"]);
    fake.setStatus(model.id, "ACTIVE", 2);
    assert.deepEqual((await basetenProvider.status(ref, creds, ctx)).replicas, { ready: 2, total: 2 });

    // Deploying again finds the model by name and its healthy production deployment: adopted, no second push,
    // but the secret is written again (the vault value may have been rotated).
    fake.requests.length = 0;
    creds.secrets.HF_TOKEN = `${HF}-rotated`;
    const again = await basetenProvider.deploy(plan, creds, ctx);
    assert.equal(fake.calls.length, 1);
    assert.equal(fake.models.size, 1);
    assert.deepEqual(again, comp);
    assert.deepEqual(fake.httpLines(), [
      "GET /v1/models",
      `GET /v1/models/${model.id}/deployments/production`,
      "POST /v1/secrets",
      `PATCH /v1/models/${model.id}/deployments/${deploymentId}/autoscaling_settings`,
    ]);
    assert.equal(fake.secrets.get("hf_access_token"), `${HF}-rotated`);

    fake.requests.length = 0;
    await basetenProvider.destroy(ref, creds, ctx);
    await basetenProvider.destroy(ref, creds, ctx);
    await basetenProvider.cleanupStorage(ref, creds, ctx);
    assert.equal(fake.models.size, 0);
    assert.deepEqual(fake.httpLines(), ["GET /v1/models", `DELETE /v1/models/${model.id}`, "GET /v1/models", `DELETE /v1/models/${model.id}`]);
    assert.equal((await basetenProvider.status(ref, creds, ctx)).state, "gone");
  });

  test("destroy after a half-finished deploy (push uploaded the model, then failed) leaves the fake empty", async () => {
    const plan = planBaseten(makeTestSpec());
    fake.failPush(`Error: deployment failed to start (key ${fake.apiKey})`, true);
    await assertProviderError(basetenProvider.deploy(plan, creds, ctx), { code: "failed", message: /truss push failed \(exit 1\)/, hides: [fake.apiKey] });
    assert.equal(fake.models.size, 1);
    await basetenProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.models.size, 0);
  });

  test("a retried deploy after a push that created the model and then failed pushes again (promoting) and ends ready", async () => {
    const plan = planBaseten(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    fake.failPush("Error: build failed: could not pull base image", true, "BUILD_FAILED");
    await assertProviderError(basetenProvider.deploy(plan, creds, ctx), { code: "failed", message: /truss push failed \(exit 1\): Error: build failed/ });
    const model = fake.models.get("tuna-qwen-small-k3j9-serverless");
    assert.ok(model);
    const failed = fake.production(model);
    assert.equal(failed?.status, "BUILD_FAILED");

    fake.requests.length = 0;
    const comp = await basetenProvider.deploy(plan, creds, ctx);
    assert.deepEqual(fake.commandLines(), ["truss push . --remote baseten --publish", "truss push . --remote baseten --publish --promote"]);
    assert.equal(fake.models.size, 1);
    const pushed = model.deployments.at(-1);
    assert.ok(pushed && pushed.id !== failed?.id);
    assert.deepEqual(comp.externalIds, { modelId: model.id, deploymentId: pushed.id });
    assert.deepEqual(fake.httpLines(), [
      "GET /v1/models",
      `GET /v1/models/${model.id}/deployments/production`,
      "POST /v1/secrets",
      `PATCH /v1/models/${model.id}/deployments/${pushed.id}/autoscaling_settings`,
    ]);
    assert.equal(pushed.autoscaling_settings.concurrency_target, 32, "the settings went to the new deployment");

    // Status follows the new deployment (production still holds the failed one until the new one is ready).
    const ref = refFromPlan(plan, comp.externalIds);
    const states: string[] = [];
    for (let i = 0; i < 3; i++) states.push((await basetenProvider.status(ref, creds, ctx)).state);
    assert.deepEqual(states, ["creating", "creating", "scaled_to_zero"]);
    assert.equal(model.productionId, pushed.id, "promoted once ready");
    // Status without a deployment id reads production, which is now the new deployment.
    assert.equal((await basetenProvider.status(refFromPlan(plan, { modelId: model.id }), creds, ctx)).state, "scaled_to_zero");
  });

  test("a model with no production deployment is pushed to again; one still building is adopted", async () => {
    const plan = planBaseten(makeTestSpec());
    fake.failPush("Error: upload interrupted", true, null);
    await assert.rejects(basetenProvider.deploy(plan, creds, ctx), /truss push failed/);
    await basetenProvider.deploy(plan, creds, ctx);
    assert.equal(fake.calls.length, 2);

    // A push that uploaded, then lost its connection: the build goes on, so the next run adopts it.
    const other = planBaseten(makeTestSpec({ name: "tuna-other-model-x1y2" }));
    fake.failPush("Error: connection reset", true, "BUILDING");
    await assert.rejects(basetenProvider.deploy(other, creds, ctx), /truss push failed/);
    const comp = await basetenProvider.deploy(other, creds, ctx);
    assert.equal(fake.calls.length, 3);
    const model = fake.models.get("tuna-other-model-x1y2-serverless");
    assert.deepEqual(comp.externalIds, { modelId: model?.id, deploymentId: model?.productionId });
  });

  test("a stalled API answer fails with a timeout instead of hanging", { timeout: 10_000 }, async () => {
    const { BasetenClient } = await import("./client");
    fake.stallHttp("GET /v1/models");
    const started = Date.now();
    await assertProviderError(new BasetenClient(creds, ctx, { requestTimeoutMs: 200 }).listModels(), { code: "timeout", message: /GET \/models: request timed out/ });
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  });

  test("errors: unauthorised key, rate limit retried, missing secret value", async () => {
    const plan = planBaseten(makeTestSpec());
    await assertProviderError(basetenProvider.deploy(plan, { apiKey: "bt_not_the_key_123456" }, ctx), {
      code: "unauthorized",
      status: 401,
      message: /Invalid API key/,
      hides: ["bt_not_the_key_123456"],
    });
    fake.failHttp("GET /v1/models", 2, 429);
    await basetenProvider.deploy(plan, creds, ctx);
    assert.equal(fake.requests.filter((r) => r.method === "GET" && r.path === "/v1/models").length, 4);
    await assert.rejects(basetenProvider.deploy(planBaseten(makeTestSpec({ name: "other", secretNames: ["HF_TOKEN"] })), { apiKey: fake.apiKey }, ctx), /secret HF_TOKEN has no value/);
  });
});

describe("basetenProvider catalog", () => {
  test("every GPU it lists can be planned", () => {
    for (const gpu of basetenProvider.supportedGpus()) assert.equal(planBaseten(makeTestSpec({ gpu })).gpu.catalogName, gpu);
  });
});
