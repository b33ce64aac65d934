// OpenAI surface, auth, scoping and input protection, over real sockets against the simulator.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { hashApiKey } from "../src/auth.js";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { chat, deployment, KEY, KEY_B, KEY_SCOPED, request, snapshot } from "./helpers/fixtures.js";

const REVOKED = "tuna_sk_revoked";
const EXPIRED = "tuna_sk_expired";
const BLOCKED = "tuna_sk_blocked";
const TIGHT = "tuna_sk_tight";

describe("OpenAI surface and auth", () => {
  let sim: SimulatorHandle;
  let router: RouterHandle;

  before(async () => {
    sim = await startSimulator({ model: ["qwen-small", "Qwen/Qwen3-0.6B", "other-model", "team2-model", "served-x"] });
    const base = snapshot([
      deployment({ svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_2", slug: "other", models: ["other-model"], svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      deployment({ id: "dep_3", teamId: "team_2", slug: "t2", models: ["team2-model"], svlUrl: sim.url, routing: { policy: "serverless-only" } }),
      // Clients may say "alias"; the backend serves "served-x" (a slug that differs from the served name).
      { ...deployment({ id: "dep_5", slug: "alias", models: ["alias", "served-x"], routing: { policy: "serverless-only" } }), backends: [{ id: "svl5", kind: "serverless", url: sim.url, upstreamModel: "served-x" }] },
      deployment({ id: "dep_4", slug: "broke", models: ["broke-model"], svlUrl: sim.url, routing: { policy: "serverless-only" }, blocked: { code: "budget_exceeded", message: "Team budget for March is exhausted." } }),
    ]);
    const lim = { rpm: 1000, tpm: 1000000, maxConcurrent: 100 };
    base.apiKeys.push(
      { id: "key_r", hash: hashApiKey(REVOKED), teamId: "team_1", deployments: "*", limits: lim, revoked: true },
      { id: "key_e", hash: hashApiKey(EXPIRED), teamId: "team_1", deployments: "*", limits: lim, expiresAt: "2020-01-01T00:00:00Z" },
      { id: "key_q", hash: hashApiKey(BLOCKED), teamId: "team_1", deployments: "*", limits: lim, blocked: { code: "budget_exceeded", message: "Key budget exhausted." } },
      { id: "key_t", hash: hashApiKey(TIGHT), teamId: "team_1", deployments: "*", limits: { rpm: 2, tpm: 100000, maxConcurrent: 10 } },
    );
    router = await startRouter({ config: base, logLevel: "silent", maxBodyBytes: 64 * 1024, stateDir: `/tmp/tuna-rt-api-${process.pid}` });
  });
  after(async () => {
    await router.close();
    await sim.close();
  });

  test("chat completion with Bearer key; usage and rate-limit headers", async () => {
    const r = await chat(router.url, KEY, { max_tokens: 5 });
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.object, "chat.completion");
    assert.equal(body.model, "qwen-small");
    assert.deepEqual(body.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    assert.equal(r.headers["x-ratelimit-limit-requests"], "100000");
    assert.ok(Number(r.headers["x-ratelimit-remaining-requests"]) < 100000);
    assert.ok(r.headers["x-ratelimit-reset-tokens"]);
  });

  test("x-api-key works; the client key never reaches upstream, configured upstream headers do", async () => {
    const forged = { "x-forwarded-for": "6.6.6.6", "x-forwarded-port": "1", "x-forwarded-prefix": "/admin", "x-forwarded-server": "a", "x-real-ip": "6.6.6.6", forwarded: "for=6.6.6.6", "proxy-connection": "keep-alive" };
    const r = await chat(router.url, undefined, {}, { "x-api-key": KEY, connection: "keep-alive, x-secret-hop", "x-secret-hop": "1", te: "trailers", ...forged, "x-client-tag": "kept" });
    assert.equal(r.status, 200);
    const h = sim.stats().lastHeaders;
    assert.equal(h.authorization, "Bearer upstream-secret");
    assert.equal(h["x-api-key"], undefined);
    assert.equal(h["x-secret-hop"], undefined, "headers named in Connection are hop-by-hop");
    assert.equal(h.te, undefined);
    for (const name of Object.keys(forged)) assert.equal(h[name], undefined, `${name} is not passed on`);
    assert.equal(h["x-client-tag"], "kept", "other end-to-end headers are");
    assert.ok(!JSON.stringify(h).includes(KEY));
  });

  test("streams: the router asks upstream for usage without altering the rest of the body", async () => {
    const body = { model: "qwen-small", messages: [{ role: "user", content: "h\u00e9 \"q\"" }], max_tokens: 2, stream: true, temperature: 0.5 };
    const r = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body });
    assert.equal(r.status, 200);
    assert.ok(r.body.includes("[DONE]"));
    assert.deepEqual(sim.stats().lastBody, { ...body, stream_options: { include_usage: true } });
    // A client's own stream_options are kept and merged.
    const own = { ...body, stream_options: { include_usage: false, extra: 1 } };
    assert.equal((await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: own })).status, 200);
    assert.deepEqual(sim.stats().lastBody, { ...body, stream_options: { include_usage: true, extra: 1 } });
  });

  test("completions, embeddings and the /d/<slug> prefix", async () => {
    const c = await request(`${router.url}/v1/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { model: "Qwen/Qwen3-0.6B", prompt: "abcdefgh", max_tokens: 3 } });
    assert.equal(c.status, 200);
    assert.equal(c.json().choices[0].text, "tuna swims fast");
    assert.equal(c.json().usage.prompt_tokens, 2);
    const e = await request(`${router.url}/v1/embeddings`, { headers: { authorization: `Bearer ${KEY}` }, body: { model: "qwen-small", input: "hello" } });
    assert.equal(e.status, 200);
    assert.equal(e.json().data[0].embedding.length, 8);
    const d = await request(`${router.url}/d/other/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { messages: [{ role: "user", content: "x" }], max_tokens: 1 } });
    assert.equal(d.status, 200);
    assert.equal(d.json().model, "other-model", "the slug's served model is filled in");
    // The path picks the deployment: a model it does not serve is replaced, never passed to its backend.
    const foreign = await request(`${router.url}/d/other/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { model: "qwen-small", messages: [], max_tokens: 1 } });
    assert.equal(foreign.status, 200);
    assert.equal((sim.stats().lastBody as { model?: string }).model, "other-model");
  });

  test("upstreamModel: a request naming the deployment by another name is rewritten; one naming the served model passes as sent", async () => {
    for (const model of ["alias", "served-x"]) {
      for (const stream of [false, true]) {
        const body = { model, messages: [{ role: "user", content: "x" }], max_tokens: 2, stream };
        const r = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body });
        assert.equal(r.status, 200, `${model} stream=${stream}`);
        assert.deepEqual(sim.stats().lastBody, { ...body, model: "served-x", ...(stream ? { stream_options: { include_usage: true } } : {}) });
      }
    }
  });

  test("401 for missing, unknown, revoked and expired keys", async () => {
    for (const key of [undefined, "tuna_sk_nope", REVOKED, EXPIRED]) {
      const r = await chat(router.url, key);
      assert.equal(r.status, 401, String(key));
      assert.equal(r.json().error.code, "invalid_api_key");
      if (key) assert.ok(!r.body.includes(key), "error body never echoes the key");
    }
  });

  test("scoping: other team's model and out-of-scope deployments are 404 model_not_found", async () => {
    const before = sim.stats().requests;
    const cross = await chat(router.url, KEY_B, { model: "qwen-small" });
    assert.equal(cross.status, 404);
    assert.equal(cross.json().error.code, "model_not_found");
    const otherTeam = await chat(router.url, KEY, { model: "team2-model" });
    assert.equal(otherTeam.status, 404);
    const missing = await chat(router.url, KEY, { model: "does-not-exist" });
    assert.equal(otherTeam.body.replace("team2-model", "X"), missing.body.replace("does-not-exist", "X"), "no existence leak");
    const scoped = await chat(router.url, KEY_SCOPED, { model: "qwen-small" });
    assert.equal(scoped.status, 404);
    const allowed = await chat(router.url, KEY_SCOPED, { model: "other-model" });
    assert.equal(allowed.status, 200);
    const slug = await request(`${router.url}/d/t2/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { messages: [] } });
    assert.equal(slug.status, 404);
    assert.equal(sim.stats().requests, before + 1, "refused requests never reach a backend");
  });

  test("GET /v1/models lists only what the key may use", async () => {
    const all = await request(`${router.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.deepEqual(all.json().data.map((m: { id: string }) => m.id).sort(), ["Qwen/Qwen3-0.6B", "alias", "broke-model", "other-model", "qwen-small", "served-x"]);
    const scoped = await request(`${router.url}/v1/models`, { headers: { authorization: `Bearer ${KEY_SCOPED}` } });
    assert.deepEqual(scoped.json().data.map((m: { id: string }) => m.id), ["other-model"]);
    const b = await request(`${router.url}/v1/models`, { headers: { "x-api-key": KEY_B } });
    assert.deepEqual(b.json().data.map((m: { id: string }) => m.id), ["team2-model"]);
    assert.equal((await request(`${router.url}/v1/models`)).status, 401);
  });

  test("budget-blocked key or deployment → 429 insufficient_quota with the message", async () => {
    const k = await chat(router.url, BLOCKED);
    assert.equal(k.status, 429);
    assert.equal(k.json().error.code, "insufficient_quota");
    assert.equal(k.json().error.message, "Key budget exhausted.");
    const d = await chat(router.url, KEY, { model: "broke-model" });
    assert.equal(d.status, 429);
    assert.equal(d.json().error.message, "Team budget for March is exhausted.");
  });

  test("malformed input: bad JSON, non-object, missing model, non-boolean stream, oversize body, unknown route, wrong method", async () => {
    const bad = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: "{nope" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().error.type, "invalid_request_error");
    const arr = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: "[1,2]" });
    assert.equal(arr.status, 400);
    const noModel = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { messages: [] } });
    assert.equal(noModel.status, 400);
    assert.equal(noModel.json().error.param, "model");
    // Lax engines (pydantic) would stream on 1 or "true" while the router read it as not streaming (usage unbilled).
    for (const stream of [1, "true", 0, {}]) {
      const lax = await chat(router.url, KEY, { stream });
      assert.equal(lax.status, 400, JSON.stringify(stream));
      assert.equal(lax.json().error.type, "invalid_request_error");
      assert.equal(lax.json().error.param, "stream");
    }
    assert.equal((await chat(router.url, KEY, { stream: null })).status, 200, "null is absent");
    const big = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: { model: "qwen-small", messages: [{ role: "user", content: "x".repeat(100_000) }] } });
    assert.equal(big.status, 413);
    const unknown = await request(`${router.url}/v1/fine_tuning/jobs`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(unknown.status, 404);
    const get = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(get.status, 405);
  });

  test("slow headers are cut off (slowloris guard)", async () => {
    const r2 = await startRouter({ config: snapshot([deployment({ svlUrl: sim.url })]), logLevel: "silent", headersTimeoutMs: 300, requestTimeoutMs: 300, stateDir: `/tmp/tuna-rt-api2-${process.pid}` });
    try {
      const started = Date.now();
      const reply = await new Promise<string>((resolve) => {
        const s = connect(r2.port, "127.0.0.1", () => s.write("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"));
        let out = "";
        s.on("data", (c) => (out += c));
        s.on("close", () => resolve(out));
      });
      assert.ok(Date.now() - started < 5000, "connection closed by the server");
      assert.match(reply, /^HTTP\/1\.1 408/);
    } finally {
      await r2.close();
    }
  });

  test("official openai client: chat, stream, and error classes", async () => {
    const client = new OpenAI({ apiKey: KEY, baseURL: `${router.url}/v1`, maxRetries: 0 });
    const c = await client.chat.completions.create({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
    assert.equal(c.choices[0].message.content, "tuna swims fast");
    assert.equal(c.usage?.completion_tokens, 3);

    const stream = await client.chat.completions.create({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 4, stream: true });
    let text = "";
    let chunks = 0;
    for await (const ch of stream) {
      chunks++;
      text += ch.choices[0]?.delta?.content ?? "";
      assert.ok(ch.choices.length > 0, "usage-only chunk is not shown to a client that did not ask for it");
    }
    assert.equal(text, "tuna swims fast in");
    assert.equal(chunks, 6);

    const withUsage = await client.chat.completions.create({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 2, stream: true, stream_options: { include_usage: true } });
    let usage: unknown;
    for await (const ch of withUsage) if (ch.usage) usage = ch.usage;
    assert.deepEqual(usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });

    await assert.rejects(
      new OpenAI({ apiKey: "tuna_sk_wrong", baseURL: `${router.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: "qwen-small", messages: [] }),
      (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
    );
    await assert.rejects(
      client.chat.completions.create({ model: "team2-model", messages: [] }),
      (e: unknown) => e instanceof OpenAI.NotFoundError && (e as InstanceType<typeof OpenAI.NotFoundError>).code === "model_not_found",
    );
    const tight = new OpenAI({ apiKey: TIGHT, baseURL: `${router.url}/v1`, maxRetries: 0 });
    await tight.chat.completions.create({ model: "qwen-small", messages: [], max_tokens: 1 });
    await tight.chat.completions.create({ model: "qwen-small", messages: [], max_tokens: 1 });
    await assert.rejects(tight.chat.completions.create({ model: "qwen-small", messages: [], max_tokens: 1 }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal((e as InstanceType<typeof OpenAI.RateLimitError>).code, "rate_limit_exceeded");
      assert.match((e as Error).message, /rpm/);
      assert.ok(Number((e as InstanceType<typeof OpenAI.RateLimitError>).headers?.get("retry-after")) >= 1);
      return true;
    });
  });

  test("metrics and health endpoints", async () => {
    assert.equal((await request(`${router.url}/healthz`)).status, 200);
    assert.equal((await request(`${router.url}/readyz`)).status, 200);
    const m = await request(`${router.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.body, /tuna_router_requests_total\{deployment="dep_1",backend="svl",status="200"\} \d+/);
    assert.match(m.body, /tuna_router_limit_rejections_total\{limit="key_rpm"\} 1/);
    assert.match(m.body, /tuna_router_config_version 1/);
    assert.match(m.body, /tuna_router_ttft_seconds_bucket/);
    assert.ok(!m.body.includes("upstream-secret"));
  });

  test("with a metrics token, /metrics answers only to it; health probes stay open", async () => {
    const r2 = await startRouter({ config: snapshot([deployment({ svlUrl: sim.url })]), logLevel: "silent", metricsToken: "m-tok", stateDir: `/tmp/tuna-rt-api3-${process.pid}` });
    try {
      const refused: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, { authorization: `Bearer ${KEY}` }, { authorization: "m-tok" }];
      for (const headers of refused) {
        const denied = await request(`${r2.url}/metrics`, { headers });
        assert.equal(denied.status, 401);
        assert.equal(denied.json().error.code, "invalid_token");
        assert.ok(!denied.body.includes("tuna_router_"), "no metric in a refusal");
      }
      const ok = await request(`${r2.url}/metrics`, { headers: { authorization: "Bearer m-tok" } });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /tuna_router_config_version 1/);
      assert.equal((await request(`${r2.url}/healthz`)).status, 200);
      assert.equal((await request(`${r2.url}/readyz`)).status, 200);
    } finally {
      await r2.close();
    }
  });
});
