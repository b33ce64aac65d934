import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { FakeSkyPilotServer, probeLockedOut, validateServiceTask } from "../../skypilot/fake";
import type { ProviderError } from "../base/errors";
import { assertProviderError, makeTestSpec, useFakeServer } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { mapServiceStatus, skyserveProvider } from "./index";
import { cloudOfRegion, planSkyServe, taskWithSecrets } from "./plan";

// Outbound URLs to private addresses need the operator's allowlist: the fake SkyPilot API server listens on loopback and reports its load balancers at 10.0.0.1.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1,10.0.0.1";

const TOKEN = "sky_service_account_token_abcdef123456";
const HF = "hf_secret_value_do_not_leak_123";
/** Quotes of every kind, a comment, a literal backslash-n and a command substitution. */
const HOSTILE = `x"; rm -rf / #'\\n$(id)`;
const ctx: ProviderContext = { sleep: async () => {}, timeoutMs: 10_000 };
const KEY_SHAPE = /^tuna_up_[A-Za-z0-9_-]{43}$/;

/** The upstream key inside a task YAML sent to the API server. */
function keyInTask(task: unknown): string {
  const m = /^ {2}VLLM_API_KEY: "([^"]*)"$/m.exec(String(task));
  assert.ok(m, "the task carries VLLM_API_KEY in its secrets");
  return m[1];
}

const EXPECTED_T4_YAML = `# SkyServe service of one Tuna deployment, rendered by server/providers/skyserve (variables: README.md).
# Secret values are never written here: \`secrets:\` lists names with null values and the provider fills them
# in only in the request it sends to the SkyPilot API server. VLLM_API_KEY is the endpoint's upstream key: the
# engine answers /v1/* only with it, so the readiness probe uses the open health path.
name: "tuna-qwen-small-k3j9-spot"

service:
  readiness_probe:
    path: "/health"
    initial_delay_seconds: 900
    timeout_seconds: 15
  replica_policy:
    min_replicas: 0
    max_replicas: 3
    target_qps_per_replica: 2.5
    upscale_delay_seconds: 5
    downscale_delay_seconds: 60

resources:
  accelerators: "T4:1"
  use_spot: true
  ports: 8001
  disk_size: 100
  image_id: "docker:vllm/vllm-openai:v0.15.1"
  any_of:
    - {cloud: aws, region: "us-east-1"}
    - {cloud: gcp, region: "us-central1"}

secrets:
  HF_TOKEN: null
  VLLM_API_KEY: null

run: "vllm serve 'Qwen/Qwen3-0.6B' --host 0.0.0.0 --port 8001 --served-model-name 'qwen-small' --max-model-len 4096 --dtype half"
`;

function t4Spec() {
  const base = makeTestSpec();
  return makeTestSpec({
    gpu: "T4",
    port: 8001,
    secretNames: ["HF_TOKEN"],
    spot: { clouds: ["aws", "gcp"], regions: ["us-east-1", "us-central1"] },
    spotScaling: { ...base.spotScaling, maxReplicas: 3, targetQpsPerReplica: 2.5, readinessInitialDelayS: 900 },
  });
}

describe("skyserve plan (pure)", () => {
  test("T4 renders the exact service YAML: spot, any_of, /health probe, scale to zero, --dtype half, no secret value", () => {
    const plan = planSkyServe(t4Spec());
    assert.equal(plan.files["service.yaml"], EXPECTED_T4_YAML);
    assert.equal(plan.resourceName, "tuna-qwen-small-k3j9-spot");
    assert.equal(plan.kind, "spot");
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "T4", count: 1 });
    assert.equal(plan.region, "aws/us-east-1,gcp/us-central1");
    assert.deepEqual(plan.secretEnv, ["HF_TOKEN"]);
    assert.ok(plan.notes.includes("T4 is Turing: --dtype half"));
    assert.ok(plan.notes.some((n) => n.includes("upstream key") && n.includes("/health")));
    assert.equal(validateServiceTask(plan.files["service.yaml"]), null);
    assert.deepEqual(planSkyServe(t4Spec()), plan, "plan is deterministic");
  });

  test("a hostile model name stays one quoted value in YAML and in the shell command; line breaks are refused", () => {
    const plan = planSkyServe(makeTestSpec({ model: HOSTILE }));
    const run = plan.files["service.yaml"].split("\n").find((l) => l.startsWith("run: ")) ?? "";
    assert.equal(run, String.raw`run: "vllm serve 'x\"; rm -rf / #'\\''\\n$(id)' --host 0.0.0.0 --port 8000 --served-model-name 'qwen-small' --max-model-len 4096"`);
    // The YAML scalar (JSON-compatible) decodes to the shell line with the model single-quoted.
    assert.equal(JSON.parse(run.slice(5)), String.raw`vllm serve 'x"; rm -rf / #'\''\n$(id)' --host 0.0.0.0 --port 8000 --served-model-name 'qwen-small' --max-model-len 4096`);
    assert.throws(() => planSkyServe(makeTestSpec({ model: "a\nb" })), /must not contain line breaks/);
  });

  test("L40S ×4 on one cloud without regions; A100-80GB uses SkyPilot's name", () => {
    const plan = planSkyServe(makeTestSpec({ gpu: "L40S", gpuCount: 4, spot: { clouds: ["gcp"] } }));
    assert.match(plan.files["service.yaml"], /accelerators: "L40S:4"/);
    assert.match(plan.files["service.yaml"], /any_of:\n {4}- \{cloud: gcp\}\n/);
    assert.match(plan.files["service.yaml"], /--tensor-parallel-size 4/);
    assert.doesNotMatch(plan.files["service.yaml"], /--dtype/);
    assert.match(plan.files["service.yaml"], /- \{cloud: gcp\}\n\nsecrets:\n {2}VLLM_API_KEY: null\n\nrun: /, "the key is declared even without workload secrets");
    assert.deepEqual(plan.secretEnv, [], "the key is not a vault secret");
    assert.match(planSkyServe(makeTestSpec({ gpu: "A100-80GB" })).files["service.yaml"], /accelerators: "A100-80GB:1"/);
  });

  test("upstream key: SGLang reads it from the env at start; the name and the flag are reserved; a /v1 probe would lock the replicas out", () => {
    const sglang = planSkyServe(makeTestSpec({ engine: { kind: "sglang" } })).files["service.yaml"];
    const run = sglang.split("\n").find((l) => l.startsWith("run: ")) ?? "";
    assert.equal(JSON.parse(run.slice(5)), `python3 -m sglang.launch_server --model-path 'Qwen/Qwen3-0.6B' --host 0.0.0.0 --port 8000 --served-model-name 'qwen-small' --api-key "$VLLM_API_KEY"`);
    assert.throws(() => planSkyServe(makeTestSpec({ secretNames: ["VLLM_API_KEY"] })), (e: ProviderError) => e.code === "validation" && /VLLM_API_KEY is reserved/.test(e.message));
    assert.throws(() => planSkyServe(makeTestSpec({ engine: { kind: "vllm", extraArgs: ["--api-key", "abc"] } })), /--api-key is set by Tuna/);
    // Why /health: with the key set, the engine answers a header-less probe on /v1/models with 401.
    const task = taskWithSecrets(planSkyServe(makeTestSpec()).files["service.yaml"], ["VLLM_API_KEY"], { VLLM_API_KEY: "tuna_up_x" });
    assert.equal(probeLockedOut(task), false);
    assert.equal(probeLockedOut(task.replace('path: "/health"', "path: /v1/models")), true);
  });

  test("regions are paired only with their own cloud; GPUs without a SkyPilot name are rejected", () => {
    assert.equal(cloudOfRegion("us-east-1"), "aws");
    assert.equal(cloudOfRegion("europe-west4"), "gcp");
    assert.equal(cloudOfRegion("westus2"), "azure");
    const plan = planSkyServe(makeTestSpec({ spot: { clouds: ["aws", "azure"], regions: ["us-west-2", "us-central1"] } }));
    assert.equal(plan.region, "aws/us-west-2");
    assert.ok(plan.notes.some((n) => n.includes("azure is not used")));
    assert.throws(() => planSkyServe(makeTestSpec({ spot: { clouds: ["azure"], regions: ["us-east-1"] } })), /no usable spot location/);
    assert.throws(() => planSkyServe(makeTestSpec({ gpu: "A4000" })), (e: ProviderError) => e.code === "validation" && /not offered by SkyPilot/.test(e.message));
  });
});

describe("skyserve provider against the fake SkyPilot API server", () => {
  const fake = new FakeSkyPilotServer({ token: TOKEN });
  let creds: { apiServerUrl: string; token: string; secrets: Record<string, string> };

  useFakeServer(fake);
  beforeEach(() => {
    fake.requests.length = 0;
    fake.services.clear();
    fake.storage.clear();
    fake.release();
    fake.enabledClouds = ["AWS", "GCP", "Azure"];
    fake.offers = [
      ["AWS", "g4dn.xlarge", "T4", 1, 4, 16, 16, 0.53, 0.22, "us-east-1"],
      ["AWS", "g6.xlarge", "L4", 1, 4, 24, 16, 0.8, 0.3, "us-east-1"],
      ["GCP", "n1-standard-4", "T4", 1, 4, 16, 15, 0.35, null, "us-central1"],
    ];
    creds = { apiServerUrl: fake.url, token: TOKEN, secrets: { HF_TOKEN: HF } };
  });

  test("preflight: missing credentials, bad token, missing secret", async () => {
    const plan = planSkyServe(t4Spec());
    assert.deepEqual((await skyserveProvider.preflight(plan, undefined, ctx)).map((f) => f.code), ["missing_credentials"]);
    const bad = await skyserveProvider.preflight(plan, { apiServerUrl: fake.url, token: "sky_nope_nope_nope" }, ctx);
    assert.deepEqual(bad.map((f) => [f.level, f.code]), [["error", "unauthorized"]]);
    assert.ok(!JSON.stringify(bad).includes("sky_nope_nope_nope"));
    const noSecret = await skyserveProvider.preflight(plan, { apiServerUrl: fake.url, token: TOKEN }, ctx);
    assert.ok(noSecret.some((f) => f.code === "missing_secret" && f.level === "error"));
  });

  test("preflight: a location without a spot offer is a warning; none at all is an error; disabled cloud is reported", async () => {
    const plan = planSkyServe(t4Spec());
    const partial = await skyserveProvider.preflight(plan, creds, ctx);
    assert.deepEqual(partial.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["warning", "gpu_unavailable_in_region"]]);
    assert.match(partial[1].message, /T4:1 in gcp\/us-central1/);
    const lastList = fake.requestsTo("/list_accelerators").at(-1)?.body as Record<string, unknown>;
    assert.equal(lastList.name_filter, "^T4$");
    assert.equal(lastList.quantity_filter, 1);
    assert.deepEqual(lastList.clouds, ["aws", "gcp"]);
    assert.equal(lastList.all_regions, true);

    const h100 = planSkyServe(makeTestSpec({ gpu: "H100", spot: { clouds: ["aws"], regions: ["eu-west-1"] } }));
    const none = await skyserveProvider.preflight(h100, creds, ctx);
    assert.deepEqual(none.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["error", "gpu_unavailable_in_region"]]);

    fake.enabledClouds = ["AWS"];
    const gcpOnly = planSkyServe(makeTestSpec({ spot: { clouds: ["gcp"] } }));
    const disabled = await skyserveProvider.preflight(gcpOnly, creds, ctx);
    assert.deepEqual(disabled.map((f) => [f.level, f.code]), [["info", "credentials_accepted"], ["error", "cloud_not_enabled"]]);
  });

  test("preflight: unreachable server", async () => {
    const plan = planSkyServe(t4Spec());
    const f = await skyserveProvider.preflight(plan, { ...creds, apiServerUrl: "http://127.0.0.1:1" }, ctx);
    assert.deepEqual(f.map((x) => x.code), ["unreachable"]);
  });

  test("deploy → status → destroy, with exact requests; secret only in the request; destroy twice succeeds", async () => {
    const plan = planSkyServe(t4Spec());
    assert.deepEqual(await skyserveProvider.preflight(plan, { ...creds }, ctx).then((f) => f.filter((x) => x.level === "error")), []);
    fake.requests.length = 0;

    const comp = await skyserveProvider.deploy(plan, creds, ctx);
    assert.deepEqual(fake.submittedRoutes(), ["POST /serve/status", "POST /validate", "POST /serve/up"]);
    const up = fake.requestsTo("/serve/up")[0].body as Record<string, unknown>;
    const key = keyInTask(up.task);
    assert.match(key, KEY_SHAPE);
    assert.deepEqual(comp, {
      provider: "skyserve",
      kind: "spot",
      endpointUrl: "http://10.0.0.1:30001",
      upstreamHeaders: { authorization: `Bearer ${key}` },
      externalIds: { serviceName: "tuna-qwen-small-k3j9-spot" },
    });
    assert.equal(up.service_name, "tuna-qwen-small-k3j9-spot");
    // The key travels only as a SkyPilot secret (an env var on the replica), never on the run line.
    assert.equal(up.task, EXPECTED_T4_YAML.replace("  HF_TOKEN: null", `  HF_TOKEN: "${HF}"`).replace("  VLLM_API_KEY: null", `  VLLM_API_KEY: "${key}"`));
    assert.equal((fake.requestsTo("/validate")[0].body as Record<string, unknown>).dag, up.task);
    for (const secret of [HF, key]) assert.ok(!JSON.stringify(plan).includes(secret), "the plan never holds a secret");

    const ref = refFromPlan(plan, comp.externalIds);
    // min_replicas 0: controller starts, then SkyServe sits at NO_REPLICA (scaled to zero).
    assert.equal((await skyserveProvider.status(ref, creds, ctx)).state, "creating");
    const zero = await skyserveProvider.status(ref, creds, ctx);
    assert.equal(zero.state, "scaled_to_zero");
    assert.deepEqual(zero.replicas, { ready: 0, total: 0 });
    assert.equal(zero.endpointUrl, "http://10.0.0.1:30001");

    // Deploying again reuses the service instead of creating a second one; SkyPilot cannot tell the old key,
    // so a new one is rolled out with `serve update` and returned.
    fake.requests.length = 0;
    const again = await skyserveProvider.deploy(plan, creds, ctx);
    assert.equal(again.endpointUrl, comp.endpointUrl);
    assert.deepEqual(fake.submittedRoutes(), ["POST /serve/status", "POST /validate", "POST /serve/update"]);
    assert.equal(fake.services.size, 1);
    const update = fake.requestsTo("/serve/update")[0].body as Record<string, unknown>;
    assert.deepEqual([update.service_name, update.mode], ["tuna-qwen-small-k3j9-spot", "rolling"]);
    const newKey = keyInTask(update.task);
    assert.match(newKey, KEY_SHAPE);
    assert.notEqual(newKey, key);
    assert.deepEqual(again.upstreamHeaders, { authorization: `Bearer ${newKey}` });
    assert.equal(keyInTask(fake.services.get(plan.resourceName)?.task), newKey, "the service runs the key the router got");

    fake.addStorage("tuna-qwen-small-k3j9-spot-cache");
    fake.addStorage("someone-elses-bucket");
    await skyserveProvider.destroy(ref, creds, ctx);
    await skyserveProvider.cleanupStorage(ref, creds, ctx);
    assert.equal(fake.services.size, 0);
    assert.deepEqual([...fake.storage.keys()], ["someone-elses-bucket"]);
    const down = fake.requestsTo("/serve/down")[0].body as Record<string, unknown>;
    assert.deepEqual([down.service_names, down.all, down.purge], [["tuna-qwen-small-k3j9-spot"], false, false]);

    await skyserveProvider.destroy(ref, creds, ctx);
    await skyserveProvider.cleanupStorage(ref, creds, ctx);
    assert.equal((await skyserveProvider.status(ref, creds, ctx)).state, "gone");
  });

  test("replicas progress PENDING → PROVISIONING → STARTING → READY; preemption and failures map to our states", async () => {
    const base = makeTestSpec();
    const plan = planSkyServe(makeTestSpec({ spotScaling: { ...base.spotScaling, minReplicas: 2 } }));
    const ref = refFromPlan(plan, (await skyserveProvider.deploy(plan, creds, ctx)).externalIds);
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await skyserveProvider.status(ref, creds, ctx);
      seen.push(`${s.state}:${s.replicas?.ready}/${s.replicas?.total}`);
    }
    assert.deepEqual(seen, ["creating:0/2", "creating:0/2", "creating:0/2", "ready:2/2", "ready:2/2"]);
    fake.setReplicaStatus(plan.resourceName, 1, "PREEMPTED");
    const pre = await skyserveProvider.status(ref, creds, ctx);
    assert.deepEqual([pre.state, pre.replicas], ["ready", { ready: 1, total: 1 }]);
    assert.match(pre.message ?? "", /1 preempted/);
    fake.setReplicaStatus(plan.resourceName, 2, "FAILED_PROBING");
    const failed = await skyserveProvider.status(ref, creds, ctx);
    assert.equal(failed.state, "scaled_to_zero");
    fake.setReplicaStatus(plan.resourceName, 1, "FAILED_PROVISION");
    assert.equal((await skyserveProvider.status(ref, creds, ctx)).state, "failed");
    await skyserveProvider.destroy(ref, creds, ctx);
    assert.equal(fake.services.size, 0);
  });

  test("every deployment gets its own key; replicas become READY behind the /health probe", async () => {
    const base = makeTestSpec();
    const a = await skyserveProvider.deploy(planSkyServe(makeTestSpec({ spotScaling: { ...base.spotScaling, minReplicas: 1 } })), creds, ctx);
    const b = await skyserveProvider.deploy(planSkyServe(makeTestSpec({ name: "tuna-other-model-x1y2" })), { apiServerUrl: fake.url, token: TOKEN }, ctx);
    const [keyA, keyB] = fake.requestsTo("/serve/up").map((r) => keyInTask((r.body as Record<string, unknown>).task));
    assert.match(keyA, KEY_SHAPE);
    assert.match(keyB, KEY_SHAPE);
    assert.notEqual(keyA, keyB);
    assert.deepEqual([a.upstreamHeaders, b.upstreamHeaders], [{ authorization: `Bearer ${keyA}` }, { authorization: `Bearer ${keyB}` }]);
    const ref = refFromPlan(planSkyServe(makeTestSpec()), a.externalIds);
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push((await skyserveProvider.status(ref, creds, ctx)).state);
    assert.equal(seen.at(-1), "ready", seen.join(" → "));
  });

  test("relaunching a failed service rolls a new key out to fresh replicas and returns it", async () => {
    const base = makeTestSpec();
    const plan = planSkyServe(makeTestSpec({ spotScaling: { ...base.spotScaling, minReplicas: 1 } }));
    const first = await skyserveProvider.deploy(plan, creds, ctx);
    const ref = refFromPlan(plan, first.externalIds);
    await skyserveProvider.status(ref, creds, ctx);
    fake.setReplicaStatus(plan.resourceName, 1, "FAILED_PROVISION");
    assert.equal((await skyserveProvider.status(ref, creds, ctx)).state, "failed");

    fake.requests.length = 0;
    const relaunched = await skyserveProvider.deploy(plan, creds, ctx);
    assert.deepEqual(fake.submittedRoutes(), ["POST /serve/status", "POST /validate", "POST /serve/update"]);
    const key = keyInTask(fake.services.get(plan.resourceName)?.task);
    assert.deepEqual(relaunched.upstreamHeaders, { authorization: `Bearer ${key}` });
    assert.notDeepEqual(relaunched.upstreamHeaders, first.upstreamHeaders);
    assert.equal(relaunched.endpointUrl, first.endpointUrl);
    const states: string[] = [];
    for (let i = 0; i < 4; i++) states.push((await skyserveProvider.status(ref, creds, ctx)).state);
    assert.equal(states.at(-1), "ready", states.join(" → "));
    assert.equal(fake.services.get(plan.resourceName)?.version, 2);
  });

  test("given the key the router holds (ctx.upstreamKey), a re-run pushes that key again instead of rolling a new one", async () => {
    const plan = planSkyServe(makeTestSpec());
    const first = await skyserveProvider.deploy(plan, creds, ctx);
    const key = keyInTask(fake.services.get(plan.resourceName)?.task);
    fake.requests.length = 0;
    const again = await skyserveProvider.deploy(plan, creds, { ...ctx, upstreamKey: key });
    assert.deepEqual(fake.submittedRoutes(), ["POST /serve/status", "POST /validate", "POST /serve/update"]);
    assert.equal(keyInTask((fake.requestsTo("/serve/update")[0].body as Record<string, unknown>).task), key);
    assert.deepEqual(again.upstreamHeaders, first.upstreamHeaders);
    assert.equal(keyInTask(fake.services.get(plan.resourceName)?.task), key, "the service still runs the router's key");
  });

  test("errors that echo the task (serve up, serve update) never carry the key or the workload secrets", async () => {
    const plan = planSkyServe(t4Spec());
    const echoed: string[] = [];
    const echo = (body: Record<string, unknown>) => {
      echoed.push(keyInTask(body.task));
      return `could not parse task:\n${String(body.task)}`;
    };
    fake.failRequest("/serve/up", 1, "ValueError", echo);
    const up = await skyserveProvider.deploy(plan, creds, ctx).then(() => null, (e: unknown) => e as ProviderError);
    await skyserveProvider.deploy(plan, creds, ctx);
    fake.failRequest("/serve/update", 1, "ValueError", echo);
    const update = await skyserveProvider.deploy(plan, creds, ctx).then(() => null, (e: unknown) => e as ProviderError);
    assert.equal(echoed.length, 2);
    for (const err of [up, update]) {
      assert.ok(err, "deploy failed");
      assert.equal(err.code, "validation");
      assert.match(err.message, /ValueError: could not parse task/);
      for (const secret of [...echoed, HF, TOKEN]) assert.ok(!err.message.includes(secret), `the error leaks a secret: ${err.message}`);
    }
  });

  test("an endpoint that appears only after the controller starts (and without a scheme) is waited for and normalised", async () => {
    const late = new FakeSkyPilotServer({ token: TOKEN, lateEndpoint: true, endpointFor: () => "34.1.2.3:30001" });
    await late.start();
    try {
      const plan = planSkyServe(makeTestSpec());
      const comp = await skyserveProvider.deploy(plan, { apiServerUrl: late.url, token: TOKEN }, ctx);
      assert.equal(comp.endpointUrl, "http://34.1.2.3:30001");
      // One status before `serve up` (idempotency check), one after it returned no endpoint.
      assert.equal(late.requestsTo("/serve/status").length, 2);
    } finally {
      await late.close();
    }
  });

  test("waiting for an endpoint that never comes is bounded by ctx.timeoutMs", async () => {
    const never = new FakeSkyPilotServer({ token: TOKEN, endpointFor: () => null });
    await never.start();
    try {
      await assert.rejects(
        skyserveProvider.deploy(planSkyServe(makeTestSpec()), { apiServerUrl: never.url, token: TOKEN }, ctx),
        (e: ProviderError) => e.code === "timeout" && e.retryable && /no load-balancer endpoint/.test(e.message),
      );
      assert.equal(never.services.size, 1, "the service is left for a re-run or destroy");
    } finally {
      await never.close();
    }
  });

  test("a SkyPilot API server that accepts connections but never answers fails status and destroy within ctx.timeoutMs", async () => {
    const ref = refFromPlan(planSkyServe(t4Spec()));
    const short: ProviderContext = { ...ctx, timeoutMs: 200 };
    fake.stalledPaths.add("/serve/status");
    fake.stalledPaths.add("/serve/down");
    const started = Date.now();
    try {
      await assertProviderError(skyserveProvider.status(ref, creds, short), { code: "timeout", hides: [TOKEN, HF] });
      await assertProviderError(skyserveProvider.destroy(ref, creds, short), { code: "timeout", hides: [TOKEN, HF] });
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    } finally {
      fake.release();
    }
  });

  test("status mapping of controller failures", () => {
    assert.equal(mapServiceStatus({ name: "s", status: "CONTROLLER_FAILED", endpoint: null, replica_info: [] }).state, "failed");
    assert.equal(mapServiceStatus({ name: "s", status: "SHUTTING_DOWN", endpoint: null, replica_info: [] }).state, "gone");
    assert.equal(mapServiceStatus(undefined).state, "gone");
  });

  test("destroy after a half-finished deploy (client timed out while serve up ran) leaves the fake empty", async () => {
    const plan = planSkyServe(t4Spec());
    fake.heldRoutes.add("/serve/up");
    await assert.rejects(skyserveProvider.deploy(plan, creds, { ...ctx, timeoutMs: 3_000 }), (e: ProviderError) => e.code === "timeout" && e.retryable);
    fake.release(); // the server finishes serve up after the client gave up
    assert.equal(fake.services.size, 1);
    await skyserveProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.services.size, 0);
  });

  test("a failed serve up surfaces the SkyPilot error without secrets, and destroy is then a no-op", async () => {
    const plan = planSkyServe(t4Spec());
    fake.failRequest("/serve/up", 1, "ResourcesUnavailableError", `No spot capacity (token ${TOKEN}, hf ${HF})`);
    await assertProviderError(skyserveProvider.deploy(plan, creds, ctx), {
      code: "quota",
      provider: "skyserve",
      message: /ResourcesUnavailableError: No spot capacity/,
      hides: [TOKEN, HF],
    });
    await skyserveProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.services.size, 0);
    assert.equal(fake.requestsTo("/serve/down").length, 0);
  });

  test("deploy with an unauthorised token fails clearly without the token", async () => {
    const plan = planSkyServe(t4Spec());
    await assertProviderError(skyserveProvider.deploy(plan, { ...creds, token: "sky_bad_token_for_test_0000" }, ctx), { code: "unauthorized", hides: ["sky_bad_token_for_test_0000"] });
  });
});

describe("skyserveProvider catalog", () => {
  test("every GPU it lists can be planned", () => {
    for (const gpu of skyserveProvider.supportedGpus()) assert.equal(planSkyServe(makeTestSpec({ gpu })).gpu.catalogName, gpu);
  });
});
