import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, beforeEach, describe, test } from "node:test";
import { ProviderError } from "../base/errors";
import { assertProviderError, makeTestSpec } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { CloudrunFake } from "./fake";
import { cloudrunProvider } from "./index";
import { planCloudrun } from "./plan";

const PROJECT = "tuna-test-proj";
const EMAIL = "deployer@tuna-test-proj.iam.gserviceaccount.com";
const HF_TOKEN = "hf_SECRETtoken_abcdef123456";
const { privateKey, publicKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
const other = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
const PRIVATE_KEY_BODY_LINE = privateKey.split("\n")[1];

let fake: CloudrunFake;
let ctx: ProviderContext;
const saJson = (key = privateKey) =>
  JSON.stringify({ type: "service_account", project_id: PROJECT, private_key_id: "kid123", private_key: key, client_email: EMAIL, token_uri: fake.tokenUri });
const creds = () => ({ serviceAccountJson: saJson(), secrets: { HF_TOKEN } });

before(async () => {
  fake = await new CloudrunFake({ project: PROJECT, clientEmail: EMAIL, publicKeyPem: publicKey }).start();
});
after(() => fake.close());
beforeEach(() => {
  fake.services.clear();
  fake.secrets.clear();
  fake.requests.length = 0;
  fake.runApiEnabled = true;
  fake.tokenLifetimeS = 3599;
  fake.now = () => Date.now();
  fake.operationPolls = 2;
  ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
});

const servicesPath = (region = "us-central1") => `/v2/projects/${PROJECT}/locations/${region}/services`;

describe("cloudrun plan", () => {
  test("exact service body for L4: GPU selector, resources, probe on spec.port, scaling, secret ref", () => {
    const spec = makeTestSpec({ port: 8123, secretNames: ["HF_TOKEN"] });
    const plan = planCloudrun(spec);
    assert.equal(plan.region, "us-central1");
    assert.deepEqual(plan.gpu, { catalogName: "L4", providerGpuId: "nvidia-l4", count: 1 });
    assert.equal((plan.request as any).serviceId, "tuna-qwen-small-k3j9");
    assert.deepEqual((plan.request as any).service, {
      labels: { "managed-by": "tuna", "tuna-deployment": "dep_test_1" },
      ingress: "INGRESS_TRAFFIC_ALL",
      invokerIamDisabled: false,
      template: {
        nodeSelector: { accelerator: "nvidia-l4" },
        gpuZonalRedundancyDisabled: true,
        scaling: { minInstanceCount: 0, maxInstanceCount: 1 },
        maxInstanceRequestConcurrency: 32,
        timeout: "600s",
        executionEnvironment: "EXECUTION_ENVIRONMENT_GEN2",
        containers: [
          {
            name: "engine",
            image: "vllm/vllm-openai:v0.15.1",
            command: ["vllm"],
            args: ["serve", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", "--port", "8123", "--served-model-name", "qwen-small", "--max-model-len", "4096"],
            ports: [{ containerPort: 8123, name: "http1" }],
            env: [{ name: "HF_TOKEN", valueSource: { secretKeyRef: { secret: "tuna-qwen-small-k3j9-hf-token", version: "latest" } } }],
            resources: { limits: { cpu: "8", memory: "32Gi", "nvidia.com/gpu": "1" }, cpuIdle: false, startupCpuBoost: true },
            startupProbe: { httpGet: { path: "/health", port: 8123 }, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 60 },
          },
        ],
      },
    });
    assert.ok(!JSON.stringify(plan).includes("hf_"));
  });

  test("T4 is not on Cloud Run; the RTX PRO 6000 is, and 2 GPUs are rejected", () => {
    assert.throws(() => planCloudrun(makeTestSpec({ gpu: "T4" })), (e: unknown) => e instanceof ProviderError && e.code === "validation");
    assert.throws(() => planCloudrun(makeTestSpec({ gpuCount: 2 })), /one GPU per instance/);
    const p = planCloudrun(makeTestSpec({ gpu: "RTX-PRO-6000" }));
    assert.equal((p.request as any).service.template.nodeSelector.accelerator, "nvidia-rtx-pro-6000");
    assert.ok(!p.notes.join(" ").includes("--dtype half"));
  });

  test("scaling knobs map to instance counts, concurrency, timeout and probe budget", () => {
    const spec = makeTestSpec();
    spec.serverlessScaling = { minWorkers: 1, maxWorkers: 4, concurrency: 16, idleTimeoutS: 60, coldStartTimeoutS: 1200 };
    const t = (planCloudrun(spec).request as any).service.template;
    assert.deepEqual(t.scaling, { minInstanceCount: 1, maxInstanceCount: 4 });
    assert.equal(t.maxInstanceRequestConcurrency, 16);
    assert.equal(t.timeout, "1200s");
    assert.equal(t.containers[0].startupProbe.failureThreshold, 120);
  });
});

describe("cloudrun preflight", () => {
  test("missing key", async () => {
    const f = await cloudrunProvider.preflight(planCloudrun(makeTestSpec()), undefined, ctx);
    assert.deepEqual(f.map((x) => x.code), ["missing_credentials"]);
  });

  test("a key Google does not accept → unauthorized, private key absent from the message", async () => {
    const f = await cloudrunProvider.preflight(planCloudrun(makeTestSpec()), { serviceAccountJson: saJson(other.privateKey) }, ctx);
    const u = f.find((x) => x.code === "unauthorized");
    assert.ok(u, JSON.stringify(f));
    assert.ok(!f.some((x) => x.code === "credentials_accepted"));
    assert.match(u.message, /Invalid JWT Signature/);
    assert.ok(!u.message.includes(other.privateKey.split("\n")[1]));
    const tokenReq = fake.requests.find((r) => r.path === "/token")!;
    assert.equal(tokenReq.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(new URLSearchParams(tokenReq.raw).get("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");
  });

  test("region without the GPU (no call needed) and quota from validateOnly", async () => {
    const f = await cloudrunProvider.preflight(planCloudrun(makeTestSpec({ region: "us-west2" })), creds(), ctx);
    assert.ok(f.some((x) => x.code === "gpu_unavailable_in_region" && x.level === "error" && x.message.includes("us-central1")));

    fake.requests.length = 0;
    const spec = makeTestSpec({ region: "europe-west4", secretNames: ["HF_TOKEN"] });
    const q = await cloudrunProvider.preflight(planCloudrun(spec), creds(), ctx);
    assert.ok(q.some((x) => x.code === "quota" && /Quota exceeded/.test(x.message)), JSON.stringify(q));
    const validate = fake.requests.find((r) => r.query.validateOnly === "true")!;
    assert.equal(validate.path, servicesPath("europe-west4"));
    assert.equal(validate.query.serviceId, "tuna-qwen-small-k3j9");
    assert.match(validate.headers.authorization, /^Bearer ya29\./);
    assert.equal(fake.services.size, 0);

    const ok = await cloudrunProvider.preflight(planCloudrun(makeTestSpec({ secretNames: ["HF_TOKEN"] })), creds(), ctx);
    assert.deepEqual(ok.filter((x) => x.level !== "info"), []);
    assert.ok(ok.some((x) => x.code === "credentials_accepted"));
  });

  test("Cloud Run API disabled → forbidden finding naming SERVICE_DISABLED", async () => {
    fake.runApiEnabled = false;
    const f = await cloudrunProvider.preflight(planCloudrun(makeTestSpec()), creds(), ctx);
    assert.ok(f.some((x) => x.code === "forbidden" && /SERVICE_DISABLED/.test(x.message)));
  });
});

describe("cloudrun deploy → status → destroy", () => {
  test("private service: secret in Secret Manager, LRO polled, ID-token header; destroy removes all", async () => {
    const plan = planCloudrun(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const comp = await cloudrunProvider.deploy(plan, creds(), ctx);
    const calls = fake.requests.map((r) => `${r.method} ${r.path}`);
    const secretBase = `/v1/projects/${PROJECT}/secrets`;
    const secretId = "tuna-qwen-small-k3j9-hf-token";
    assert.deepEqual(calls.slice(0, 6), [
      "POST /token",
      `POST ${secretBase}`,
      `POST ${secretBase}/${secretId}:addVersion`,
      `GET ${secretBase}/${secretId}:getIamPolicy`,
      `POST ${secretBase}/${secretId}:setIamPolicy`,
      `POST ${servicesPath()}`,
    ]);
    for (const r of fake.requests.filter((x) => x.path !== "/token")) assert.match(r.headers.authorization, /^Bearer ya29\./);
    const addVersion = fake.requests[2].body as any;
    assert.equal(Buffer.from(addVersion.payload.data, "base64").toString(), HF_TOKEN);
    assert.deepEqual((fake.requests[4].body as any).policy.bindings, [{ role: "roles/secretmanager.secretAccessor", members: [`serviceAccount:${EMAIL}`] }]);
    const create = fake.requests[5];
    assert.equal(create.query.serviceId, "tuna-qwen-small-k3j9");
    const body = create.body as any;
    assert.equal(body.template.serviceAccount, EMAIL);
    assert.equal(body.template.nodeSelector.accelerator, "nvidia-l4");
    assert.ok(!JSON.stringify(body).includes(HF_TOKEN), "token never in the service body");
    // The LRO is polled until done, then the service is read.
    assert.ok(calls.filter((c) => c.includes("/operations/")).length >= 2);
    assert.ok(calls.includes(`GET ${servicesPath()}/tuna-qwen-small-k3j9`));

    const svc = fake.services.get(`projects/${PROJECT}/locations/us-central1/services/tuna-qwen-small-k3j9`)!;
    assert.equal(comp.endpointUrl, svc.uri);
    assert.match(comp.upstreamHeaders.Authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const idReq = fake.requests.filter((r) => r.path === "/token").pop()!;
    const claims = JSON.parse(Buffer.from(new URLSearchParams(idReq.raw).get("assertion")!.split(".")[1], "base64url").toString());
    assert.equal(claims.target_audience, svc.uri);
    assert.equal(fake.servicePolicies.get(svc.name)!.bindings.length, 0, "private: no allUsers binding");

    const ref = refFromPlan(plan, comp.externalIds);
    assert.equal((await cloudrunProvider.status(ref, creds(), ctx)).state, "ready");
    const refreshed = await cloudrunProvider.refreshUpstreamHeaders(ref, creds(), ctx);
    assert.match(refreshed.Authorization, /^Bearer /);

    fake.requests.length = 0;
    await cloudrunProvider.destroy(ref, creds(), ctx);
    assert.ok(fake.requests.some((r) => r.method === "DELETE" && r.path === `${servicesPath()}/tuna-qwen-small-k3j9`));
    assert.ok(fake.requests.some((r) => r.method === "DELETE" && r.path === `${secretBase}/${secretId}`));
    assert.ok(fake.isEmpty());
    await cloudrunProvider.destroy(ref, creds(), ctx);
    assert.equal((await cloudrunProvider.status(ref, creds(), ctx)).state, "gone");
  });

  test("public opt-in binds allUsers as run.invoker and sends no upstream auth", async () => {
    const plan = planCloudrun({ ...makeTestSpec(), cloudrun: { public: true } });
    const comp = await cloudrunProvider.deploy(plan, creds(), ctx);
    assert.deepEqual(comp.upstreamHeaders, {});
    const set = fake.requests.find((r) => r.path.endsWith(":setIamPolicy"))!;
    assert.equal(set.path, `${servicesPath()}/tuna-qwen-small-k3j9:setIamPolicy`);
    assert.deepEqual((set.body as any).policy.bindings, [{ role: "roles/run.invoker", members: ["allUsers"] }]);
    assert.equal((set.body as any).policy.etag, "BwA=");
    await cloudrunProvider.destroy(refFromPlan(plan), creds(), ctx);
    assert.ok(fake.isEmpty());
  });

  test("quota failure inside the operation → quota error; destroy after the half-finished deploy empties the fake", async () => {
    const spec = makeTestSpec({ secretNames: ["HF_TOKEN"] });
    spec.serverlessScaling = { ...spec.serverlessScaling, maxWorkers: 5 };
    const plan = planCloudrun(spec);
    await assert.rejects(cloudrunProvider.deploy(plan, creds(), ctx), (e: unknown) => e instanceof ProviderError && e.code === "quota" && !e.retryable);
    assert.equal(fake.secrets.size, 1);
    assert.equal(fake.services.size, 1);
    await cloudrunProvider.destroy(refFromPlan(plan), creds(), ctx);
    assert.ok(fake.isEmpty());
  });

  test("a later call failing (IAM after create) leaves state destroy can clean; errors carry no secrets", async () => {
    const plan = planCloudrun({ ...makeTestSpec({ secretNames: ["HF_TOKEN"] }), cloudrun: { public: true } });
    fake.failNext("POST", /services\/[^/]+:setIamPolicy$/, {
      status: 403,
      body: { error: { code: 403, status: "PERMISSION_DENIED", message: `denied; key was ${PRIVATE_KEY_BODY_LINE} token ${HF_TOKEN}` } },
    });
    await assertProviderError(cloudrunProvider.deploy(plan, creds(), ctx), {
      code: "forbidden",
      status: 403,
      message: /make service public \(set IAM policy\) failed \(HTTP 403 PERMISSION_DENIED\)/,
      hides: [PRIVATE_KEY_BODY_LINE, HF_TOKEN],
    });
    assert.equal(fake.services.size, 1);
    await cloudrunProvider.destroy(refFromPlan(plan), creds(), ctx);
    await cloudrunProvider.destroy(refFromPlan(plan), creds(), ctx);
    assert.ok(fake.isEmpty());
  });

  test("re-deploy after a lost response updates the service (409 → PATCH); 503 on GET is retried", async () => {
    const plan = planCloudrun(makeTestSpec());
    await cloudrunProvider.deploy(plan, creds(), ctx);
    fake.requests.length = 0;
    fake.failNext("GET", /services\/tuna-qwen-small-k3j9$/, { status: 503 });
    const comp = await cloudrunProvider.deploy(plan, creds(), ctx);
    assert.ok(fake.requests.some((r) => r.method === "PATCH" && r.path === `${servicesPath()}/tuna-qwen-small-k3j9`));
    assert.ok(comp.endpointUrl.startsWith("https://tuna-qwen-small-k3j9-"));
    await cloudrunProvider.destroy(refFromPlan(plan), creds(), ctx);
    assert.ok(fake.isEmpty());
  });

  test("the fake rejects a GPU service without enough CPU (fieldViolations surface in the message)", async () => {
    const plan = planCloudrun(makeTestSpec());
    (plan.request as any).service.template.containers[0].resources.limits.cpu = "2";
    await assert.rejects(cloudrunProvider.deploy(plan, creds(), ctx), (e: unknown) => e instanceof ProviderError && e.code === "validation" && /at least 4 CPU/.test(e.message));
  });
});

describe("cloudrun access token outlived by a long deploy", () => {
  const virtualTime = () => {
    const clock = { ms: Date.now() };
    fake.now = () => clock.ms;
    return { clock, sleep: async (ms: number) => void (clock.ms += ms) };
  };
  const accessTokenCalls = () =>
    fake.requests.filter((r) => r.path === "/token" && JSON.parse(Buffer.from(new URLSearchParams(r.raw).get("assertion")!.split(".")[1], "base64url").toString()).scope).length;

  test("the session renews its access token before expiry while an operation is polled", async () => {
    // Tokens live 20 s; the create operation needs 6 polls (1+2+4+8+16+30 s of backoff).
    fake.tokenLifetimeS = 20;
    fake.operationPolls = 6;
    const { clock, sleep } = virtualTime();
    const statuses: number[] = [];
    const countingFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      statuses.push(res.status);
      return res;
    };
    const comp = await cloudrunProvider.deploy(planCloudrun(makeTestSpec()), creds(), { ...ctx, sleep, now: () => clock.ms, fetch: countingFetch });
    assert.ok(!statuses.includes(401), "renewed ahead of expiry: no call was refused for an expired token");
    assert.ok(comp.endpointUrl.startsWith("https://"));
    assert.ok(accessTokenCalls() >= 3, `access token renewed (${accessTokenCalls()} token calls)`);
  });

  test("a 401 after the token expired unnoticed gets one new token and the call is repeated", async () => {
    fake.tokenLifetimeS = 20;
    fake.operationPolls = 6;
    const { sleep } = virtualTime();
    const comp = await cloudrunProvider.deploy(planCloudrun(makeTestSpec()), creds(), { ...ctx, sleep });
    assert.ok(comp.endpointUrl.startsWith("https://"));
    assert.ok(accessTokenCalls() >= 2);
  });
});
