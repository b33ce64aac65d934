// Small pure pieces whose edge cases are awkward to reach over sockets.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { routerSnapshotSchema, usageReportSchema } from "../src/contract.js";
import type { IncomingMessage } from "node:http";
import { intOption, parseArgs } from "../src/args.js";
import { authenticate, hashApiKey } from "../src/auth.js";
import type { ApiKeyConfig } from "../src/contract.js";
import { clientResponseHead, SseTap, usageFromJson, usageFromTail } from "../src/proxy.js";
import { UsageAggregator } from "../src/usage.js";
import { deployment, snapshot } from "./helpers/fixtures.js";

describe("SseTap", () => {
  const events = [
    'data: {"choices":[{"delta":{"content":"héllo ✓"}}]}\n\n',
    'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
    "data: [DONE]\n\n",
  ];
  const bytes = Buffer.from(events.join(""));

  test("reads usage across arbitrary chunk boundaries (including inside a UTF-8 character) and strips it when not asked", () => {
    for (const size of [1, 2, 3, 7, 50, bytes.length]) {
      const tap = new SseTap(false);
      let out = "";
      for (let i = 0; i < bytes.length; i += size) out += tap.push(bytes.subarray(i, i + size)) ?? "";
      out += tap.flush() ?? "";
      assert.deepEqual(tap.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, `chunk ${size}`);
      assert.equal(out, events[0] + events[2], `chunk ${size}`);
    }
  });

  test("keeps the usage chunk when the client asked for it", () => {
    const tap = new SseTap(true);
    const out = (tap.push(bytes) ?? "") + (tap.flush() ?? "");
    assert.equal(out, events.join(""));
  });

  test("CRLF, CR and mixed line endings (sse-starlette sends CRLF): each event is forwarded once complete; usage read and stripped", () => {
    const content = 'data: {"choices":[{"delta":{"content":"a"}}]}';
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}';
    for (const eol of ["\r\n", "\r", "\n"]) {
      // A comment line and an `event:` field too: a blank line ends the event, whatever comes before it.
      const first = `: ping${eol}event: message${eol}${content}${eol}${eol}`;
      const rest = `${usage}${eol}${eol}data: [DONE]${eol}${eol}`;
      const tap = new SseTap(false);
      // The first event goes out as soon as its blank line is in; for CRLF the final LF may come later.
      const cut = eol === "\r\n" ? first.length - 1 : first.length;
      assert.equal(tap.push(Buffer.from(first.slice(0, cut))), first.slice(0, cut), JSON.stringify(eol));
      let out = first.slice(0, cut);
      const tail = Buffer.from(first.slice(cut) + rest);
      for (let i = 0; i < tail.length; i += 5) out += tap.push(tail.subarray(i, i + 5)) ?? "";
      out += tap.flush() ?? "";
      assert.deepEqual(tap.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, JSON.stringify(eol));
      assert.equal(out, `${first}data: [DONE]${eol}${eol}`, JSON.stringify(eol));
    }
    // Mixed: CRLF lines, an LF blank line; CR lines, a CRLF blank line.
    const tap = new SseTap(false);
    const mixed = `${content}\r\n\n${usage}\r\r\ndata: [DONE]\n\r\n`;
    const out = (tap.push(Buffer.from(mixed)) ?? "") + (tap.flush() ?? "");
    assert.equal(tap.usage?.total_tokens, 5);
    assert.equal(out, `${content}\r\n\ndata: [DONE]\n\r\n`);
  });

  test("usage is found by parsing the event's JSON: spaces (Python's json.dumps), data over several lines, no blank line at the end", () => {
    const spaced = 'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}\n\n';
    const tap = new SseTap(false);
    assert.equal(tap.push(Buffer.from(spaced)), "");
    assert.deepEqual(tap.usage, { prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 });
    const split = new SseTap(true);
    const multi = 'data: {"choices": [],\ndata: "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n';
    assert.equal(split.push(Buffer.from(multi)), multi, "kept: the client asked for usage");
    assert.equal(split.usage?.completion_tokens, 1);
    // A stream that ends without the last blank line: its usage still counts.
    const cut = new SseTap(false);
    assert.equal(cut.push(Buffer.from('data: {"choices":[],"usage":{"completion_tokens":4}}')), null);
    cut.flush();
    assert.equal(cut.usage?.completion_tokens, 4);
    // Text that merely mentions usage is forwarded untouched.
    const chat = new SseTap(false);
    const mention = 'data: {"choices":[{"delta":{"content":"\\"usage\\": {}"}}],"note":"usage"}\n\n';
    assert.equal(chat.push(Buffer.from(mention)), mention);
    assert.equal(chat.usage, undefined);
  });
});

describe("contract", () => {
  test("accepts the DESIGN.md §3.6 example and rejects duplicates and bad URLs", () => {
    const ok = routerSnapshotSchema.safeParse(snapshot([deployment({ svlUrl: "http://127.0.0.1:9001", spotUrl: "http://127.0.0.1:9002" })]));
    assert.ok(ok.success);
    const dup = snapshot([deployment({ svlUrl: "http://a" }), deployment({ svlUrl: "http://b" })]);
    assert.equal(routerSnapshotSchema.safeParse(dup).success, false);
    assert.equal(routerSnapshotSchema.safeParse(snapshot([deployment({ svlUrl: "file:///etc/passwd" })])).success, false);
  });

  test("rejects what would be ambiguous or unsafe at request time, naming where", () => {
    const issues = (snap: ReturnType<typeof snapshot>) => {
      const r = routerSnapshotSchema.safeParse(snap);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    };
    const withHeaders = (headers: Record<string, string>) => {
      const d = deployment({ svlUrl: "http://a" });
      d.backends[0].headers = headers;
      return snapshot([d]);
    };
    assert.deepEqual(issues(withHeaders({ Host: "evil", "Content-Length": "0" })), ["deployments.0.backends.0.headers.Host: set by the router itself", "deployments.0.backends.0.headers.Content-Length: set by the router itself"]);
    assert.deepEqual(issues(withHeaders({ "bad name": "x" })), ["deployments.0.backends.0.headers.bad name: not a valid header name"]);
    assert.deepEqual(issues(withHeaders({ authorization: "Bearer x", "x-extra": "1" })), []);
    // Backend ids go out in x-tuna-backend: one Node's writeHead refuses (or the fast path would mangle) never loads.
    for (const id of ["raw\u2713", "a b", "line\nbreak", ""]) {
      const d = deployment({ svlUrl: "http://a" });
      d.backends[0].id = id;
      assert.deepEqual(issues(snapshot([d])), ["deployments.0.backends.0.id: a backend id is 1-200 printable ASCII characters without spaces (it is sent in x-tuna-backend)"], JSON.stringify(id));
    }
    const weighted = deployment({ svlUrl: "http://a", spotUrl: "http://b" });
    weighted.routing = { policy: "weighted", weights: { svl: 1, spto: 1 } };
    assert.deepEqual(issues(snapshot([weighted])), ["deployments.0.routing.weights.spto: no backend with this id"]);
    const keys = snapshot([deployment({ svlUrl: "http://a" })]);
    keys.apiKeys.push({ ...keys.apiKeys[0] }, { ...keys.apiKeys[1], id: "key_new" });
    keys.apiKeys[4].hash = keys.apiKeys[4].hash.toUpperCase();
    assert.deepEqual(issues(keys), ["apiKeys.3.id: duplicate key id", "apiKeys.3.hash: duplicate key hash", "apiKeys.4.hash: duplicate key hash"]);
  });
});

describe("UsageAggregator", () => {
  test("a failed-over attempt adds busy time but is not a request; drain resets", () => {
    const agg = new UsageAggregator();
    const base = { keyId: "k", deploymentId: "d", backendKind: "spot" as const, inputTokens: 0, outputTokens: 0, latencyMs: 3, ttftMs: undefined, busyMs: 3 };
    agg.record({ ...base, backendId: "spot", error: true, countRequest: false });
    agg.record({ ...base, backendId: "svl", backendKind: "serverless", error: false, inputTokens: 4, outputTokens: 9, ttftMs: 2 });
    const r = agg.drain("router-1", 5);
    assert.ok(r);
    assert.ok(usageReportSchema.safeParse(r).success);
    const spot = r.entries.find((e) => e.backendId === "spot");
    const svl = r.entries.find((e) => e.backendId === "svl");
    assert.equal(spot?.requests, 0);
    assert.equal(spot?.busyMs, 3);
    assert.equal(svl?.requests, 1);
    assert.equal(svl?.outputTokens, 9);
    assert.equal(agg.drain("router-1", 5), undefined);
  });
});

describe("command-line options", () => {
  test("--name value, --name=value and bare --name; a typo or a bare word is an error naming it", () => {
    const known = ["port", "config", "help"] as const;
    assert.deepEqual(parseArgs(["--port", "8080", "--config=a=b.json", "--help"], known), { port: "8080", config: "a=b.json", help: "true" });
    assert.throws(() => parseArgs(["--prot", "8080"], known), /unknown option --prot; known: --port, --config, --help/);
    assert.throws(() => parseArgs(["--prot=8080"], known), /unknown option --prot;/);
    assert.throws(() => parseArgs(["config.json"], known), /unexpected argument "config.json"/);
  });

  test("whole-number options: flag over environment over default; NaN, fractions and out-of-range values name their source", () => {
    const env = "TUNA_TEST_INT_OPTION";
    const saved = process.env[env];
    try {
      delete process.env[env];
      assert.equal(intOption({}, "max-inflight", { env, fallback: 7, min: 1 }), 7);
      process.env[env] = "12";
      assert.equal(intOption({}, "max-inflight", { env, min: 1 }), 12);
      assert.equal(intOption({ "max-inflight": "3" }, "max-inflight", { env, min: 1 }), 3);
      process.env[env] = "abc";
      assert.throws(() => intOption({}, "max-inflight", { env, min: 1 }), /TUNA_TEST_INT_OPTION must be a whole number ≥ 1, got "abc"/);
      assert.throws(() => intOption({ "max-inflight": "-5" }, "max-inflight", { env, min: 1 }), /--max-inflight must be a whole number ≥ 1, got "-5"/);
      assert.throws(() => intOption({ port: "1.5" }, "port", { min: 0, max: 65535 }), /--port must be a whole number 0–65535/);
      assert.throws(() => intOption({ port: "70000" }, "port", { min: 0, max: 65535 }), /got "70000"/);
    } finally {
      if (saved === undefined) delete process.env[env];
      else process.env[env] = saved;
    }
  });
});

describe("hot-path helpers", () => {
  test("client response head: hop-by-hop and Connection-listed headers dropped, router headers replace upstream ones", () => {
    const up = {
      rawHeaders: [
        "Content-Type", "application/json", "Content-Length", "12", "Connection", "keep-alive, X-Hop", "X-Hop", "1",
        "Set-Cookie", "a=1", "Server", "s", "X-Ratelimit-Limit-Requests", "999", "x-tuna-backend", "evil", "X-Up", "kept",
      ],
    } as unknown as IncomingMessage;
    const head = clientResponseHead(up, ["x-ratelimit-limit-requests", "10", "x-tuna-backend", "svl"]);
    assert.equal(head.sse, false);
    assert.equal(head.contentLength, 12);
    assert.deepEqual(head.headers, ["content-type", "application/json", "content-length", "12", "x-up", "kept", "x-ratelimit-limit-requests", "10", "x-tuna-backend", "svl"]);
    const sse = clientResponseHead({ rawHeaders: ["content-type", "text/event-stream", "content-length", "5"] } as unknown as IncomingMessage, []);
    assert.equal(sse.sse, true);
    assert.deepEqual(sse.headers, ["content-type", "text/event-stream"], "SSE is re-framed: no content-length");
  });

  test("client response framing: Transfer-Encoding wins over Content-Length (dropped, re-framed); a repeated length is sent once", () => {
    const both = clientResponseHead({ rawHeaders: ["Content-Length", "10", "Transfer-Encoding", "chunked", "Content-Type", "application/json"] }, []);
    assert.equal(both.contentLength, -1, "the body's length is unknown: not buffered as if it were 10 bytes");
    assert.deepEqual(both.headers, ["content-type", "application/json"]);
    const twice = clientResponseHead({ rawHeaders: ["Content-Length", "2", "content-length", "2"] }, []);
    assert.equal(twice.contentLength, 2);
    assert.deepEqual(twice.headers, ["content-length", "2"]);
  });

  test("usage is read from the bytes of a JSON body, with a full-parse fallback", () => {
    assert.deepEqual(usageFromJson(Buffer.from('{"x":"é","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}')), { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    assert.deepEqual(usageFromJson(Buffer.from('{"usage":{"prompt_tokens":1,"details":{"a":1}},"z":1}')), { prompt_tokens: 1, details: { a: 1 } });
    assert.equal(usageFromJson(Buffer.from("not json")), undefined);
    assert.deepEqual(usageFromJson(Buffer.from('{"usage": {"prompt_tokens": 2}, "x": [1]}')), { prompt_tokens: 2 });
    // A nested "usage" is not the answer's: the full parse finds the top-level one (or none).
    assert.equal(usageFromJson(Buffer.from('{"data":[{"usage":{"prompt_tokens":9}}]}')), undefined);
  });

  test("usage from the tail of a large body: the top-level object, even with nested details, spaces or members after it", () => {
    const usage = { prompt_tokens: 7000, total_tokens: 7000, prompt_tokens_details: { cached_tokens: 0 } };
    // The tail starts mid-body (here inside a string, and inside the data array).
    const tail = (rest: string) => Buffer.from(`0.5,0.6]}, {"embedding":[0.1, "x}"]}],"model":"m",${rest}`);
    assert.deepEqual(usageFromTail(tail(`"usage":${JSON.stringify(usage)}}`)), usage);
    assert.deepEqual(usageFromTail(tail(`"usage" : ${JSON.stringify(usage, null, 1)} , "system_fingerprint": "a}b" }\n`)), usage);
    assert.equal(usageFromTail(tail('"x":{"usage":{"prompt_tokens":1}}}')), undefined, "nested: not the answer's usage");
    assert.equal(usageFromTail(tail('"text":"\\"usage\\":{\\"prompt_tokens\\":1}}"}')), undefined, "inside a string");
    assert.equal(usageFromTail(tail('"usage":{"prompt_tokens":1')), undefined, "cut off");
    assert.equal(usageFromTail(Buffer.from("")), undefined);
  });

  test("the key-hash cache never outlives revocation or a config swap", () => {
    const raw = "tuna_sk_unit_cache";
    const key: ApiKeyConfig = { id: "k", hash: hashApiKey(raw), teamId: "t", deployments: "*", limits: {}, expiresAt: null };
    const headers = { authorization: `Bearer ${raw}` };
    assert.equal(authenticate(headers, new Map([[key.hash, key]])).ok, true);
    assert.equal(authenticate(headers, new Map([[key.hash, key]])).ok, true, "served from the cache");
    assert.equal(authenticate(headers, new Map([[key.hash, { ...key, revoked: true }]])).ok, false);
    assert.equal(authenticate(headers, new Map()).ok, false);
  });
});
