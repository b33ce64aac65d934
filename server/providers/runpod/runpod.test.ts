import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { buildEngineArgs } from "../base/engine";
import { ProviderError } from "../base/errors";
import { assertProviderError, makeTestSpec } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { RunpodFake } from "./fake";
import { runpodProvider } from "./index";
import { planRunpod, workerEnvFromEngineArgs } from "./plan";

const API_KEY = "rpa_TESTKEY_7f3c9a1b2d4e5f60";
const HF_TOKEN = "hf_SECRETtoken_abcdef123456";
const creds = { apiKey: API_KEY, secrets: { HF_TOKEN } };

let fake: RunpodFake;
let ctx: ProviderContext;

before(async () => {
  fake = await new RunpodFake(API_KEY).start();
});
after(() => fake.close());
beforeEach(() => {
  fake.endpoints.clear();
  fake.requests.length = 0;
  ctx = { baseUrls: fake.baseUrls, sleep: async () => {} };
});

describe("runpod plan", () => {
  test("builds the exact POST /v2/serverless body for an L4", () => {
    const plan = planRunpod(makeTestSpec({ secretNames: ["HF_TOKEN"], region: "US-TX-3" }));
    assert.equal(plan.resourceName, "tuna-qwen-small-k3j9-serverless");
    assert.deepEqual(plan.gpu, { catalogName: "L4", providerGpuId: "NVIDIA L4", count: 1 });
    assert.deepEqual(plan.request.endpoint, {
      name: "tuna-qwen-small-k3j9-serverless",
      type: "QUEUE",
      image: "runpod/worker-v1-vllm:v2.11.3",
      gpu: { pools: ["AMPERE_24"], excludedTypes: ["NVIDIA RTX A5000"], count: 1 },
      workers: { min: 0, max: 1, idleTimeout: 60 },
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
      dataCenterIds: ["US-TX-3"],
      disk: 50,
      flashboot: "FLASHBOOT",
      timeout: 600_000,
      env: {
        TENSOR_PARALLEL_SIZE: "1",
        HF_HUB_ENABLE_HF_TRANSFER: "1",
        MODEL_NAME: "Qwen/Qwen3-0.6B",
        OPENAI_SERVED_MODEL_NAME_OVERRIDE: "qwen-small",
        MAX_MODEL_LEN: "4096",
        MAX_CONCURRENCY: "32",
      },
    });
    assert.deepEqual(plan.secretEnv, ["HF_TOKEN"]);
    assert.ok(!JSON.stringify(plan).includes("hf_"), "no token in the plan");
  });

  test("maps scaling knobs and GPU count; no region → no dataCenterIds", () => {
    const spec = makeTestSpec({ gpu: "A100-80GB", gpuCount: 2 });
    spec.serverlessScaling = { minWorkers: 2, maxWorkers: 5, concurrency: 8, idleTimeoutS: 9000, coldStartTimeoutS: 900 };
    const body = planRunpod(spec).request.endpoint as Record<string, any>;
    assert.deepEqual(body.gpu, { pools: ["AMPERE_80"], count: 2 });
    assert.deepEqual(body.workers, { min: 2, max: 5, idleTimeout: 3600 });
    assert.equal(body.timeout, 900_000);
    assert.equal(body.env.TENSOR_PARALLEL_SIZE, "2");
    assert.equal(body.env.MAX_CONCURRENCY, "8");
    assert.equal("dataCenterIds" in body, false);
  });

  test("T4 engine args carry --dtype half and map to DTYPE=half; RunPod itself offers no T4", () => {
    const t4 = makeTestSpec({ gpu: "T4" });
    const args = buildEngineArgs(t4);
    assert.ok(args.join(" ").includes("--dtype half"));
    assert.equal(workerEnvFromEngineArgs(args).DTYPE, "half");
    assert.throws(() => planRunpod(t4), (e: unknown) => e instanceof ProviderError && e.code === "validation" && /T4/.test(e.message));
  });

  test("engine flags become worker env; host/port stay with the worker", () => {
    const env = workerEnvFromEngineArgs(["vllm", "serve", "m/x", "--host", "0.0.0.0", "--port", "9000", "--enforce-eager", "--quantization=awq", "--max-num-seqs", "64"]);
    assert.deepEqual(env, { MODEL_NAME: "m/x", ENFORCE_EAGER: "true", QUANTIZATION: "awq", MAX_NUM_SEQS: "64" });
  });
});

describe("runpod preflight", () => {
  test("missing key", async () => {
    const f = await runpodProvider.preflight(planRunpod(makeTestSpec()), undefined, ctx);
    assert.equal(f[0].code, "missing_credentials");
    assert.equal(f[0].level, "error");
  });

  test("401 → unauthorized, without the key in the message", async () => {
    const f = await runpodProvider.preflight(planRunpod(makeTestSpec()), { apiKey: "rpa_WRONGKEY_123456" }, ctx);
    assert.ok(!f.some((x) => x.code === "credentials_accepted"));
    assert.deepEqual(f.map((x) => x.code), ["unauthorized"]);
    assert.ok(!f[0].message.includes("rpa_WRONGKEY_123456"));
    assert.equal(fake.requests[0].path, "/v2/catalog/gpus");
    assert.deepEqual(fake.requests[0].query, { include: "AVAILABILITY", product: "SERVERLESS", count: "1" });
  });

  test("data center without the GPU, live price, quota (gpu count over maxCount), missing HF token", async () => {
    const f = await runpodProvider.preflight(planRunpod(makeTestSpec({ region: "US-KS-2", secretNames: ["HF_TOKEN"] })), { apiKey: API_KEY }, ctx);
    const region = f.find((x) => x.code === "gpu_unavailable_in_region");
    assert.ok(region && region.level === "error" && region.message.includes("US-TX-3"));
    assert.ok(f.find((x) => x.code === "live_price")?.message.includes("$0.69"));
    assert.ok(f.some((x) => x.code === "missing_secret"));

    const big = await runpodProvider.preflight(planRunpod(makeTestSpec({ gpuCount: 16 })), creds, ctx);
    assert.ok(big.some((x) => x.code === "quota" && x.level === "error" && x.message.includes("at most 8")), JSON.stringify(big));
    const ok = await runpodProvider.preflight(planRunpod(makeTestSpec({ region: "US-TX-3" })), creds, ctx);
    assert.deepEqual(ok.filter((x) => x.level === "error"), []);
    assert.ok(ok.some((x) => x.code === "credentials_accepted"), "the vault's Test reads this code as 'RunPod confirmed the key'");
  });

  test("out of stock is a warning", async () => {
    const f = await runpodProvider.preflight(planRunpod(makeTestSpec({ gpu: "H100" })), creds, ctx);
    assert.ok(f.some((x) => x.code === "gpu_unavailable" && x.level === "warning"));
  });
});

describe("runpod deploy → status → destroy", () => {
  test("exact requests, secrets only in the create body, endpoint URL and upstream header", async () => {
    const plan = planRunpod(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const comp = await runpodProvider.deploy(plan, creds, ctx);
    const [list, create] = fake.requests;
    assert.equal(list.method, "GET");
    assert.equal(list.path, "/v2/serverless");
    assert.equal(create.method, "POST");
    assert.equal(create.path, "/v2/serverless");
    assert.equal(create.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(create.headers["content-type"], "application/json");
    const body = create.body as Record<string, any>;
    assert.equal(body.name, plan.resourceName);
    assert.equal(body.type, "QUEUE");
    assert.deepEqual(body.gpu.pools, ["AMPERE_24"]);
    assert.equal(body.env.HF_TOKEN, HF_TOKEN);
    assert.equal(fake.requests.length, 2);

    const id = comp.externalIds.endpointId;
    assert.ok(fake.endpoints.has(id));
    assert.equal(comp.endpointUrl, `${fake.baseUrls.runtime}/${id}/openai`);
    assert.deepEqual(comp.upstreamHeaders, { Authorization: `Bearer ${API_KEY}` });
    assert.equal(comp.kind, "serverless");

    const ref = refFromPlan(plan, comp.externalIds);
    assert.equal((await runpodProvider.status(ref, creds, ctx)).state, "scaled_to_zero");
    fake.workers.set(id, { initializing: 1 });
    assert.equal((await runpodProvider.status(ref, creds, ctx)).state, "creating");
    fake.workers.set(id, { ready: 1, running: 1 });
    const st = await runpodProvider.status(ref, creds, ctx);
    assert.equal(st.state, "ready");
    assert.deepEqual(st.replicas, { ready: 2, total: 2 });
    assert.ok(fake.requests.some((r) => r.path === `/runtime/v2/${id}/health` && r.headers.authorization === `Bearer ${API_KEY}`));

    fake.requests.length = 0;
    await runpodProvider.destroy(ref, creds, ctx);
    assert.ok(fake.requests.some((r) => r.method === "DELETE" && r.path === `/v2/serverless/${id}`));
    assert.equal(fake.endpoints.size, 0);
    await runpodProvider.destroy(ref, creds, ctx);
    assert.equal((await runpodProvider.status(ref, creds, ctx)).state, "gone");
  });

  test("re-deploy adopts the endpoint with the same name via PATCH (no type)", async () => {
    const plan = planRunpod(makeTestSpec());
    const a = await runpodProvider.deploy(plan, creds, ctx);
    fake.requests.length = 0;
    const b = await runpodProvider.deploy(plan, creds, ctx);
    assert.equal(a.externalIds.endpointId, b.externalIds.endpointId);
    const patch = fake.requests.find((r) => r.method === "PATCH");
    assert.equal(patch?.path, `/v2/serverless/${a.externalIds.endpointId}`);
    assert.ok(patch, "re-deploy sends a PATCH");
    assert.equal("type" in (patch.body as object), false);
    assert.equal(fake.endpoints.size, 1);
  });

  test("destroy by name after a deploy whose response was lost leaves nothing", async () => {
    const plan = planRunpod(makeTestSpec());
    fake.dropResponseNext("POST", /^\/v2\/serverless$/);
    await assert.rejects(runpodProvider.deploy(plan, creds, ctx), (e: unknown) => e instanceof ProviderError && e.code === "unavailable" && e.retryable);
    assert.equal(fake.endpoints.size, 1, "the endpoint exists although the client never saw its id");
    // The workflow never saw the id: destroy from the plan alone.
    await runpodProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.endpoints.size, 0);
  });

  test("a failed create maps to a clear error without secrets; destroy afterwards leaves the fake empty", async () => {
    const plan = planRunpod(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    fake.failNext("POST", /^\/v2\/serverless$/, { status: 500, body: { error: `internal error echoing Bearer ${API_KEY} and ${HF_TOKEN}` } });
    await assertProviderError(runpodProvider.deploy(plan, creds, ctx), { status: 500, retryable: true, message: /create endpoint failed \(HTTP 500\)/, hides: [API_KEY, HF_TOKEN] });
    await runpodProvider.destroy(refFromPlan(plan), creds, ctx);
    await runpodProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.equal(fake.endpoints.size, 0);
  });

  test("422 validation is permanent; 429 is retried honouring Retry-After", async () => {
    const plan = planRunpod(makeTestSpec());
    fake.failNext("POST", /^\/v2\/serverless$/, { status: 422, body: { error: "gpu.count must be an integer" } });
    await assert.rejects(runpodProvider.deploy(plan, creds, ctx), (e: unknown) => e instanceof ProviderError && e.code === "validation" && !e.retryable && /gpu\.count/.test(e.message));
    const slept: number[] = [];
    fake.failNext("POST", /^\/v2\/serverless$/, { status: 429, headers: { "retry-after": "7" }, body: { error: "rate limited" } });
    const comp = await runpodProvider.deploy(plan, creds, { ...ctx, sleep: async (ms) => void slept.push(ms) });
    assert.deepEqual(slept, [7000]);
    assert.ok(fake.endpoints.has(comp.externalIds.endpointId));
  });

  test("a 429 waits for the longest spent RateLimit window, also when Retry-After says less", async () => {
    const plan = planRunpod(makeTestSpec());
    const slept: number[] = [];
    fake.failNext("POST", /^\/v2\/serverless$/, {
      status: 429,
      headers: { "retry-after": "5", ratelimit: '"burst";r=0;t=3, "minute";r=0;t=20, "day";r=900;t=40000' },
      body: { error: "rate limited" },
    });
    const comp = await runpodProvider.deploy(plan, creds, { ...ctx, sleep: async (ms) => void slept.push(ms) });
    assert.deepEqual(slept, [20_000], "the minute window is the longest spent one; the day window still has quota");
    assert.ok(fake.endpoints.has(comp.externalIds.endpointId));
  });

  test("a 429 asking for more than a minute is a retryable rate_limited error at once, not an hour asleep", async () => {
    const plan = planRunpod(makeTestSpec());
    const slept: number[] = [];
    fake.failNext("POST", /^\/v2\/serverless$/, {
      status: 429,
      headers: { "retry-after": "20", ratelimit: '"minute";r=0;t=20, "hour";r=0;t=1800' },
      body: { error: "rate limited" },
    });
    await assertProviderError(runpodProvider.deploy(plan, creds, { ...ctx, sleep: async (ms) => void slept.push(ms) }), {
      code: "rate_limited",
      status: 429,
      retryable: true,
      message: /create endpoint failed \(HTTP 429\).*1800 s/,
      hides: [API_KEY],
    });
    assert.equal(slept.length, 0, "no wait in place");
    assert.equal(fake.requests.filter((r) => r.method === "POST").length, 1, "not retried in place");
    assert.equal(fake.endpoints.size, 0);
    // Retry-After alone above the cap counts the same.
    fake.failNext("POST", /^\/v2\/serverless$/, { status: 429, headers: { "retry-after": "600" }, body: { error: "rate limited" } });
    await assertProviderError(runpodProvider.deploy(plan, creds, { ...ctx, sleep: async (ms) => void slept.push(ms) }), { code: "rate_limited", retryable: true });
    assert.equal(slept.length, 0);
  });

  test("the fake rejects what the API rejects", async () => {
    const res = await fetch(`${fake.baseUrls.api}/serverless`, {
      method: "POST",
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "x", type: "QUEUE", scaling: { type: "REQUEST_COUNT", requestCount: 1 }, workers: { idleTimeout: 5 } }),
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /idleTimeout/);
    const cat = await fetch(`${fake.baseUrls.api}/catalog/gpus?include=AVAILABILITY`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    assert.equal(cat.status, 400);
  });
});

describe("runpod endpoint list spans pages", () => {
  /** Endpoints of other deployments, enough to push ours to page 3 (the fake serves 2 per page). */
  const addOthers = (n: number) => {
    for (let i = 0; i < n; i++) fake.endpoints.set(`other${i}`, { id: `other${i}`, name: `someone-else-${i}` });
  };
  const listCalls = () => fake.requests.filter((r) => r.method === "GET" && r.path === "/v2/serverless");

  test("the fake pages the list by cursor and refuses a cursor it did not issue", async () => {
    addOthers(5);
    const get = async (q = "") => {
      const r = await fetch(`${fake.baseUrls.api}/serverless${q}`, { headers: { Authorization: `Bearer ${API_KEY}` } });
      return { status: r.status, body: (await r.json()) as any };
    };
    const names: string[] = [];
    let page = await get();
    names.push(...page.body.endpoints.map((e: any) => e.name));
    while (page.body.pagination.hasNextPage) {
      assert.equal(page.body.endpoints.length, 2);
      page = await get(`?cursor=${encodeURIComponent(page.body.pagination.nextCursor)}`);
      names.push(...page.body.endpoints.map((e: any) => e.name));
    }
    assert.equal(page.body.pagination.nextCursor, null);
    assert.deepEqual(names, [0, 1, 2, 3, 4].map((i) => `someone-else-${i}`));
    assert.equal((await get("?cursor=not-a-cursor")).status, 422);
  });

  test("a retried deploy finds its endpoint on page 3 and adopts it instead of creating a second", async () => {
    addOthers(4);
    const plan = planRunpod(makeTestSpec());
    // The first attempt's create succeeds but its answer is lost: the workflow never learns the id.
    fake.dropResponseNext("POST", /^\/v2\/serverless$/);
    await assert.rejects(runpodProvider.deploy(plan, creds, ctx), (e: unknown) => e instanceof ProviderError && e.retryable);
    const mine = [...fake.endpoints.values()].filter((e) => e.name === plan.resourceName);
    assert.equal(mine.length, 1);
    fake.requests.length = 0;
    const comp = await runpodProvider.deploy(plan, creds, ctx);
    assert.equal(comp.externalIds.endpointId, mine[0].id);
    assert.equal(listCalls().length, 3, "pages 1, 2 and 3 were read");
    assert.deepEqual(listCalls().map((r) => r.query.cursor === undefined), [true, false, false]);
    assert.ok(!fake.requests.some((r) => r.method === "POST"), "no second create");
    assert.ok(fake.requests.some((r) => r.method === "PATCH" && r.path === `/v2/serverless/${mine[0].id}`));
    assert.equal(fake.endpoints.size, 5);
  });

  test("a create refused with 409 recovers the endpoint from a later page", async () => {
    addOthers(4);
    const plan = planRunpod(makeTestSpec());
    const first = await runpodProvider.deploy(plan, creds, ctx);
    // Another attempt's create lands between this attempt's lookup and its create.
    fake.endpoints.delete(first.externalIds.endpointId);
    const racer = { id: "racer1", name: plan.resourceName };
    let armed = true;
    const realFetch = globalThis.fetch;
    const comp = await runpodProvider.deploy(plan, creds, {
      ...ctx,
      fetch: async (input, init) => {
        if (armed && init?.method === "POST") {
          armed = false;
          fake.endpoints.set(racer.id, racer);
        }
        return realFetch(input, init);
      },
    });
    assert.equal(comp.externalIds.endpointId, racer.id);
    assert.equal([...fake.endpoints.values()].filter((e) => e.name === plan.resourceName).length, 1);
  });

  test("destroy from the plan alone deletes an endpoint on page 3 whose id was never recorded", async () => {
    addOthers(4);
    const plan = planRunpod(makeTestSpec());
    fake.dropResponseNext("POST", /^\/v2\/serverless$/);
    await assert.rejects(runpodProvider.deploy(plan, creds, ctx));
    const id = [...fake.endpoints.values()].find((e) => e.name === plan.resourceName)!.id;
    await runpodProvider.destroy(refFromPlan(plan), creds, ctx);
    assert.ok(!fake.endpoints.has(id), "the endpoint no longer bills");
    assert.equal(fake.endpoints.size, 4, "other endpoints untouched");
    assert.equal((await runpodProvider.status(refFromPlan(plan), creds, ctx)).state, "gone");
  });
});
