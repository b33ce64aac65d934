// The router's inbound HTTP/1.1 fast path, spoken to over raw sockets: pipelining, fragmentation, hand-off of
// everything outside its subset to Node's parser (with the unread bytes), smuggling shapes, timeouts, limits,
// streaming and client disconnects.
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../src/index.js";
import { deployment, KEY, sleep, snapshot, waitFor } from "./helpers/fixtures.js";

interface RawResponse {
  version: string;
  status: number;
  reason: string;
  /** Header lines in wire order and case. */
  rawHeaders: Array<[string, string]>;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** Chunk sizes as framed on the wire (chunked responses only). */
  chunks: number[] | undefined;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are asserted field by field
  json: () => any;
}

/** A client socket with a strict HTTP/1.1 response reader (status line, headers, content-length / chunked / close-delimited bodies). */
class RawClient {
  closed = false;
  closedAt = 0;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.poke();
    });
    sock.on("close", () => {
      this.closed = true;
      this.closedAt = Date.now();
      this.poke();
    });
    sock.on("error", () => undefined);
  }

  static async connect(port: number): Promise<RawClient> {
    const sock = net.connect(port, "127.0.0.1");
    sock.setNoDelay(true);
    await once(sock, "connect");
    return new RawClient(sock);
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** Writes `data` in `size`-byte pieces, each its own segment. */
  async drip(data: string | Buffer, size: number, gapMs = 1): Promise<void> {
    const b = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < b.length; off += size) {
      await new Promise<void>((r) => this.sock.write(b.subarray(off, off + size), () => r()));
      if (off + size < b.length) await sleep(gapMs);
    }
  }

  /** Bytes received and not consumed by a read. */
  get unread(): string {
    return this.buf.toString("latin1");
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async until(ready: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}; unread: ${JSON.stringify(this.unread)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; unread: ${JSON.stringify(this.unread)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async line(timeoutMs: number): Promise<string> {
    await this.until(() => this.buf.includes("\r\n"), "a CRLF-terminated line", timeoutMs);
    const eol = this.buf.indexOf("\r\n");
    const line = this.buf.toString("latin1", 0, eol);
    this.buf = this.buf.subarray(eol + 2);
    assert.ok(!/[\r\n]/.test(line), `bare CR or LF in line ${JSON.stringify(line)}`);
    return line;
  }

  private async take(n: number, timeoutMs: number): Promise<Buffer> {
    await this.until(() => this.buf.length >= n, `${n} body bytes`, timeoutMs);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads the next response (1xx included). `head`: the request was HEAD, so no body follows. */
  async read(opts: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const ms = opts.timeoutMs ?? 5000;
    const status = /^HTTP\/(1\.[01]) (\d{3}) ?(.*)$/.exec(await this.line(ms));
    assert.ok(status, "status line");
    const rawHeaders: Array<[string, string]> = [];
    const headers: Record<string, string> = {};
    for (;;) {
      const l = await this.line(ms);
      if (l === "") break;
      const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(l);
      assert.ok(m, `header line ${JSON.stringify(l)}`);
      rawHeaders.push([m[1], m[2]]);
      const k = m[1].toLowerCase();
      headers[k] = headers[k] === undefined ? m[2] : `${headers[k]}, ${m[2]}`;
    }
    const code = Number(status[2]);
    let body: Buffer = Buffer.alloc(0);
    let chunks: number[] | undefined;
    if (opts.head || code < 200 || code === 204 || code === 304) {
      // no body
    } else if (headers["transfer-encoding"] !== undefined) {
      assert.equal(headers["transfer-encoding"], "chunked");
      assert.equal(headers["content-length"], undefined, "content-length alongside transfer-encoding");
      chunks = [];
      const parts: Buffer[] = [];
      for (;;) {
        const sizeLine = await this.line(ms);
        assert.match(sizeLine, /^[0-9a-fA-F]+(;.*)?$/, "chunk size line");
        const size = Number.parseInt(sizeLine, 16);
        if (size === 0) break;
        chunks.push(size);
        parts.push(await this.take(size, ms));
        assert.equal(await this.line(ms), "", "CRLF after chunk data");
      }
      while ((await this.line(ms)) !== "") {
        // trailers
      }
      body = Buffer.concat(parts);
    } else if (headers["content-length"] !== undefined) {
      assert.match(headers["content-length"], /^\d+$/);
      body = await this.take(Number(headers["content-length"]), ms);
    } else {
      await this.untilClosed(ms);
      body = this.buf;
      this.buf = Buffer.alloc(0);
    }
    const text = body.toString("utf8");
    return { version: status[1], status: code, reason: status[3], rawHeaders, headers, body, chunks, text, json: () => JSON.parse(text) };
  }

  /** Resolves when the server has closed the connection (and this side saw it); rejects after `timeoutMs`. */
  async untilClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("connection still open");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Whether the connection is still open after `ms` (no close, no unexpected bytes). */
  async staysQuiet(ms: number): Promise<boolean> {
    await sleep(ms);
    return !this.closed && this.buf.length === 0;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

type HeaderList = Array<[string, string]>;

/** A request as raw bytes; `content-length` is added for a body unless a header list names framing itself. */
function raw(method: string, path: string, opts: { headers?: HeaderList; body?: string; version?: string; auth?: boolean } = {}): Buffer {
  const headers: HeaderList = [["host", "router.test"]];
  if (opts.auth !== false) headers.push(["authorization", `Bearer ${KEY}`]);
  if (opts.body !== undefined) headers.push(["content-type", "application/json"]);
  const own = opts.headers ?? [];
  const framed = own.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k));
  if (opts.body !== undefined && !framed) headers.push(["content-length", String(Buffer.byteLength(opts.body))]);
  headers.push(...own);
  const head = `${method} ${path} ${opts.version ?? "HTTP/1.1"}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(opts.body ?? "")]);
}

function chatBody(over: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hello there" }], max_tokens: 3, ...over });
}

const chatPost = (opts: { headers?: HeaderList; body?: string; version?: string } = {}) => raw("POST", "/v1/chat/completions", { body: chatBody(), ...opts });

/** Which parser answered: the fast path writes a lower-case `date` first; Node writes `Date` after the handler's headers. */
function servedBy(r: RawResponse): "fast" | "node" {
  if (r.rawHeaders[0]?.[0] === "date") return "fast";
  assert.ok(r.rawHeaders.some(([k]) => k === "Date"), "a response from neither path");
  return "node";
}

/** Asserts a 200 chat completion with `n` tokens and an RFC 7231 date. */
function assertCompletion(r: RawResponse, n = 3): void {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().object, "chat.completion");
  assert.equal(r.json().usage.completion_tokens, n);
  assertDate(r);
}

function assertDate(r: RawResponse): void {
  const d = r.headers.date;
  assert.ok(d, `${r.status} response without a date header`);
  assert.match(d, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.ok(Math.abs(Date.parse(d) - Date.now()) < 5000);
}

describe("inbound fast path over raw sockets", () => {
  let sim: SimulatorHandle;
  let slowSim: SimulatorHandle;
  let router: RouterHandle;
  const clients: RawClient[] = [];
  const MAX_BODY = 16 * 1024;

  const open = async (r: RouterHandle = router) => {
    const c = await RawClient.connect(r.port);
    clients.push(c);
    return c;
  };

  before(async () => {
    sim = await startSimulator({ model: ["qwen-small", "Qwen/Qwen3-0.6B"] });
    // Streams slowly enough to be cut mid-way.
    slowSim = await startSimulator({ model: ["slow-model"], tokensPerS: 50 });
    const config = snapshot([
      deployment({ svlUrl: sim.url, routing: { ...deployment().routing, policy: "serverless-only" } }),
      deployment({ id: "dep_slow", slug: "slow", models: ["slow-model"], svlUrl: slowSim.url, routing: { ...deployment().routing, policy: "serverless-only" } }),
    ]);
    router = await startRouter({ config, logLevel: "silent", maxBodyBytes: MAX_BODY, stateDir: `/tmp/tuna-rt-fast-${process.pid}` });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await router.close();
    await sim.close();
    await slowSim.close();
  });

  test("two pipelined POSTs in one write: two complete 200s, in order, on one fast-path connection", async () => {
    const c = await open();
    c.write(Buffer.concat([raw("POST", "/v1/chat/completions", { body: chatBody({ max_tokens: 2 }) }), raw("POST", "/v1/chat/completions", { body: chatBody({ max_tokens: 5 }) })]));
    const first = await c.read();
    const second = await c.read();
    assertCompletion(first, 2);
    assertCompletion(second, 5);
    assert.equal(servedBy(first), "fast");
    assert.equal(servedBy(second), "fast");
    assert.ok(await c.staysQuiet(50), "nothing more, and the connection stays open");
    c.write(raw("GET", "/healthz"));
    assert.equal((await c.read()).status, 200);
  });

  test("head and body in small fragments → 200: a few on the fast path, one byte per segment whichever parser takes it", async () => {
    const req = chatPost();
    const headEnd = req.indexOf("\r\n\r\n");
    const few = await open();
    // Cuts inside the request line, a header, the blank line's CRLFs and the body.
    let prev = 0;
    for (const cut of [5, headEnd - 20, headEnd + 1, headEnd + 3, headEnd + 10, req.length]) {
      await few.drip(req.subarray(prev, cut), cut - prev);
      await sleep(2);
      prev = cut;
    }
    const r = await few.read();
    assertCompletion(r);
    assert.equal(servedBy(r), "fast");
    // Hundreds of one-byte segments (a slow client may be handed to Node's parser; the answer is the same).
    const many = await open();
    await many.drip(req, 1);
    assertCompletion(await many.read());
    many.write(chatPost());
    assertCompletion(await many.read());
  });

  test("a chunked request after a fast-path one in the same write: the fast path answers the first, Node the rest, then keep-alive", async () => {
    const body = chatBody({ max_tokens: 4 });
    const chunked = raw("POST", "/v1/chat/completions", {
      headers: [["transfer-encoding", "chunked"]],
      body: `${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`,
    });
    const c = await open();
    c.write(Buffer.concat([chatPost(), chunked]));
    const first = await c.read();
    assertCompletion(first);
    assert.equal(servedBy(first), "fast");
    const second = await c.read();
    assertCompletion(second, 4);
    assert.equal(servedBy(second), "node");
    // The handed-off connection keeps serving.
    c.write(chatPost());
    const third = await c.read();
    assertCompletion(third);
    assert.equal(servedBy(third), "node");
  });

  test("Expect: 100-continue → 100 Continue, then the answer; the connection keeps serving", async () => {
    const c = await open();
    const req = chatPost({ headers: [["expect", "100-continue"], ["content-length", String(Buffer.byteLength(chatBody()))]] });
    const headEnd = req.indexOf("\r\n\r\n") + 4;
    c.write(req.subarray(0, headEnd));
    const interim = await c.read();
    assert.equal(interim.status, 100);
    c.write(req.subarray(headEnd));
    assertCompletion(await c.read());
    c.write(chatPost());
    assertCompletion(await c.read());
  });

  test("HTTP/1.0: answered by Node, then the connection is closed", async () => {
    const c = await open();
    c.write(chatPost({ version: "HTTP/1.0" }));
    const r = await c.read();
    assertCompletion(r);
    assert.equal(servedBy(r), "node");
    await c.untilClosed(2000);
    assert.equal(c.unread, "");
  });

  test("HEAD: headers only, and the next request on that connection parses cleanly", async () => {
    const c = await open();
    c.write(raw("HEAD", "/healthz"));
    const h = await c.read({ head: true });
    assert.equal(h.status, 200);
    assert.equal(servedBy(h), "node");
    assertDate(h);
    c.write(raw("GET", "/healthz"));
    const g = await c.read();
    assert.equal(g.status, 200);
    assert.deepEqual(g.json(), { status: "ok" });
  });

  test("a duplicate header is left to Node, which answers; then keep-alive", async () => {
    const c = await open();
    c.write(chatPost({ headers: [["x-trace", "a"], ["x-trace", "b"]] }));
    const r = await c.read();
    assertCompletion(r);
    assert.equal(servedBy(r), "node");
    c.write(chatPost());
    assertCompletion(await c.read());
  });

  test("smuggling shapes (content-length with transfer-encoding, two content-lengths) → 400 and close; nothing reaches the backend", async () => {
    const body = chatBody();
    const shapes: Record<string, Buffer> = {
      "content-length + transfer-encoding": raw("POST", "/v1/chat/completions", {
        headers: [["content-length", String(body.length + 7)], ["transfer-encoding", "chunked"]],
        body: `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      }),
      "transfer-encoding + content-length": raw("POST", "/v1/chat/completions", {
        headers: [["transfer-encoding", "chunked"], ["content-length", "4"]],
        body: `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      }),
      "two content-lengths": raw("POST", "/v1/chat/completions", {
        headers: [["content-length", String(body.length)], ["content-length", "5"]],
        body,
      }),
    };
    for (const [name, bytes] of Object.entries(shapes)) {
      const before = sim.stats().requests;
      const c = await open();
      // A complete, innocent request follows: if the framing were misread it would surface as a second answer.
      c.write(Buffer.concat([bytes, raw("GET", "/healthz")]));
      const r = await c.read();
      assert.equal(r.status, 400, name);
      await c.untilClosed(2000);
      assert.equal(c.unread, "", `${name}: exactly one response`);
      assert.equal(sim.stats().requests, before, name);
    }
  });

  test("bare LF line endings → 400 from Node's parser, at once, never read as a second request", async () => {
    const body = chatBody();
    const shapes: Record<string, Buffer> = {
      // A bare LF inside the head: the fast path refuses it; Node's parser decides.
      "bare LF between headers": Buffer.from(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\nx-a: 1\ncontent-length: 0\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      ),
      "LF-only head, then a CRLF request": Buffer.concat([
        Buffer.from(`POST /v1/chat/completions HTTP/1.1\nhost: x\nauthorization: Bearer ${KEY}\ncontent-length: ${body.length}\n\n${body}`),
        raw("GET", "/v1/models"),
      ]),
      // Nothing CRLF-terminated follows: the answer must not wait for the head timeout (10 s here).
      "LF-only head alone": Buffer.from(`POST /v1/chat/completions HTTP/1.1\nhost: x\nauthorization: Bearer ${KEY}\ncontent-length: ${body.length}\n\n${body}`),
      "LF-only GET": Buffer.from("GET /healthz HTTP/1.1\nhost: x\n\n"),
    };
    for (const [name, bytes] of Object.entries(shapes)) {
      const before = sim.stats().requests;
      const c = await open();
      c.write(bytes);
      const r = await c.read({ timeoutMs: 2000 });
      assert.equal(r.status, 400, name);
      await c.untilClosed(2000);
      assert.equal(c.unread, "", `${name}: one answer`);
      assert.equal(sim.stats().requests, before, name);
    }
  });

  test("a client that closes its side (FIN) while its request runs is gone: the upstream request is aborted, as through Node's server", async () => {
    // 200 tokens at 50 tokens/s: four seconds of generation, of which the router must not wait for more than a moment.
    for (const stream of [false, true]) {
      const c = await open();
      c.write(chatPost({ body: JSON.stringify({ model: "slow-model", messages: [{ role: "user", content: "go" }], max_tokens: 200, stream }) }));
      await waitFor(() => slowSim.stats().inflight === 1, 2000);
      c.sock.end();
      const t0 = Date.now();
      await waitFor(() => slowSim.stats().inflight === 0, 1500);
      assert.ok(Date.now() - t0 < 1500, `stream=${stream}: the backend stopped generating`);
      await c.untilClosed(2000);
    }
    // Without a request in progress a FIN just closes the connection.
    const idle = await open();
    idle.write(chatPost());
    assertCompletion(await idle.read());
    idle.sock.end();
    await idle.untilClosed(2000);
  });

  test("connection: close → the response says so and the server closes; requests pipelined after it are not processed", async () => {
    const c = await open();
    c.write(chatPost({ headers: [["connection", "close"]] }));
    const r = await c.read();
    assertCompletion(r);
    assert.equal(servedBy(r), "fast");
    assert.equal(r.headers.connection, "close");
    await c.untilClosed(2000);

    for (const first of [raw("GET", "/healthz", { headers: [["connection", "close"]] }), chatPost({ headers: [["connection", "close"]] })]) {
      const before = sim.stats().requests;
      const p = await open();
      p.write(Buffer.concat([first, chatPost()]));
      const only = await p.read();
      assert.equal(only.status, 200);
      assert.equal(only.headers.connection, "close");
      await p.untilClosed(2000);
      assert.equal(p.unread, "", "no answer to a request after connection: close");
      await sleep(50);
      assert.equal(sim.stats().requests, before + (first.includes("/healthz") ? 0 : 1), "the pipelined request never reached the backend");
    }
  });

  test("a body above maxBodyBytes → 413 with an OpenAI error body, and the connection is closed", async () => {
    const c = await open();
    // Only the head: the answer must not wait for a body the router will not read.
    c.write(raw("POST", "/v1/chat/completions", { headers: [["content-type", "application/json"], ["content-length", String(MAX_BODY + 1)]] }));
    const r = await c.read();
    assert.equal(r.status, 413);
    assert.equal(r.json().error.code, "request_too_large");
    assert.equal(r.json().error.type, "invalid_request_error");
    assertDate(r);
    await c.untilClosed(2000);
    // At the limit exactly, the fast path still takes it (a JSON body padded with spaces).
    const ok = await open();
    const body = chatBody();
    ok.write(chatPost({ body: body + " ".repeat(MAX_BODY - body.length) }));
    const fine = await ok.read();
    assertCompletion(fine);
    assert.equal(servedBy(fine), "fast");
  });

  test("a request head above the header limit → 431 from Node, whether it arrives whole or in pieces", async () => {
    const big = raw("GET", "/healthz", { headers: [["x-big", "a".repeat(20 * 1024)]] });
    for (const pieces of [1, 8]) {
      const c = await open();
      await c.drip(big, Math.ceil(big.length / pieces));
      const r = await c.read();
      assert.equal(r.status, 431, `${pieces} piece(s)`);
      assert.ok(!Number.isNaN(Date.parse(r.headers.date ?? "")), "431 carries a date");
      await c.untilClosed(2000);
    }
  });

  test("streaming through the fast path: valid chunked encoding carrying SSE events and data: [DONE]", async () => {
    const c = await open();
    c.write(chatPost({ body: chatBody({ stream: true, max_tokens: 4 }) }));
    const r = await c.read();
    assert.equal(r.status, 200);
    assert.equal(servedBy(r), "fast");
    assertDate(r);
    assert.equal(r.headers["transfer-encoding"], "chunked");
    assert.match(r.headers["content-type"], /^text\/event-stream/);
    assert.ok(r.chunks && r.chunks.length >= 1);
    assert.ok(r.text.endsWith("\n\n"));
    const events = r.text.split("\n\n").filter(Boolean);
    for (const e of events) assert.match(e, /^data: /);
    assert.equal(events.at(-1), "data: [DONE]");
    const parsed = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    assert.equal(parsed.map((p) => p.choices[0]?.delta?.content ?? "").join(""), "tuna swims fast in");
    assert.ok(parsed.every((p) => p.choices.length > 0), "the usage-only chunk the router asked for is not shown");
    // The connection is reusable after the last chunk.
    c.write(raw("GET", "/healthz"));
    assert.equal((await c.read()).status, 200);
  });

  test("a client that disconnects mid-stream leaves nothing in flight, at the router or the backend", async () => {
    const c = await open();
    c.write(chatPost({ body: JSON.stringify({ model: "slow-model", messages: [{ role: "user", content: "go" }], max_tokens: 200, stream: true }) }));
    // Head and the first event, then hang up while the backend is still generating (200 tokens at 50/s).
    await waitFor(() => c.unread.includes("data: {"), 5000, 5);
    assert.match(c.unread, /^HTTP\/1\.1 200 /);
    assert.equal(router.inflight(), 1);
    assert.equal(slowSim.stats().inflight, 1);
    c.destroy();
    await waitFor(() => router.inflight() === 0, 3000);
    await waitFor(() => slowSim.stats().inflight === 0, 3000);
    // And the router still serves.
    const next = await open();
    next.write(chatPost());
    assertCompletion(await next.read());
  });

  test("GET /v1/models and /healthz on the fast path; a malformed percent-escape → 404 and the router keeps serving", async () => {
    const c = await open();
    c.write(raw("GET", "/v1/models"));
    const models = await c.read();
    assert.equal(models.status, 200);
    assert.equal(servedBy(models), "fast");
    assert.deepEqual(models.json().data.map((m: { id: string }) => m.id).sort(), ["Qwen/Qwen3-0.6B", "qwen-small", "slow-model"]);
    c.write(raw("GET", "/healthz", { auth: false }));
    const health = await c.read();
    assert.equal(health.status, 200);
    assert.equal(servedBy(health), "fast");
    assert.deepEqual(health.json(), { status: "ok" });
    c.write(raw("GET", "/d/%E0%A4%A/v1/models"));
    const bad = await c.read();
    assert.equal(bad.status, 404);
    assert.equal(bad.json().error.code, "not_found");
    assertDate(bad);
    c.write(raw("GET", "/d/slow/v1/models"));
    const scoped = await c.read();
    assert.equal(scoped.status, 200);
    assert.deepEqual(scoped.json().data.map((m: { id: string }) => m.id), ["slow-model"]);
    const other = await open();
    other.write(chatPost());
    assertCompletion(await other.read());
  });

  test("every answer carries a date header: fast path, Node's path, errors", async () => {
    const c = await open();
    c.write(raw("GET", "/v1/models", { auth: false }));
    const unauth = await c.read();
    assert.equal(unauth.status, 401);
    assert.equal(servedBy(unauth), "fast");
    assertDate(unauth);
    c.write(raw("POST", "/v1/chat/completions", { body: "{nope" }));
    const badJson = await c.read();
    assert.equal(badJson.status, 400);
    assertDate(badJson);
    c.write(raw("GET", "/v1/chat/completions"));
    const wrongMethod = await c.read();
    assert.equal(wrongMethod.status, 405);
    assertDate(wrongMethod);
    c.write(chatPost({ headers: [["x-dup", "1"], ["x-dup", "2"]] }));
    const viaNode = await c.read();
    assert.equal(servedBy(viaNode), "node");
    assertCompletion(viaNode);
  });
});

describe("inbound fast path: timeouts", () => {
  let sim: SimulatorHandle;
  let router: RouterHandle;
  const clients: RawClient[] = [];
  const KEEP_ALIVE = 300;
  const HEADERS = 300;
  const REQUEST = 2000;
  // The fast path checks its timers once a second: allow that much beyond each timeout.
  const SWEEP = 1000;

  before(async () => {
    sim = await startSimulator({ model: ["qwen-small"] });
    router = await startRouter({
      config: snapshot([deployment({ svlUrl: sim.url, routing: { ...deployment().routing, policy: "serverless-only" } })]),
      logLevel: "silent", keepAliveTimeoutMs: KEEP_ALIVE, headersTimeoutMs: HEADERS, requestTimeoutMs: REQUEST,
      stateDir: `/tmp/tuna-rt-fast-t-${process.pid}`,
    });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await router.close();
    await sim.close();
  });
  const open = async () => {
    const c = await RawClient.connect(router.port);
    clients.push(c);
    return c;
  };

  test("an idle keep-alive connection is closed after keepAliveTimeoutMs", async () => {
    const c = await open();
    c.write(chatPost());
    const r = await c.read();
    assertCompletion(r);
    assert.equal(servedBy(r), "fast");
    const answeredAt = Date.now();
    await c.untilClosed(KEEP_ALIVE + SWEEP + 1500);
    const idle = c.closedAt - answeredAt;
    assert.ok(idle >= KEEP_ALIVE - 50, `closed after ${idle} ms idle`);
    assert.equal(c.unread, "", "closed without a word");
  });

  test("a partial request head → 408 and close after headersTimeoutMs", async () => {
    const c = await open();
    const started = Date.now();
    c.write("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n");
    const r = await c.read({ timeoutMs: HEADERS + SWEEP + 1500 });
    const waited = Date.now() - started;
    assert.equal(r.status, 408);
    assert.ok(waited >= HEADERS - 50, `408 after ${waited} ms`);
    assert.ok(!Number.isNaN(Date.parse(r.headers.date ?? "")), "408 carries a date");
    assert.ok(waited < REQUEST - 100, `408 after ${waited} ms: the head timeout applies, not the request timeout`);
    await c.untilClosed(2000);
  });

  test("a head dripped over more packets than the fast path reads is still cut at headersTimeoutMs after Node takes it", async () => {
    // After 32 packets of one head the connection goes to Node, whose own header timer would start again there.
    const HT = 2000;
    const r2 = await startRouter({
      config: snapshot([deployment({ svlUrl: sim.url })]), logLevel: "silent", headersTimeoutMs: HT, stateDir: `/tmp/tuna-rt-fast-drip-${process.pid}`,
    });
    const s = net.connect(r2.port, "127.0.0.1");
    try {
      s.setNoDelay(true);
      await once(s, "connect");
      let got = "";
      let closedAt = 0;
      s.on("data", (d) => (got += d));
      s.on("error", () => undefined);
      s.on("close", () => (closedAt = Date.now()));
      const started = Date.now();
      // One byte per 50 ms: the hand-off comes ~1.65 s in, well before the deadline.
      const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-filler: ${"a".repeat(400)}`;
      for (let i = 0; i < head.length && !closedAt && Date.now() - started < 10_000; i++) {
        s.write(head[i]);
        await sleep(50);
      }
      await waitFor(() => closedAt > 0, 10_000, 20).catch(() => undefined);
      const took = (closedAt || Date.now()) - started;
      assert.match(got, /^HTTP\/1\.1 408 /);
      assert.ok(took >= HT - 50 && took < HT + SWEEP + 400, `the dripped head was cut after ${took} ms (headersTimeoutMs ${HT})`);
    } finally {
      s.destroy();
      await r2.close();
    }
  });

  test("a partial body → 408 and close after requestTimeoutMs (not the shorter head timeout)", async () => {
    const c = await open();
    const started = Date.now();
    const req = chatPost();
    c.write(req.subarray(0, req.length - 5));
    const r = await c.read({ timeoutMs: REQUEST + SWEEP + 1500 });
    const waited = Date.now() - started;
    assert.equal(r.status, 408);
    assert.ok(waited >= REQUEST - 50, `408 after ${waited} ms`);
    await c.untilClosed(2000);
    assert.equal(router.inflight(), 0);
  });
});

describe("inbound fast path: graceful shutdown", () => {
  test("idle connections close at once; an in-flight stream finishes, then its connection closes", async () => {
    const sim = await startSimulator({ model: ["qwen-small"], tokensPerS: 50 });
    const router = await startRouter({
      config: snapshot([deployment({ svlUrl: sim.url, routing: { ...deployment().routing, policy: "serverless-only" } })]),
      logLevel: "silent", shutdownTimeoutMs: 5000, stateDir: `/tmp/tuna-rt-fast-s-${process.pid}`,
    });
    const idle = await RawClient.connect(router.port);
    const busy = await RawClient.connect(router.port);
    try {
      idle.write(raw("GET", "/healthz"));
      assert.equal((await idle.read()).status, 200);
      busy.write(chatPost({ body: chatBody({ stream: true, max_tokens: 15 }) }));
      await waitFor(() => busy.unread.includes("data: {"), 5000, 5);
      const closing = router.close();
      await idle.untilClosed(2000);
      const r = await busy.read();
      assert.equal(r.status, 200);
      assert.ok(r.text.endsWith("data: [DONE]\n\n"), "the stream ran to its end");
      await busy.untilClosed(2000);
      await closing;
      assert.equal(router.inflight(), 0);
    } finally {
      idle.destroy();
      busy.destroy();
      await router.close();
      await sim.close();
    }
  });
});
