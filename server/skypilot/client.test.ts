import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import type { ProviderError } from "../providers/base/errors";
import { useFakeServer } from "../providers/base/testing";
import { normaliseEndpoint, parseInstanceTypeInfo, SKYPILOT_CLIENT_API_VERSION, SkyPilotClient } from "./client";
import { FakeSkyPilotServer, type FakeOffer } from "./fake";
import { skypilotPriceSource } from "./prices";

// Outbound URLs to private addresses need the operator's allowlist: the fake SkyPilot API server listens on loopback.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";

const TOKEN = "sky_test_token_0123456789abcdef";
const instant = async () => {};

describe("SkyPilot API client against the fake server", () => {
  const fake = new FakeSkyPilotServer({ token: TOKEN });
  let client: SkyPilotClient;

  useFakeServer(fake);
  beforeEach(() => {
    fake.requests.length = 0;
    fake.services.clear();
    fake.storage.clear();
    fake.holdRequests = false;
    client = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant, timeoutMs: 60_000 });
  });

  test("every request carries the bearer token and version headers; async submit returns a request id", async () => {
    const id = await client.submit("POST", "/serve/status", { service_names: null });
    assert.match(id, /^[0-9a-f-]{36}$/);
    const sub = fake.requestsTo("/serve/status")[0];
    assert.equal(sub.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(sub.headers["x-skypilot-api-version"], String(SKYPILOT_CLIENT_API_VERSION));
    assert.equal(sub.headers["x-skypilot-version"], "0.11.1");
    assert.equal(sub.headers["x-skypilot-auth-mode"], undefined);
    assert.deepEqual(sub.body, {
      env_vars: { SKYPILOT_USER_ID: (sub.body as { env_vars: { SKYPILOT_USER_ID: string } }).env_vars.SKYPILOT_USER_ID, SKYPILOT_USER: "tuna" },
      entrypoint: "",
      entrypoint_command: "tuna",
      using_remote_api_server: true,
      override_skypilot_config: {},
      service_names: null,
    });
    assert.match((sub.body as { env_vars: { SKYPILOT_USER_ID: string } }).env_vars.SKYPILOT_USER_ID, /^[0-9a-f]{8}$/);
  });

  test("wait polls /api/status through PENDING → RUNNING with backoff, then reads /api/get", async () => {
    const sleeps: number[] = [];
    const c = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: async (ms) => void sleeps.push(ms) });
    const services = await c.serveStatus(null);
    assert.deepEqual(services, []);
    const paths = fake.requests.map((r) => r.path);
    assert.deepEqual(paths, ["/serve/status", "/api/status", "/api/status", "/api/get"]);
    assert.deepEqual(sleeps, [250]);
  });

  test("a request that keeps running hits the timeout as a retryable ProviderError", async () => {
    fake.holdRequests = true;
    const c = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant, timeoutMs: 5_000 });
    await assert.rejects(c.serveStatus(null), (err: ProviderError) => {
      assert.equal(err.code, "timeout");
      assert.equal(err.retryable, true);
      assert.match(err.message, /still RUNNING/);
      return true;
    });
    fake.release();
  });

  test("a request that fails server-side surfaces the Python exception type and message", async () => {
    await assert.rejects(client.serveDown(["nope"]), (err: ProviderError) => {
      assert.equal(err.code, "not_found");
      assert.match(err.message, /sky\.serve\.down failed: ValueError: Service\(s\) 'nope' does not exist/);
      return true;
    });
  });

  test("injected request failures and 503s: 503 is retried, FAILED requests are not", async () => {
    fake.failHttp("/storage/ls", 2, 503);
    fake.addStorage("b1");
    const list = await client.storageLs();
    assert.deepEqual(list.map((s) => s.name), ["b1"]);
    assert.equal(fake.requestsTo("/storage/ls").length, 3);

    fake.failRequest("/storage/delete", 1, "ResourcesUnavailableError", "boom");
    await assert.rejects(client.storageDelete("b1"), /ResourcesUnavailableError: boom/);
    await client.storageDelete("b1");
    assert.equal(fake.storage.size, 0);
  });

  test("auth failures and version mismatch are clear errors without the token", async () => {
    const bad = new SkyPilotClient({ baseUrl: fake.url, token: "sky_wrong_token_zzzzzzzz", sleep: instant });
    await assert.rejects(bad.serveStatus(null), (err: ProviderError) => {
      assert.equal(err.code, "unauthorized");
      assert.equal(err.status, 401);
      assert.match(err.message, /Invalid or expired service account token/);
      assert.ok(!err.message.includes("sky_wrong_token_zzzzzzzz"));
      return true;
    });
    const anon = new SkyPilotClient({ baseUrl: fake.url, sleep: instant });
    await assert.rejects(anon.serveStatus(null), /Authentication required/);
    assert.equal((await anon.health()).status, "needs_auth");

    const strict = new FakeSkyPilotServer({ token: TOKEN, minCompatibleApiVersion: 50 });
    await strict.start();
    try {
      const c = new SkyPilotClient({ baseUrl: strict.url, token: TOKEN, sleep: instant });
      await assert.rejects(c.serveStatus(null), (err: ProviderError) => {
        assert.equal(err.code, "validation");
        assert.equal(err.status, 400);
        assert.match(err.message, /version mismatch/);
        return true;
      });
    } finally {
      await strict.close();
    }
  });

  test("missing required body fields get FastAPI's 422", async () => {
    await assert.rejects(client.submit("POST", "/serve/up", { task: "x" }), (err: ProviderError) => {
      assert.equal(err.status, 422);
      assert.equal(err.code, "validation");
      assert.match(err.message, /body\.service_name: Field required/);
      return true;
    });
  });

  test("serve update: exact body, a new version of an existing service; an unknown service or mode is refused", async () => {
    const task = "service:\n  readiness_probe:\n    path: /health\n  replicas: 1\nresources:\n  ports: 8000\nrun: echo hi\n";
    await client.serveUp(task, "svc");
    await client.serveUpdate(task.replace("echo hi", "echo v2"), "svc", "rolling");
    const body = fake.requestsTo("/serve/update")[0].body as Record<string, unknown>;
    assert.deepEqual([body.task, body.service_name, body.mode], [task.replace("echo hi", "echo v2"), "svc", "rolling"]);
    assert.equal((await client.serveStatus(["svc"]))[0].version, 2);
    assert.equal(fake.services.get("svc")?.task.includes("echo v2"), true);
    await assert.rejects(client.serveUpdate(task, "nope", "blue_green"), (err: ProviderError) => /Service 'nope' does not exist/.test(err.message));
    await assert.rejects(client.submit("POST", "/serve/update", { task, service_name: "svc", mode: "sideways" }), (err: ProviderError) => err.status === 422);
  });

  test("a server that never answers fails each request within the per-request timeout (submit, status poll, health)", async () => {
    const c = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant, requestTimeoutMs: 150 });
    const started = Date.now();
    try {
      fake.stalledPaths.add("/api/health");
      await assert.rejects(c.health(), (err: ProviderError) => {
        assert.equal(err.code, "timeout");
        assert.equal(err.retryable, true);
        assert.match(err.message, /GET \/api\/health: the SkyPilot API server at .* did not answer within 150 ms/);
        assert.ok(!err.message.includes(TOKEN));
        return true;
      });
      fake.stalledPaths.add("/serve/status");
      await assert.rejects(c.serveStatus(null), (err: ProviderError) => err.code === "timeout" && /POST \/serve\/status/.test(err.message));
      fake.stalledPaths.clear();
      fake.stalledPaths.add("/api/status");
      await assert.rejects(c.serveStatus(null), (err: ProviderError) => err.code === "timeout" && /GET \/api\/status/.test(err.message));
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    } finally {
      fake.release();
    }
  });

  test("no request outlives the client's overall timeoutMs (the per-request default is capped by it)", async () => {
    const c = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant, timeoutMs: 200 });
    fake.stalledPaths.add("/list_accelerators");
    const started = Date.now();
    try {
      await assert.rejects(c.listAccelerators({ nameFilter: "T4" }), (err: ProviderError) => err.code === "timeout");
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    } finally {
      fake.release();
    }
  });

  test("the caller's own abort stays 'unavailable', not a timeout", async () => {
    const ac = new AbortController();
    const c = new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant, requestTimeoutMs: 60_000, signal: ac.signal });
    fake.stalledPaths.add("/api/health");
    try {
      const p = c.health();
      setTimeout(() => ac.abort(), 50);
      await assert.rejects(p, (err: ProviderError) => err.code === "unavailable");
    } finally {
      fake.release();
    }
  });

  test("unreachable server is an 'unavailable' error naming the URL", async () => {
    const c = new SkyPilotClient({ baseUrl: "http://127.0.0.1:1", token: TOKEN, sleep: instant });
    await assert.rejects(c.health(), (err: ProviderError) => err.code === "unavailable" && /cannot reach the SkyPilot API server/.test(err.message) && !err.message.includes(TOKEN));
  });

  test("cancel: a held request becomes CANCELLED and waiting on it says so", async () => {
    fake.heldRoutes.add("/serve/status");
    const id = await client.submit("POST", "/serve/status", { service_names: null });
    assert.deepEqual(await client.cancel([id.slice(0, 8)]), [id]);
    assert.equal((await client.requestStatus(id)).status, "CANCELLED");
    await assert.rejects(client.wait(id), /was cancelled/);
    fake.release();
  });

  test("request ids resolve by prefix; an unknown id is not_found", async () => {
    const id = await client.submit("POST", "/serve/status", { service_names: null });
    const p = await client.requestStatus(id.slice(0, 8));
    assert.equal(p.request_id, id);
    await assert.rejects(client.requestStatus("ffffffff-0000"), (e: ProviderError) => e.code === "not_found");
  });
});

describe("parsing helpers", () => {
  test("endpoints without a scheme are normalised, empty ones are null", () => {
    assert.equal(normaliseEndpoint("34.1.2.3:30001"), "http://34.1.2.3:30001");
    assert.equal(normaliseEndpoint("https://x.example/"), "https://x.example");
    assert.equal(normaliseEndpoint(null), null);
    assert.equal(normaliseEndpoint(""), null);
  });

  test("InstanceTypeInfo is accepted as an array or as an object", () => {
    const a = parseInstanceTypeInfo(["AWS", "g6.xlarge", "L4", 1, 4, 24, 16, 0.8, 0.3, "us-east-1"]);
    const o = parseInstanceTypeInfo({ cloud: "AWS", instance_type: "g6.xlarge", accelerator_name: "L4", accelerator_count: 1, cpu_count: 4, device_memory: 24, memory: 16, price: 0.8, spot_price: null, region: "us-east-1" });
    assert.equal(a?.spotPrice, 0.3);
    assert.equal(o?.instanceType, "g6.xlarge");
    assert.ok(Number.isNaN(o?.spotPrice));
  });
});

describe("skypilotPriceSource", () => {
  const fake = new FakeSkyPilotServer({ token: TOKEN, observationsToFinish: 0 });
  before(async () => {
    await fake.start();
    const offers: FakeOffer[] = [
      ["AWS", "g6.4xlarge", "L4", 1, 16, 24, 64, 1.32, 0.28, "us-east-2"],
      ["AWS", "g6.xlarge", "L4", 1, 4, 24, 16, 0.8, 0.35, "us-east-1"],
      ["AWS", "g6.12xlarge", "L4", 4, 48, 24, 192, 4.6, 0.2, "us-east-1"],
      ["AWS", "p5.4xlarge", "H100", 1, 16, 80, 256, 6.88, 2.05, "us-east-1"],
      ["AWS", "p4de.24xlarge", "A100-80GB", 8, 96, 80, 1152, 40.9, 12.0, "us-east-1"],
      ["AWS", "g4dn.xlarge", "T4", 1, 4, 16, 16, 0.53, null, "us-east-1"],
      ["AWS", "x.unknown", "Gaudi", 1, 4, 16, 16, 0.5, 0.1, "us-east-1"],
      ["GCP", "a2-highgpu-1g", "A100", 1, 12, 40, 85, 3.67, 1.47, "us-central1"],
    ];
    fake.offers = offers;
  });
  after(async () => {
    await fake.close();
  });

  test("spot: single-GPU offers with positive prices, cheapest per GPU, catalog names", async () => {
    const src = skypilotPriceSource(new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant }));
    assert.deepEqual(await src.spotPrices("aws"), [
      { gpu: "H100", cloud: "aws", pricePerGpuHourUsd: 2.05, instanceType: "p5.4xlarge", region: "us-east-1" },
      { gpu: "L4", cloud: "aws", pricePerGpuHourUsd: 0.28, instanceType: "g6.4xlarge", region: "us-east-2" },
    ]);
    const body = fake.requestsTo("/list_accelerators").at(-1)?.body as Record<string, unknown>;
    assert.equal(body.clouds, "aws");
    assert.equal(body.gpus_only, true);
    assert.equal(body.all_regions, false);
    assert.equal(body.require_price, true);
  });

  test("on-demand uses the on-demand price and maps SkyPilot 'A100' to A100-40GB", async () => {
    const src = skypilotPriceSource(new SkyPilotClient({ baseUrl: fake.url, token: TOKEN, sleep: instant }));
    const aws = await src.onDemandPrices("aws");
    assert.deepEqual(aws.map((p) => [p.gpu, p.pricePerGpuHourUsd, p.instanceType]), [
      ["H100", 6.88, "p5.4xlarge"],
      ["L4", 0.8, "g6.xlarge"],
      ["T4", 0.53, "g4dn.xlarge"],
    ]);
    assert.deepEqual(await src.onDemandPrices("gcp"), [
      { gpu: "A100-40GB", cloud: "gcp", pricePerGpuHourUsd: 3.67, instanceType: "a2-highgpu-1g", region: "us-central1" },
    ]);
  });
});
