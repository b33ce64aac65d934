// Upstream HTTP/1.1 client (UpstreamPool / Exchange) over loopback, and the router's relay of what it reads. The
// fake backends are raw TCP servers that write exact bytes, so fragmentation, framing and malformed answers are
// under the test's control.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { type Exchange, type PoolOptions, requestHead, type UpstreamFailure, UpstreamPool, validHeader } from "../src/upstream.js";
import type { DeploymentConfig, RouterSnapshot } from "../src/contract.js";
import { startRouter } from "../src/index.js";
import { agent, deployment, freePort, KEY, request, sleep, snapshot, waitFor } from "./helpers/fixtures.js";

interface FakeRequest {
  head: string;
  body: Buffer;
  path: string;
  /** Which accepted connection (1-based) and which request on it (1-based). */
  conn: number;
  nth: number;
}

type Responder = (req: FakeRequest, sock: net.Socket) => void;

/** A raw TCP backend: reads content-length framed requests (as the pool sends them) and lets the test answer with any bytes. */
class FakeUpstream {
  readonly requests: FakeRequest[] = [];
  accepted = 0;
  port = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly pools: UpstreamPool[] = [];

  private constructor(private readonly respond: Responder) {
    this.server = net.createServer((sock) => this.onConnection(sock));
  }

  static async start(t: TestContext, respond: Responder): Promise<FakeUpstream> {
    const f = new FakeUpstream(respond);
    f.server.listen(0, "127.0.0.1");
    await once(f.server, "listening");
    f.port = (f.server.address() as net.AddressInfo).port;
    t.after(() => f.close());
    return f;
  }

  pool(opts: Partial<PoolOptions> = {}): UpstreamPool {
    const p = new UpstreamPool(new URL(`http://127.0.0.1:${this.port}`), { connectTimeoutMs: 1000, ...opts });
    this.pools.push(p);
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Server-side connections still open. */
  get open(): number {
    return this.sockets.size;
  }

  private onConnection(sock: net.Socket): void {
    const conn = ++this.accepted;
    let nth = 0;
    let buf = Buffer.alloc(0);
    sock.setNoDelay(true);
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => undefined);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const req = { head, body: buf.subarray(end + 4, end + 4 + len), path: head.split(" ")[1], conn, nth: ++nth };
        buf = buf.subarray(end + 4 + len);
        this.requests.push(req);
        this.respond(req, sock);
      }
    });
  }

  async close(): Promise<void> {
    for (const p of this.pools) p.close(true);
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** Writes `bytes` as separate TCP segments, cut at the `cuts` offsets (default: after every byte), pausing between pieces. */
async function drip(sock: net.Socket, bytes: string | Buffer, cuts?: number[]): Promise<void> {
  const b = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
  const at = cuts ?? Array.from({ length: b.length - 1 }, (_, i) => i + 1);
  let prev = 0;
  for (const c of [...at, b.length]) {
    if (sock.destroyed) return;
    await new Promise<void>((r) => sock.write(b.subarray(prev, c), () => r()));
    prev = c;
    if (c < b.length) await sleep(1);
  }
}

const PAYLOAD = Buffer.from('{"hello":"upstream"}');

interface Call {
  x: Exchange;
  heads: number;
  fails: UpstreamFailure[];
  /** The first of head/fail. */
  settled: Promise<Exchange | UpstreamFailure>;
}

function send(pool: UpstreamPool, path = "/v1/x", onHead?: (x: Exchange) => void): Call {
  let resolve: (v: Exchange | UpstreamFailure) => void = () => undefined;
  const settled = new Promise<Exchange | UpstreamFailure>((r) => {
    resolve = r;
  });
  const fails: UpstreamFailure[] = [];
  const call = { heads: 0, fails, settled } as Call;
  call.x = pool.request(requestHead("POST", path, ["host", "up.test", "content-length", String(PAYLOAD.length)]), PAYLOAD, {
    head(x) {
      call.heads++;
      onHead?.(x);
      resolve(x);
    },
    fail(reason) {
      fails.push(reason);
      resolve(reason);
    },
  });
  return call;
}

interface Body {
  chunks: Buffer[];
  /** Every end/abort callback, in order (exactly one is expected). */
  terminal: Array<"end" | "abort">;
  dataAfterTerminal: number;
  done: Promise<"end" | "abort">;
  bytes(): Buffer;
}

function consume(x: Exchange, onData?: (chunk: Buffer) => void): Body {
  let resolve: (v: "end" | "abort") => void = () => undefined;
  const b: Body = {
    chunks: [],
    terminal: [],
    dataAfterTerminal: 0,
    done: new Promise((r) => {
      resolve = r;
    }),
    bytes: () => Buffer.concat(b.chunks),
  };
  x.start({
    data(c) {
      if (b.terminal.length) b.dataAfterTerminal++;
      b.chunks.push(Buffer.from(c));
      onData?.(c);
    },
    end() {
      b.terminal.push("end");
      resolve("end");
    },
    abort() {
      b.terminal.push("abort");
      resolve("abort");
    },
  });
  return b;
}

interface Fetched {
  x: Exchange;
  call: Call;
  body: Body;
  how: "end" | "abort";
  text: string;
}

/** One request: head, then the whole body; asserts the head arrived (not a failure). */
async function fetchVia(pool: UpstreamPool, path = "/v1/x", startDelayMs = 0): Promise<Fetched> {
  const call = send(pool, path);
  const x = await call.settled;
  if (typeof x === "string") assert.fail(`expected a response head, got fail(${x})`);
  if (startDelayMs) await sleep(startDelayMs);
  const body = consume(x);
  const how = await body.done;
  return { x, call, body, how, text: body.bytes().toString("latin1") };
}

/** After the exchange settled: no second terminal callback and no data after it. */
async function assertSettledOnce(f: { call: Call; body?: Body }): Promise<void> {
  await sleep(30);
  assert.equal(f.call.heads + f.call.fails.length, 1, "head or fail fires exactly once");
  if (f.body) {
    assert.equal(f.body.terminal.length, 1, `one terminal callback, got ${f.body.terminal.join(",")}`);
    assert.equal(f.body.dataAfterTerminal, 0);
  }
}

const OK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
const CHUNKED =
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-After: 1\r\n\r\n" +
  "5;foo=bar\r\nhello\r\n" +
  "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n" +
  '1;a=1;b="q"\r\n!\r\n' +
  "0\r\nx-checksum: abc\r\nx-more: 1\r\n\r\n";
const CHUNKED_BODY = "helloabcdefghijklmnopqrstuvwxyz!";

describe("upstream client: framing over real sockets", () => {
  test("content-length body in one packet; the request goes out as written and the connection is reused", async (t) => {
    const up = await FakeUpstream.start(t, (_req, sock) => sock.write(OK));
    const pool = up.pool();
    for (let i = 0; i < 2; i++) {
      const r = await fetchVia(pool, `/v1/x?i=${i}`);
      assert.equal(r.x.statusCode, 200);
      assert.deepEqual(r.x.rawHeaders, ["Content-Type", "text/plain", "Content-Length", "11"]);
      assert.equal(r.how, "end");
      assert.equal(r.text, "hello world");
      await assertSettledOnce(r);
    }
    assert.equal(up.requests[0].head, `POST /v1/x?i=0 HTTP/1.1\r\nhost: up.test\r\ncontent-length: ${PAYLOAD.length}`);
    assert.deepEqual(up.requests[0].body, PAYLOAD);
    assert.deepEqual(up.requests.map((r) => [r.conn, r.nth]), [[1, 1], [1, 2]]);
    assert.equal(up.accepted, 1);
    assert.equal(pool.openCount(), 1);
    assert.equal(pool.idleCount(), 1);
  });

  test("content-length head and body dripped one byte per segment reassemble exactly; the connection is reused", async (t) => {
    const up = await FakeUpstream.start(t, (_req, sock) => void drip(sock, OK));
    const pool = up.pool();
    for (let i = 0; i < 2; i++) {
      const r = await fetchVia(pool);
      assert.equal(r.x.statusCode, 200);
      assert.deepEqual(r.x.rawHeaders, ["Content-Type", "text/plain", "Content-Length", "11"]);
      assert.equal(r.how, "end");
      assert.equal(r.text, "hello world");
      await assertSettledOnce(r);
    }
    assert.equal(up.accepted, 1);
    assert.equal(pool.idleCount(), 1);
  });

  test("chunked body (extensions, hex case, trailers) split at every offset and byte by byte; the connection is reused", async (t) => {
    let cuts: number[] | undefined;
    const up = await FakeUpstream.start(t, (_req, sock) => void drip(sock, CHUNKED, cuts));
    const pool = up.pool();
    const splits: Array<number[] | undefined> = [[]];
    for (let i = 1; i < CHUNKED.length; i++) splits.push([i]);
    splits.push(undefined); // every byte on its own
    for (const s of splits) {
      cuts = s;
      const r = await fetchVia(pool);
      const label = s ? `split at ${s.join(",") || "none"}` : "byte by byte";
      assert.equal(r.x.statusCode, 200, label);
      assert.deepEqual(r.x.rawHeaders, ["Transfer-Encoding", "chunked", "X-After", "1"], label);
      assert.equal(r.how, "end", label);
      assert.equal(r.text, CHUNKED_BODY, label);
    }
    assert.equal(up.requests.length, splits.length);
    assert.equal(up.accepted, 1, "one connection served every response");
    assert.equal(pool.idleCount(), 1);
  });

  test("bodyless responses (204, 304, content-length: 0) end even when start() comes after the head was delivered", async (t) => {
    const answers: Record<string, string> = {
      "/204": "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
      "/304": "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
      "/cl0": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    };
    const up = await FakeUpstream.start(t, (req, sock) => sock.write(answers[req.path]));
    const pool = up.pool();
    for (const path of Object.keys(answers)) {
      // Late: the exchange completed (and its connection went back to the pool) before anyone listened.
      const late = await fetchVia(pool, path, 30);
      assert.equal(late.x.statusCode, Number(path.slice(1)) || 200, path);
      assert.equal(late.how, "end", path);
      assert.equal(late.body.chunks.length, 0, path);
      await assertSettledOnce(late);
      // Early: the consumer attaches inside the head callback.
      let early: Body | undefined;
      const call = send(pool, path, (x) => {
        early = consume(x);
      });
      await call.settled;
      assert.ok(early);
      assert.equal(await early.done, "end", path);
      assert.equal(early.chunks.length, 0);
      await assertSettledOnce({ call, body: early });
    }
    assert.equal(up.accepted, 1, "bodyless responses leave the connection reusable");
  });

  test("interim 1xx heads are skipped: the consumer sees only the final head", async (t) => {
    const hints = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
    const up = await FakeUpstream.start(t, (req, sock) => {
      if (req.nth === 1) void drip(sock, hints + OK, [hints.length]); // interim head in its own segment
      else if (req.nth === 2) sock.write(`HTTP/1.1 100 Continue\r\n\r\n${hints}${OK}`); // all in one segment
      else void drip(sock, `${hints}${OK}`); // byte by byte
    });
    const pool = up.pool();
    for (let i = 0; i < 3; i++) {
      const r = await fetchVia(pool);
      assert.equal(r.x.statusCode, 200);
      assert.deepEqual(r.x.rawHeaders, ["Content-Type", "text/plain", "Content-Length", "11"]);
      assert.equal(r.text, "hello world");
      await assertSettledOnce(r);
    }
    assert.equal(up.accepted, 1);
  });

  test("connection: close (and HTTP/1.0 without keep-alive) is not reused; HTTP/1.0 with keep-alive is", async (t) => {
    const answers: Record<string, string> = {
      "/close": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
      "/http10": "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "/http10-ka": "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    };
    // The server never closes by itself: any close below is the client's.
    const up = await FakeUpstream.start(t, (req, sock) => sock.write(answers[req.path]));
    const pool = up.pool();
    for (const path of ["/close", "/http10"]) {
      const before = up.accepted;
      const r = await fetchVia(pool, path);
      assert.equal(r.text, "ok");
      assert.equal(r.how, "end");
      await waitFor(() => up.open === 0 && pool.openCount() === 0, 2000);
      assert.equal(pool.idleCount(), 0);
      await fetchVia(pool, path);
      assert.equal(up.accepted, before + 2, `${path}: each request on its own connection`);
      await waitFor(() => up.open === 0, 2000);
    }
    const before = up.accepted;
    await fetchVia(pool, "/http10-ka");
    await fetchVia(pool, "/http10-ka");
    assert.equal(up.accepted, before + 1);
    assert.equal(pool.idleCount(), 1);
  });

  test("a body framed by the connection close ends normally (end, not abort), whenever the consumer attaches", async (t) => {
    const up = await FakeUpstream.start(t, (req, sock) => {
      const head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
      if (req.path === "/dripped")
        void (async () => {
          sock.write(head);
          await drip(sock, "part one, part two", [4, 9, 13]);
          sock.end();
        })();
      else sock.end(`${head}all at once`);
    });
    const pool = up.pool();
    const a = await fetchVia(pool, "/dripped");
    assert.equal(a.how, "end");
    assert.equal(a.text, "part one, part two");
    await assertSettledOnce(a);
    // Head, body and FIN all arrived before the consumer attached.
    const b = await fetchVia(pool, "/whole", 50);
    assert.equal(b.how, "end");
    assert.equal(b.text, "all at once");
    await assertSettledOnce(b);
    assert.equal(up.accepted, 2);
    await waitFor(() => pool.openCount() === 0, 2000);
  });

  test("a kept-alive connection the server closed while idle is dropped; the next request opens a fresh one", async (t) => {
    const up = await FakeUpstream.start(t, (_req, sock) => {
      sock.write(OK);
      setTimeout(() => sock.end(), 20);
    });
    const pool = up.pool();
    assert.equal((await fetchVia(pool)).text, "hello world");
    await waitFor(() => pool.openCount() === 0, 2000);
    assert.equal(pool.idleCount(), 0);
    const r = await fetchVia(pool);
    assert.equal(r.text, "hello world");
    await assertSettledOnce(r);
    assert.equal(up.accepted, 2);
  });

  test("a reused connection closed before any response byte: the request is sent once more on a fresh connection", async (t) => {
    // The race a keep-alive client cannot avoid: the server times the connection out just as it is reused.
    const up = await FakeUpstream.start(t, (req, sock) => {
      if (req.conn === 1 && req.nth === 2) sock.destroy();
      else sock.write(OK);
    });
    const pool = up.pool();
    await fetchVia(pool);
    const r = await fetchVia(pool, "/again");
    assert.equal(r.text, "hello world");
    await assertSettledOnce(r);
    assert.deepEqual(up.requests.map((q) => [q.path, q.conn, q.nth]), [["/v1/x", 1, 1], ["/again", 1, 2], ["/again", 2, 1]]);
  });

  test("no retry once response bytes arrived, and none on a fresh connection: fail('reset') exactly once", async (t) => {
    const up = await FakeUpstream.start(t, (req, sock) => {
      if (req.path === "/partial-head") {
        sock.write("HTTP/1.1 200 OK\r\nConte");
        setTimeout(() => sock.destroy(), 20);
      } else if (req.path === "/hangup") sock.destroy();
      else sock.write(OK);
    });
    // Reused connection, part of the head received, then closed.
    const pool = up.pool();
    await fetchVia(pool);
    const partial = send(pool, "/partial-head");
    assert.equal(await partial.settled, "reset");
    await assertSettledOnce({ call: partial });
    assert.equal(up.requests.filter((q) => q.path === "/partial-head").length, 1, "not retried");
    // Fresh connection accepted and closed without an answer.
    const fresh = up.pool();
    const before = up.accepted;
    const hangup = send(fresh, "/hangup");
    assert.equal(await hangup.settled, "reset");
    await sleep(100);
    await assertSettledOnce({ call: hangup });
    assert.equal(up.accepted, before + 1, "no retry on a fresh connection");
    // Reused connection closed without an answer, and its one retry closed too: one fail, no loop.
    const reused = up.pool();
    await fetchVia(reused);
    const accepted = up.accepted;
    const twice = send(reused, "/hangup");
    assert.equal(await twice.settled, "reset");
    await sleep(100);
    await assertSettledOnce({ call: twice });
    assert.equal(up.accepted, accepted + 1, "exactly one retry");
    assert.equal(up.requests.filter((q) => q.path === "/hangup").length, 3);
  });

  test("connection refused and connect timeout → fail('connect')", async (t) => {
    const port = await freePort();
    const refused = new UpstreamPool(new URL(`http://127.0.0.1:${port}`), { connectTimeoutMs: 1000 });
    const c = send(refused);
    assert.equal(await c.settled, "connect");
    await assertSettledOnce({ call: c });
    assert.equal(refused.openCount(), 0);
    // A TCP listener that never completes the TLS handshake: only the connect timer can end the attempt.
    const silent = net.createServer(() => undefined);
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    const held: net.Socket[] = [];
    silent.on("connection", (s) => held.push(s));
    t.after(() => {
      for (const s of held) s.destroy();
      silent.close();
    });
    const tlsPool = new UpstreamPool(new URL(`https://127.0.0.1:${(silent.address() as net.AddressInfo).port}`), { connectTimeoutMs: 200 });
    const started = Date.now();
    const timedOut = send(tlsPool);
    assert.equal(await timedOut.settled, "connect");
    assert.ok(Date.now() - started >= 150, "not before the connect timeout");
    await assertSettledOnce({ call: timedOut });
  });

  test("malformed response heads: fail('malformed') before the head, the connection is closed and never reused", async (t) => {
    const bad: Record<string, string> = {
      "/status-2-digits": "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
      "/status-letters": "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
      "/status-no-space": "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
      "/status-600": "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
      "/http2": "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
      "/http12": "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
      "/not-http": "ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
      "/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
      "/length-list": "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
      "/length-negative": "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
      "/obs-fold": "HTTP/1.1 200 OK\r\nX-Long: a\r\n folded\r\nContent-Length: 2\r\n\r\nok",
      "/obs-fold-colon": "HTTP/1.1 200 OK\r\nX-Long: a\r\n Content-Length: 5\r\nContent-Length: 2\r\n\r\nok",
      "/space-before-colon": "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
      "/no-colon": "HTTP/1.1 200 OK\r\nbogus\r\nContent-Length: 2\r\n\r\nok",
      "/switching": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      "/huge-head": `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(4096)}`,
      // Header values are relayed to clients: control characters and bare CR/LF are malformed, never passed on.
      "/ctl-in-value": "HTTP/1.1 200 OK\r\nX-Debug: a\x01b\r\nContent-Length: 2\r\n\r\nok",
      "/nul-in-value": "HTTP/1.1 200 OK\r\nX-Debug: a\x00b\r\nContent-Length: 2\r\n\r\nok",
      "/del-in-value": "HTTP/1.1 200 OK\r\nX-Debug: a\x7fb\r\nContent-Length: 2\r\n\r\nok",
      "/bare-lf-in-value": "HTTP/1.1 200 OK\r\nX-Debug: a\nSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nok",
      "/bare-cr-in-value": "HTTP/1.1 200 OK\r\nX-Debug: a\rSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nok",
      "/bare-lf-ends-line": "HTTP/1.1 200 OK\nX-Debug: a\r\nContent-Length: 2\r\n\r\nok",
      "/ctl-in-reason": "HTTP/1.1 200 O\x0bK\r\nContent-Length: 2\r\n\r\nok",
      // Transfer-Encoding: only chunked, once (the router sends no TE; other codings are hop-by-hop and unasked for).
      "/te-gzip": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
      "/te-identity": "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok",
      "/te-gzip-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "/te-chunked-gzip": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "/te-chunked-twice": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "/te-two-lines": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "/te-chunked-two-lines": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    };
    const good: Record<string, string> = {
      "/same-length-twice": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
      "/te-chunked-upper": "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "/tab-and-obs-text": "HTTP/1.1 200 OK\r\nX-A: a\tb\xe9\r\nContent-Length: 2\r\n\r\nok",
    };
    const up = await FakeUpstream.start(t, (req, sock) => sock.write(bad[req.path] ?? good[req.path] ?? OK));
    for (const path of Object.keys(bad)) {
      const pool = up.pool({ maxHeadBytes: 2048 });
      await fetchVia(pool, "/good"); // the bad answer then comes on a reused connection: it must not be retried either
      const accepted = up.accepted;
      const c = send(pool, path);
      assert.equal(await c.settled, "malformed", path);
      await waitFor(() => up.open === 0, 2000);
      await assertSettledOnce({ call: c });
      assert.equal(pool.openCount(), 0, path);
      assert.equal(up.requests.filter((q) => q.path === path).length, 1, `${path}: not retried`);
      assert.equal((await fetchVia(pool, "/good")).text, "hello world");
      assert.equal(up.accepted, accepted + 1, `${path}: the next request needs a new connection`);
      pool.close(true);
      await waitFor(() => up.open === 0, 2000);
    }
    // Control: the same length repeated is one length, and is accepted.
    const pool = up.pool();
    const same = await fetchVia(pool, "/same-length-twice");
    assert.equal(same.how, "end");
    assert.equal(same.text, "ok");
    // Transfer-Encoding's one coding is case-insensitive.
    const upper = await fetchVia(pool, "/te-chunked-upper");
    assert.equal(upper.how, "end");
    assert.equal(upper.text, "ok");
    // HTAB and obs-text are allowed in a value.
    const odd = await fetchVia(pool, "/tab-and-obs-text");
    assert.equal(odd.x.rawHeaders[1], Buffer.from("a\tb\xe9").toString("latin1"));
  });

  test("broken framing after the head aborts the body; the connection is closed", async (t) => {
    const te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const bad: Record<string, string> = {
      "/non-hex-size": `${te}5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n`,
      "/size-too-long": `${te}5\r\nhello\r\n100000000\r\n`,
      "/empty-size": `${te}5\r\nhello\r\n\r\n`,
      "/no-crlf-after-data": `${te}5\r\nhelloX\r\n0\r\n\r\n`,
      "/endless-size-line": `${te}5\r\nhello\r\n5;${"x".repeat(5000)}`,
    };
    const up = await FakeUpstream.start(t, (req, sock) => sock.write(bad[req.path]));
    for (const path of Object.keys(bad)) {
      const pool = up.pool();
      const r = await fetchVia(pool, path);
      assert.equal(r.x.statusCode, 200, path);
      assert.equal(r.how, "abort", path);
      assert.equal(r.text, "hello", path);
      await assertSettledOnce(r);
      await waitFor(() => up.open === 0 && pool.openCount() === 0, 2000);
    }
  });

  test("bytes beyond the framed end: the body ends as framed but the connection is not reused", async (t) => {
    const answers: Record<string, string> = {
      "/extra-after-length": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
      "/extra-after-chunks": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\njunk",
      // Both framings: Transfer-Encoding wins, and such a message is too suspect to reuse the connection after.
      "/length-and-chunked": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    };
    const up = await FakeUpstream.start(t, (req, sock) => sock.write(answers[req.path]));
    for (const path of Object.keys(answers)) {
      const pool = up.pool();
      const r = await fetchVia(pool, path);
      assert.equal(r.how, "end", path);
      assert.equal(r.text, "ok", path);
      await assertSettledOnce(r);
      await waitFor(() => up.open === 0 && pool.openCount() === 0, 2000);
    }
    // Unsolicited bytes on an idle connection: it is dropped, the next request gets a new one.
    const chatty = await FakeUpstream.start(t, (_req, sock) => {
      sock.write(OK);
      setTimeout(() => sock.write("HTTP/1.1 200 OK\r\n"), 20);
    });
    const pool = chatty.pool();
    await fetchVia(pool);
    await waitFor(() => pool.openCount() === 0 && chatty.open === 0, 2000);
    await fetchVia(pool);
    assert.equal(chatty.accepted, 2);
  });

  test("a body cut off by the server closing → abort, never end", async (t) => {
    const up = await FakeUpstream.start(t, (req, sock) => {
      const answer =
        req.path === "/chunked"
          ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nwor"
          : "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhellowor";
      sock.write(answer);
      setTimeout(() => sock.end(), 20);
    });
    for (const path of ["/length", "/chunked"])
      for (const delay of [0, 80]) {
        const pool = up.pool();
        const r = await fetchVia(pool, path, delay);
        assert.equal(r.how, "abort", `${path} start after ${delay} ms`);
        assert.equal(r.text, "hellowor", `${path} start after ${delay} ms`);
        await assertSettledOnce(r);
        await waitFor(() => pool.openCount() === 0, 2000);
      }
  });

  for (const framing of ["content-length", "chunked"] as const)
    test(`pause(): no data while paused, resume() continues; 8 MB ${framing} body arrives intact`, async (t) => {
      const big = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      const up = await FakeUpstream.start(t, (_req, sock) => {
        if (framing === "content-length") {
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`);
          sock.write(big);
        } else {
          sock.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
          for (let off = 0; off < big.length; off += 10_000) {
            const piece = big.subarray(off, off + 10_000);
            sock.write(`${piece.length.toString(16)}\r\n`);
            sock.write(piece);
            sock.write("\r\n");
          }
          sock.write("0\r\n\r\n");
        }
      });
      const pool = up.pool();
      const c = send(pool);
      const x = await c.settled;
      if (typeof x === "string") assert.fail(x);
      let paused = false;
      let pauses = 0;
      let whilePaused = 0;
      let events = 0;
      const body = consume(x, () => {
        if (paused) whilePaused++;
        events++;
        if (events === 2 || events % 40 === 0) {
          paused = true;
          pauses++;
          x.pause();
          setTimeout(() => {
            paused = false;
            x.resume();
          }, 25);
        }
      });
      assert.equal(await body.done, "end");
      assert.ok(pauses >= 3, `paused ${pauses} times`);
      assert.equal(whilePaused, 0, "data delivered while paused");
      const got = body.bytes();
      assert.equal(got.length, big.length);
      assert.equal(createHash("sha256").update(got).digest("hex"), createHash("sha256").update(big).digest("hex"));
      await assertSettledOnce({ call: c, body });
      assert.equal(pool.idleCount(), 1);
    });

  test("destroy(): after the head no callback fires and the socket is closed, not reused; before the head, silence", async (t) => {
    const up = await FakeUpstream.start(t, (req, sock) => {
      if (req.path === "/silent") return;
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst");
      setTimeout(() => sock.write("second"), 40);
    });
    const pool = up.pool();
    // Destroyed on the first body byte.
    const c = send(pool);
    const x = await c.settled;
    if (typeof x === "string") assert.fail(x);
    const body = consume(x, () => x.destroy());
    await waitFor(() => up.open === 0, 2000);
    await sleep(80);
    assert.equal(body.bytes().toString(), "first");
    assert.deepEqual(body.terminal, []);
    assert.equal(pool.openCount(), 0);
    // Destroyed before the consumer attached: start() is then a no-op.
    const c2 = send(pool);
    const x2 = await c2.settled;
    if (typeof x2 === "string") assert.fail(x2);
    x2.destroy();
    const body2 = consume(x2);
    await waitFor(() => up.open === 0, 2000);
    await sleep(80);
    assert.deepEqual(body2.chunks, []);
    assert.deepEqual(body2.terminal, []);
    // Destroyed while waiting for the head: neither head nor fail.
    const c3 = send(pool, "/silent");
    await waitFor(() => up.requests.some((q) => q.path === "/silent"), 2000);
    c3.x.destroy();
    await waitFor(() => up.open === 0, 2000);
    await sleep(50);
    assert.equal(c3.heads + c3.fails.length, 0);
    assert.equal(up.accepted, 3, "no destroyed connection was reused");
    assert.equal(pool.openCount(), 0);
  });

  test("discard() drains the rest of the body so the connection is reused", async (t) => {
    const up = await FakeUpstream.start(t, (req, sock) => {
      if (req.nth === 1)
        void (async () => {
          sock.write("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfail\r\n");
          await sleep(20);
          sock.write("3\r\ned!\r\n0\r\n\r\n");
        })();
      else sock.write(OK);
    });
    const pool = up.pool();
    const c = send(pool);
    const x = await c.settled;
    if (typeof x === "string") assert.fail(x);
    assert.equal(x.statusCode, 500);
    x.discard();
    await waitFor(() => pool.idleCount() === 1, 2000);
    assert.equal((await fetchVia(pool)).text, "hello world");
    assert.equal(up.accepted, 1);
  });

  test("discard() closes the connection when the rest of the body does not come within its deadline", async (t) => {
    // A 5xx head whose body never follows: draining it must not hold the socket (and an fd) forever.
    const up = await FakeUpstream.start(t, (_req, sock) => sock.write("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 50\r\n\r\n"));
    const pool = up.pool();
    const c = send(pool);
    const x = await c.settled;
    if (typeof x === "string") assert.fail(x);
    assert.equal(x.statusCode, 503);
    x.discard(100);
    await sleep(30);
    assert.equal(up.open, 1, "still draining");
    await waitFor(() => up.open === 0, 2000);
    assert.equal(pool.openCount(), 0);
    assert.equal(pool.idleCount(), 0, "never reused");
  });

  test("idle connections: closed after idleTimeoutMs, capped at maxIdle, closed by close()", async (t) => {
    const up = await FakeUpstream.start(t, (_req, sock) => sock.write(OK));
    const idle = up.pool({ idleTimeoutMs: 100 });
    await fetchVia(idle);
    assert.equal(idle.idleCount(), 1);
    await waitFor(() => idle.openCount() === 0 && up.open === 0, 3000);

    const capped = up.pool({ maxIdle: 1 });
    await Promise.all([fetchVia(capped), fetchVia(capped), fetchVia(capped)]);
    assert.equal(capped.idleCount(), 1);
    await waitFor(() => capped.openCount() === 1 && up.open === 1, 2000);
    capped.close();
    await waitFor(() => capped.openCount() === 0 && up.open === 0, 2000);
  });

  /** Two requests through `pool` with `idleMs` of quiet between them. */
  async function quietSpell(pool: UpstreamPool, idleMs: number): Promise<void> {
    await fetchVia(pool);
    await sleep(idleMs);
    await fetchVia(pool);
  }

  test("idle time: reused within idleTimeoutMs, a fresh connection after it (even before the sweep runs)", async (t) => {
    const up = await FakeUpstream.start(t, (_req, sock) => sock.write(OK));
    await quietSpell(up.pool({ idleTimeoutMs: 1500 }), 300);
    assert.equal(up.accepted, 1, "reused after 300 ms idle");
    // 300 ms limit, sweep every 250 ms: whatever the sweep did, a connection idle 400 ms is never reused.
    await quietSpell(up.pool({ idleTimeoutMs: 300 }), 400);
    assert.equal(up.accepted, 3, "not reused after 400 ms idle");
  });

  test("Keep-Alive: timeout=N keeps a connection at most N − 1 s and never longer than configured; timeout=1 → not kept", async (t) => {
    const answer = (ka: string) => `HTTP/1.1 200 OK\r\nKeep-Alive: ${ka}\r\nContent-Length: 11\r\n\r\nhello world`;
    const one = await FakeUpstream.start(t, (_req, sock) => sock.write(answer("timeout=1")));
    const p1 = one.pool({ idleTimeoutMs: 60_000 });
    await fetchVia(p1);
    assert.equal(p1.idleCount(), 0, "timeout=1 leaves no safe idle time");
    await waitFor(() => one.open === 0, 2000);
    await fetchVia(p1);
    assert.equal(one.accepted, 2);

    const two = await FakeUpstream.start(t, (_req, sock) => sock.write(answer("max=100, timeout=2")));
    const p2 = two.pool({ idleTimeoutMs: 60_000 });
    await quietSpell(p2, 300);
    assert.equal(two.accepted, 1, "reused within N − 1 s");
    await sleep(1200);
    await fetchVia(p2);
    assert.equal(two.accepted, 2, "not reused after N − 1 s");

    const long = await FakeUpstream.start(t, (_req, sock) => sock.write(answer("timeout=60")));
    await quietSpell(long.pool({ idleTimeoutMs: 300 }), 400);
    assert.equal(long.accepted, 2, "a longer server timeout does not lengthen the configured one");
  });

  test("TLS: https backend with a private CA; the connection is reused; an untrusted certificate fails to connect", async (t) => {
    if (spawnSync("openssl", ["version"]).status !== 0) {
      t.skip("openssl is not installed");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "tuna-upstream-tls-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const gen = spawnSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
    assert.equal(gen.status, 0, gen.stderr?.toString());
    const cert = readFileSync(join(dir, "c.pem"));
    let handshakes = 0;
    const srv = https.createServer({ key: readFileSync(join(dir, "k.pem")), cert }, (req, res) => {
      req.resume();
      req.on("end", () => res.end(`secure ${req.url}`));
    });
    srv.on("secureConnection", () => handshakes++);
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    t.after(() => {
      srv.closeAllConnections();
      srv.close();
    });
    const port = (srv.address() as net.AddressInfo).port;
    const pool = new UpstreamPool(new URL(`https://localhost:${port}`), { connectTimeoutMs: 1000, tls: { ca: cert } });
    t.after(() => pool.close(true));
    for (const path of ["/one", "/two"]) {
      const r = await fetchVia(pool, path);
      assert.equal(r.x.statusCode, 200);
      assert.equal(r.text, `secure ${path}`);
      assert.equal(r.how, "end");
    }
    assert.equal(handshakes, 1, "the second request reused the TLS connection");
    assert.equal(pool.openCount(), 1);
    const untrusted = new UpstreamPool(new URL(`https://localhost:${port}`), { connectTimeoutMs: 1000 });
    const c = send(untrusted);
    assert.equal(await c.settled, "connect");
    await assertSettledOnce({ call: c });
  });

  test("requestHead and validHeader: the wire format, and no CR/LF/NUL or non-token names", () => {
    assert.equal(requestHead("POST", "/v1/x?y=1", ["host", "h:1", "content-length", "0"]), "POST /v1/x?y=1 HTTP/1.1\r\nhost: h:1\r\ncontent-length: 0\r\n\r\n");
    assert.ok(validHeader("x-request-id", "abc 123\tok é"));
    assert.ok(validHeader("!#$%&'*+-.^_`|~09azAZ", ""));
    for (const v of ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\0b", "\r\n"]) assert.equal(validHeader("x-a", v), false, JSON.stringify(v));
    for (const n of ["", "x a", "x:a", "x\r\n", "x\n", "é", "(x)", "x/y", "x@y", "x{y}", "x\0", " x"]) assert.equal(validHeader(n, "v"), false, JSON.stringify(n));
    assert.throws(() => new UpstreamPool(new URL("ftp://127.0.0.1/"), { connectTimeoutMs: 100 }), /unsupported backend protocol/);
  });
});

// ---- through the router ------------------------------------------------------------------------------------------

const USAGE = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
const COMPLETION = JSON.stringify({ id: "x", object: "chat.completion", created: 0, model: "qwen-small", choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }], usage: USAGE });
const CHAT_REQ = JSON.stringify({ model: "qwen-small", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });

/** A raw backend the router can use: its probes and pokes (GET) get a 200, each POST is answered by `answer`. */
function rawBackend(t: TestContext, answer: Responder): Promise<FakeUpstream> {
  return FakeUpstream.start(t, (req, sock) => {
    if (req.head.startsWith("GET ")) sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"data":[]}');
    else answer(req, sock);
  });
}

let routerSeq = 0;
async function routerFor(t: TestContext, dep: Partial<DeploymentConfig> & { svlUrl?: string; spotUrl?: string }, limits?: RouterSnapshot["apiKeys"][number]["limits"]) {
  const router = await startRouter({ config: snapshot([deployment(dep)], {}, limits), logLevel: "silent", stateDir: `/tmp/tuna-rt-relay-${process.pid}-${++routerSeq}` });
  t.after(() => router.close());
  return router;
}
const serverlessOnly = (url: string) => ({ svlUrl: url, routing: { ...deployment().routing, policy: "serverless-only" as const } });

/**
 * A chat request as raw bytes (`connection: close`, so the exchange ends with the answer). `extra` header lines: a
 * duplicate header makes the router's fast path hand the connection to Node's http server.
 */
function rawChat(extra = "", body = CHAT_REQ): string {
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\nconnection: close\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
const VIA_NODE = "x-trace: 1\r\nx-trace: 2\r\n";

/** Writes `data`, returns everything received until the server closes (or `waitMs`), split at the head's end. */
async function rawExchange(port: number, data: string, waitMs = 3000): Promise<{ head: string; body: string }> {
  const s = net.connect(port, "127.0.0.1");
  await once(s, "connect");
  let text = "";
  s.on("data", (d: Buffer) => (text += d.toString("latin1")));
  s.on("error", () => undefined);
  const closed = once(s, "close");
  s.write(data);
  await Promise.race([closed, sleep(waitMs)]);
  s.destroy();
  const end = text.indexOf("\r\n\r\n");
  return end < 0 ? { head: text, body: "" } : { head: text.slice(0, end), body: text.slice(end + 4) };
}

describe("router relay of raw backend answers", () => {
  test("a backend header with a control character or bare LF: 502 on Node's path and the fast path, nothing of it relayed, the router keeps serving", async (t) => {
    let mode = "ctl";
    const up = await rawBackend(t, (_req, sock) => {
      const framing = `content-type: application/json\r\ncontent-length: ${COMPLETION.length}\r\n`;
      if (mode === "ctl") {
        // Head first, the body a little later (as an engine that sends its headers before the answer).
        sock.write(`HTTP/1.1 200 OK\r\nx-debug: a\x01b\r\n${framing}\r\n`);
        setTimeout(() => sock.write(COMPLETION), 50);
      } else if (mode === "lf") sock.write(`HTTP/1.1 200 OK\r\nx-debug: a\nset-cookie: injected=1\r\n${framing}\r\n${COMPLETION}`);
      else sock.write(`HTTP/1.1 200 OK\r\n${framing}\r\n${COMPLETION}`);
    });
    const router = await routerFor(t, serverlessOnly(up.url));
    for (const [m, extra, path] of [["ctl", VIA_NODE, "node"], ["ctl", "", "fast"], ["lf", VIA_NODE, "node"], ["lf", "", "fast"]]) {
      mode = m;
      const r = await rawExchange(router.port, rawChat(extra));
      assert.match(r.head, /^HTTP\/1\.1 502 /, `${m} via ${path}: ${JSON.stringify(r.head)}`);
      assert.doesNotMatch(r.head, /set-cookie|x-debug|injected/i, `${m} via ${path}`);
      assert.equal(JSON.parse(r.body).error.code, "upstream_error", `${m} via ${path}`);
    }
    mode = "good";
    for (const extra of [VIA_NODE, ""]) assert.match((await rawExchange(router.port, rawChat(extra))).head, /^HTTP\/1\.1 200 /);
  });

  test("a stream whose head has a control character: the upstream connection is closed at once and the client gets a 502", async (t) => {
    const up = await rawBackend(t, (_req, sock) => {
      sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-debug: a\x01b\r\ntransfer-encoding: chunked\r\n\r\n");
      const tick = setInterval(() => {
        if (sock.destroyed) clearInterval(tick);
        else sock.write('10\r\ndata: {"a":1}\n\n\r\n');
      }, 50);
    });
    const router = await routerFor(t, serverlessOnly(up.url));
    for (const extra of [VIA_NODE, ""]) {
      const r = await rawExchange(router.port, rawChat(extra, JSON.stringify({ ...JSON.parse(CHAT_REQ), stream: true })));
      assert.match(r.head, /^HTTP\/1\.1 502 /);
      await waitFor(() => up.open === 0, 1000);
      assert.equal(router.inflight(), 0);
    }
  });

  test("a backend head with a control character before the first byte fails over like any other upstream failure", async (t) => {
    const svl = await rawBackend(t, (_req, sock) => sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${COMPLETION.length}\r\n\r\n${COMPLETION}`));
    const spot = await rawBackend(t, (_req, sock) => sock.write(`HTTP/1.1 200 OK\r\nx-debug: \x1b[31m\r\ncontent-type: application/json\r\ncontent-length: ${COMPLETION.length}\r\n\r\n${COMPLETION}`));
    const router = await routerFor(t, { svlUrl: svl.url, spotUrl: spot.url });
    const spotRt = router.store.current?.deployments.get("dep_1")?.backends.find((b) => b.id === "spot");
    await waitFor(() => spotRt?.state() === "ready", 5000);
    const r = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: CHAT_REQ });
    assert.equal(r.status, 200);
    assert.equal(r.headers["x-tuna-backend"], "svl");
    assert.equal(spot.requests.filter((q) => q.head.startsWith("POST ")).length, 1);
  });

  test("response framing: Transfer-Encoding wins over Content-Length (the router frames the decoded body, keep-alive stays in sync); a repeated Content-Length is sent once", async (t) => {
    let mode = "both";
    const up = await rawBackend(t, (_req, sock) => {
      const n = Buffer.byteLength(COMPLETION);
      if (mode === "both") sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\ntransfer-encoding: chunked\r\n\r\n${n.toString(16)}\r\n${COMPLETION}\r\n0\r\n\r\n`);
      else sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${n}\r\ncontent-length: ${n}\r\n\r\n${COMPLETION}`);
    });
    const router = await routerFor(t, serverlessOnly(up.url));
    for (const m of ["both", "twice"]) {
      mode = m;
      for (const extra of [VIA_NODE, ""]) {
        const r = await rawExchange(router.port, rawChat(extra));
        const lengths = r.head.split("\r\n").filter((l) => /^content-length:/i.test(l));
        if (m === "both") {
          assert.deepEqual(lengths, [], `${m}: the backend's length does not frame what the client gets`);
          assert.match(r.head, /\r\ntransfer-encoding: chunked/i);
        } else assert.deepEqual(lengths, [`content-length: ${Buffer.byteLength(COMPLETION)}`], m);
      }
      // Two requests on one keep-alive connection: each body is exactly the answer.
      const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
      t.after(() => ka.destroy());
      for (let i = 0; i < 2; i++) {
        const r = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: CHAT_REQ, agent: ka });
        assert.equal(r.status, 200, m);
        assert.deepEqual(r.json().usage, USAGE, m);
      }
    }
  });

  test("usage of a non-SSE answer above 4 MiB is read from its tail: TPM settles to it", async (t) => {
    const vec = Array.from({ length: 1000 }, (_, i) => (i / 1000).toFixed(6)).join(",");
    const one = `{"object":"embedding","index":0,"embedding":[${vec}]}`;
    const data = Array.from({ length: Math.ceil((5 * 1024 * 1024) / one.length) }, () => one).join(",");
    const body = `{"object":"list","data":[${data}],"model":"qwen-small","usage":{"prompt_tokens":7000,"total_tokens":7000}}`;
    const up = await rawBackend(t, (_req, sock) => sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`));
    const router = await routerFor(t, serverlessOnly(up.url), { rpm: 1000, tpm: 10_000, maxConcurrent: 10 });
    const embed = () => request(`${router.url}/v1/embeddings`, { headers: { authorization: `Bearer ${KEY}` }, body: { model: "qwen-small", input: "hi" } });
    const first = await embed();
    assert.equal(first.status, 200);
    assert.equal(first.body.length, body.length);
    await sleep(50); // the settlement runs on the first response's close
    const second = await embed();
    assert.ok(Number(second.headers["x-ratelimit-remaining-tokens"]) <= 10_000 - 7000, `remaining ${second.headers["x-ratelimit-remaining-tokens"]}: settled to the 7000 real tokens`);
  });

  test("SSE with CRLF line ends and Python-style JSON: each event reaches the client as it comes, usage settles TPM, the usage-only chunk is stripped", async (t) => {
    const pyjson = (o: unknown) => JSON.stringify(o).replace(/":/g, '": ').replace(/,"/g, ', "');
    const ev = (o: unknown) => `data: ${pyjson(o)}\r\n\r\n`;
    const usage = { prompt_tokens: 3000, completion_tokens: 2000, total_tokens: 5000 };
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let posts = 0;
    const up = await rawBackend(t, (_req, sock) => {
      const chunk = (s: string) => sock.write(`${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`);
      sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
      chunk(ev({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "first" } }] }));
      const rest = () => {
        chunk(ev({ id: "c", object: "chat.completion.chunk", choices: [], usage }));
        chunk("data: [DONE]\r\n\r\n");
        sock.write("0\r\n\r\n");
      };
      // The first stream waits for the client to have seen its first event.
      if (++posts === 1) void gate.then(rest);
      else rest();
    });
    const router = await routerFor(t, serverlessOnly(up.url), { rpm: 1000, tpm: 100_000, maxConcurrent: 10 });
    const req = JSON.stringify({ ...JSON.parse(CHAT_REQ), max_tokens: 10, stream: true });
    let firstSeen = (_: string) => undefined as void;
    const seen = new Promise<string>((r) => {
      firstSeen = r;
    });
    const done = new Promise<string>((resolve) => {
      const r = http.request(`${router.url}/v1/chat/completions`, { method: "POST", agent, headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" } }, (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
          firstSeen(text);
        });
        res.on("end", () => resolve(text));
      });
      r.end(req);
    });
    const first = await Promise.race([seen, sleep(3000).then(() => "nothing within 3 s")]);
    release();
    assert.match(first, /"first"/, "the first event is relayed before the stream ends");
    const text = await done;
    assert.ok(text.includes("data: [DONE]\r\n\r\n"), text);
    assert.ok(!text.includes("usage"), "the usage-only chunk the client did not ask for is stripped");
    await sleep(50);
    const next = await request(`${router.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` }, body: req });
    assert.ok(Number(next.headers["x-ratelimit-remaining-tokens"]) <= 100_000 - 5000, `remaining ${next.headers["x-ratelimit-remaining-tokens"]}: settled to the streamed usage`);
  });
});
