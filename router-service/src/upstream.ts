// Upstream HTTP/1.1 client: a keep-alive connection pool per backend on plain `net`/`tls` sockets, with a
// small response parser. It replaces `http.request` + `http.Agent` on the hot path, where Node's client
// machinery (ClientRequest, agent bookkeeping, IncomingMessage streams) cost more CPU per request than the
// rest of the router together. It only ever speaks to configured backends, sends one request per connection
// at a time (no pipelining) and is strict about framing: anything it does not understand is a protocol error
// that closes the connection, never a guess.
import net from "node:net";
import tls from "node:tls";
import type { EgressGuard } from "./egress.js";

/**
 * Why an exchange failed before its head: no connection (`connect`), the connection lost (`reset`), or a response
 * head the parser refused (`malformed`: see `Conn.readHead`; the connection is closed, never reused).
 */
export type UpstreamFailure = "connect" | "reset" | "malformed";

/** What the consumer of one exchange hears after the response head (see `Exchange.start`). */
export interface BodyListener {
  data(chunk: Buffer): void;
  /** The body ended as framed; the connection went back to the pool (or was closed if not reusable). */
  end(): void;
  /** The connection was lost or the framing broke before the body was complete. */
  abort(): void;
}

/** Before the head: either the head arrives or the exchange fails (once). */
export interface HeadListener {
  head(x: Exchange): void;
  fail(reason: UpstreamFailure): void;
}

export interface PoolOptions {
  connectTimeoutMs: number;
  /**
   * Idle connections are closed after this long (default 4 s: below the 5 s keep-alive of uvicorn, vLLM's
   * server, and of Node). A response's `Keep-Alive: timeout=N` can only shorten it, to N − 1 s.
   */
  idleTimeoutMs?: number;
  maxIdle?: number;
  /** Extra TLS options (tests: a private CA). */
  tls?: tls.ConnectionOptions;
  /** Largest response head accepted. */
  maxHeadBytes?: number;
  /**
   * `publicOnly` backends: each new connection's host is resolved and checked by the guard and dialled at the
   * address it answered (a literal address is checked as is). Read when a connection is opened, never per request.
   */
  guard?: EgressGuard;
}

const CRLF = Buffer.from("\r\n");
const CRLFCRLF = Buffer.from("\r\n\r\n");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * A byte no line of a response head may hold (RFC 9110 field-value: HTAB, SP, VCHAR, obs-text): a control
 * character, or a CR or LF left in a line after splitting at CRLF (a bare LF would split a header line when
 * relayed; Node's `writeHead` throws on either).
 */
const BAD_LINE_BYTE = /[^\t\x20-\x7e\x80-\xff]/;

// Parser states.
const HEAD = 0;
const FIXED = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_DATA_CRLF = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

/** One request/response on one pooled connection. */
export class Exchange {
  statusCode = 0;
  /** Response headers as `[name, value, …]` in wire order and case, like `IncomingMessage.rawHeaders`. */
  rawHeaders: string[] = [];
  /** Set once the consumer attached; until then body bytes wait in `held`. */
  private body: BodyListener | undefined;
  private held: Buffer | undefined;
  private heldClosed = false;
  private pausedByConsumer = false;
  /** Bytes of the response seen at all (a reused connection that dies before any may be retried). */
  gotBytes = false;
  finished = false;
  destroyed = false;
  conn: Conn | undefined;

  constructor(
    readonly pool: UpstreamPool,
    readonly head: string,
    readonly payload: Buffer,
    readonly listener: HeadListener,
  ) {}

  /** Attaches the body consumer; bytes that arrived with the head are delivered now, synchronously. */
  start(body: BodyListener): void {
    if (this.body || this.destroyed) return;
    this.body = body;
    if (this.finished) {
      // A response without a body completed with its head.
      body.end();
      return;
    }
    this.flushHeld();
  }

  /** Delivers held bytes (and a close seen meanwhile), unless the consumer pauses again; then reads on. */
  private flushHeld(): void {
    const c = this.conn;
    if (!c) return;
    const held = this.held;
    this.held = undefined;
    if (held) c.parse(held);
    if (this.held) return; // paused again with bytes left: they wait for the next resume()
    if (this.heldClosed) c.closedDuringBody();
    else if (!this.pausedByConsumer && !this.finished) c.socket.resume();
  }

  /**
   * Reads and drops the rest of the body so the connection can be reused, for at most `deadlineMs`: a body that
   * has not ended by then (a backend that sent a head and never its body) closes the connection instead of
   * holding it (and a file descriptor) forever.
   */
  discard(deadlineMs = DISCARD_DEADLINE_MS): void {
    if (this.body || this.destroyed) return;
    if (this.finished) {
      this.start(DISCARD);
      return;
    }
    const timer = setTimeout(() => this.destroy(), deadlineMs);
    timer.unref();
    const over = () => clearTimeout(timer);
    this.start({ data: NOOP, end: over, abort: over });
  }

  pause(): void {
    this.pausedByConsumer = true;
    if (this.body && !this.finished) this.conn?.socket.pause();
  }

  resume(): void {
    this.pausedByConsumer = false;
    if (this.body && !this.finished) this.flushHeld();
  }

  /** Abandons the exchange: its connection is closed, never reused; no callback fires afterwards. */
  destroy(): void {
    if (this.destroyed || this.finished) return;
    this.destroyed = true;
    this.conn?.socket.destroy();
  }

  /**
   * @internal the parser reached the end of the head. Body bytes are held until `start` (the router's attempt
   * calls it from `head` itself; a consumer that calls it later keeps the socket flowing meanwhile, and
   * `holdMore` stops it if bytes pile up).
   */
  gotHead(rest: Buffer | undefined): void {
    this.held = rest;
    this.listener.head(this);
  }

  /** @internal */
  bodyData(chunk: Buffer): void {
    if (this.destroyed) return;
    if (this.body) this.body.data(chunk);
  }

  /** @internal whether body bytes should be delivered now or held for `start`. */
  get attached(): boolean {
    return this.body !== undefined;
  }

  /** @internal bytes are waiting for `start` or `resume` (later bytes queue behind them). */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /** @internal */
  get paused(): boolean {
    return this.pausedByConsumer;
  }

  /** @internal */
  holdMore(chunk: Buffer): void {
    this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    if (this.held.length > HOLD_LIMIT) this.conn?.socket.pause();
  }

  /** @internal */
  holdClose(): void {
    this.heldClosed = true;
  }

  /** @internal */
  bodyEnd(): void {
    this.finished = true;
    if (!this.destroyed) this.body?.end();
  }

  /** @internal */
  bodyAbort(): void {
    if (this.destroyed || this.finished) return;
    this.destroyed = true;
    this.body?.abort();
  }
}

const NOOP = () => undefined;
/** Body bytes held for a consumer that has not attached (or is paused) before the socket stops reading. */
const HOLD_LIMIT = 1024 * 1024;
const DISCARD: BodyListener = { data: NOOP, end: NOOP, abort: NOOP };
/** How long `discard` waits for the rest of a body before closing the connection. */
export const DISCARD_DEADLINE_MS = 1000;

/** One socket and its response parser. */
class Conn {
  socket: net.Socket;
  x: Exchange | undefined;
  connected = false;
  /** Exchanges completed on this socket (a reused socket may have been closed by the server meanwhile). */
  served = 0;
  /** When it went back to the pool (Date.now() ms). */
  idleSince = 0;
  /** Not to be reused: it was opened under rules that no longer hold (`UpstreamPool.retireConnections`). */
  retired = false;
  /** The server's own idle timeout from its last `Keep-Alive: timeout=N` header, in ms. */
  serverKeepAliveMs: number | undefined;
  private state: number = DONE;
  private buf: Buffer | undefined;
  private remaining = 0;
  private reusable = true;
  /** The parser refused the response head (the close that follows fails the exchange as `malformed`). */
  private malformed = false;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(readonly pool: UpstreamPool) {
    const o = pool.origin;
    const port = Number(o.port) || (pool.secure ? 443 : 80);
    const host = o.hostname.startsWith("[") ? o.hostname.slice(1, -1) : o.hostname;
    const guard = pool.opts.guard;
    // A refused literal address: no socket is connected, the connection fails like one that could not connect.
    const refused = guard !== undefined && net.isIP(host) ? guard.checkLiteral(host) : null;
    if (refused) {
      this.socket = new net.Socket();
      this.socket.destroy(refused); // 'error' and 'close' follow on the next tick, once the listeners below are on
    } else if (pool.secure) {
      // With a guard the name still is the server name (SNI, certificate check); only the address is the guard's.
      this.socket = tls.connect({
        host, port, ALPNProtocols: ["http/1.1"], ...(net.isIP(host) ? {} : { servername: host }), ...pool.opts.tls, ...(guard ? { lookup: guard.lookup } : {}),
      });
      this.socket.once("secureConnect", () => this.onConnect());
    } else {
      this.socket = guard ? net.connect({ port, host, lookup: guard.lookup }) : net.connect(port, host);
      this.socket.once("connect", () => this.onConnect());
    }
    this.socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.socket.destroy(), pool.opts.connectTimeoutMs);
    this.socket.on("data", (d: Buffer) => this.onData(d));
    this.socket.on("end", () => this.socket.destroy());
    this.socket.on("error", NOOP);
    this.socket.on("close", () => this.onClose());
  }

  private onConnect(): void {
    clearTimeout(this.connectTimer);
    this.connected = true;
    this.socket.setKeepAlive(true, 10_000);
  }

  send(x: Exchange): void {
    this.x = x;
    x.conn = this;
    this.state = HEAD;
    this.buf = undefined;
    this.reusable = true;
    // One buffer, one write: cheaper than a corked writev of a string and a buffer for request-sized data.
    this.socket.write(joinLatin1(x.head, x.payload));
    this.socket.resume();
  }

  private onData(d: Buffer): void {
    const x = this.x;
    if (!x || this.state === DONE) {
      // Bytes nobody asked for (or after the framed end): the connection is not in a state we understand.
      this.reusable = false;
      this.socket.destroy();
      return;
    }
    x.gotBytes = true;
    if (this.state !== HEAD && (!x.attached || x.holding)) {
      x.holdMore(d);
      return;
    }
    this.parse(d);
  }

  /** Feeds bytes to the parser (also used by `Exchange.start` for bytes held since the head). */
  parse(d: Buffer): void {
    const x = this.x;
    if (!x) return;
    let off = 0;
    while (off < d.length || this.state === HEAD) {
      switch (this.state) {
        case HEAD: {
          const b = this.buf ? Buffer.concat([this.buf, off ? d.subarray(off) : d]) : off ? d.subarray(off) : d;
          this.buf = undefined;
          const end = b.indexOf(CRLFCRLF);
          if (end < 0) {
            if (b.length > (this.pool.opts.maxHeadBytes ?? 64 * 1024)) {
              this.protocolError();
              return;
            }
            this.buf = b;
            return;
          }
          if (!this.readHead(x, b.toString("latin1", 0, end))) {
            this.protocolError();
            return;
          }
          const rest = end + 4 < b.length ? b.subarray(end + 4) : undefined;
          if (this.statusIsInterim) {
            // 1xx: another head follows.
            this.statusIsInterim = false;
            x.rawHeaders = [];
            if (!rest) return;
            d = rest;
            off = 0;
            continue;
          }
          if (this.bodyless()) {
            x.gotHead(undefined);
            this.complete();
            return;
          }
          x.gotHead(rest);
          return; // the rest is parsed by start()
        }
        case FIXED: {
          const n = Math.min(this.remaining, d.length - off);
          const piece = off === 0 && n === d.length ? d : d.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          x.bodyData(piece);
          if (this.remaining === 0) {
            if (off < d.length) this.reusable = false;
            this.state = DONE;
            this.complete();
            return;
          }
          break;
        }
        case UNTIL_CLOSE: {
          x.bodyData(off ? d.subarray(off) : d);
          return;
        }
        case CHUNK_SIZE:
        case TRAILERS:
        case CHUNK_DATA_CRLF: {
          const b = this.buf ? Buffer.concat([this.buf, d.subarray(off)]) : d.subarray(off);
          this.buf = undefined;
          const eol = b.indexOf(CRLF);
          if (eol < 0) {
            if (b.length > 4096) {
              this.protocolError();
              return;
            }
            this.buf = b;
            return;
          }
          const line = b.toString("latin1", 0, eol);
          if (this.state === CHUNK_DATA_CRLF) {
            if (eol !== 0) {
              this.protocolError();
              return;
            }
            this.state = CHUNK_SIZE;
          } else if (this.state === CHUNK_SIZE) {
            const semi = line.indexOf(";");
            const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
            if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
              this.protocolError();
              return;
            }
            this.remaining = Number.parseInt(hex, 16);
            this.state = this.remaining === 0 ? TRAILERS : CHUNK_DATA;
          } else if (eol === 0) {
            // Empty line after the last chunk's trailers: the body is complete.
            this.state = DONE;
            if (eol + 2 < b.length) this.reusable = false;
            this.complete();
            return;
          }
          d = b;
          off = eol + 2;
          break;
        }
        case CHUNK_DATA: {
          const n = Math.min(this.remaining, d.length - off);
          x.bodyData(d.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = CHUNK_DATA_CRLF;
          break;
        }
        default:
          return;
      }
      if (x.destroyed) return;
      if (x.paused && off < d.length && this.state !== HEAD) {
        // One socket read can hold many chunks: the rest waits for resume(), so a paused consumer hears nothing.
        x.holdMore(off ? d.subarray(off) : d);
        return;
      }
    }
  }

  private statusIsInterim = false;

  /** The head just read frames no body (204, 304, content-length 0). */
  private bodyless(): boolean {
    return this.state === DONE;
  }

  /** Parses the status line and headers; sets the body framing. False on anything malformed. */
  private readHead(x: Exchange, head: string): boolean {
    const lines = head.split("\r\n");
    const status = lines[0];
    if (BAD_LINE_BYTE.test(status)) return false;
    // "HTTP/1.1 200 OK" (reason phrase optional).
    if (!status.startsWith("HTTP/1.") || status.length < 12 || status[8] !== " " || (status.length > 12 && status[12] !== " ")) return false;
    const minor = status[7];
    if (minor !== "0" && minor !== "1") return false;
    const code = Number(status.slice(9, 12));
    if (!Number.isInteger(code) || code < 100 || code > 599) return false;
    const raw: string[] = [];
    let contentLength = -1;
    let te = false;
    let close = minor === "0";
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      // Header values are relayed to the client: a control character or bare CR/LF is a malformed answer.
      if (BAD_LINE_BYTE.test(line)) return false;
      const colon = line.indexOf(":");
      if (colon <= 0) return false;
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) return false; // also rejects obs-fold (leading whitespace)
      const value = line.slice(colon + 1).trim();
      raw.push(name, value);
      const lower = name.length === 14 || name.length === 17 || name.length === 10 ? name.toLowerCase() : "";
      if (lower === "content-length") {
        if (!/^\d{1,15}$/.test(value)) return false;
        const n = Number(value);
        if (contentLength >= 0 && contentLength !== n) return false;
        contentLength = n;
      } else if (lower === "transfer-encoding") {
        // Only `chunked`, once. The router sends no TE, so no other transfer coding is acceptable (RFC 9112 §6.1),
        // and it could not be passed on (transfer codings are hop-by-hop): one whose final coding is not chunked
        // would have the body run until the close (§6.3), one under chunked would reach the client still coded.
        // Either is a malformed answer, like a second TE line (more codings, or chunked twice).
        if (te || value.length !== 7 || value.toLowerCase() !== "chunked") return false;
        te = true;
      } else if (lower === "connection") {
        const v = value.toLowerCase();
        if (v.includes("close")) close = true;
        else if (minor === "0" && v.includes("keep-alive")) close = false;
      } else if (lower === "keep-alive") {
        const m = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})(?:$|[,;\s])/i.exec(value);
        if (m) this.serverKeepAliveMs = Number(m[1]) * 1000;
      }
    }
    x.statusCode = code;
    x.rawHeaders = raw;
    if (code < 200) {
      if (code === 101) return false; // never asked for an upgrade
      this.statusIsInterim = true;
      return true;
    }
    this.reusable = !close;
    if (code === 204 || code === 304) this.state = DONE;
    else if (te) {
      // Transfer-Encoding wins over Content-Length; a message carrying both is suspect: do not reuse.
      if (contentLength >= 0) this.reusable = false;
      this.state = CHUNK_SIZE;
    } else if (contentLength >= 0) {
      this.remaining = contentLength;
      this.state = contentLength === 0 ? DONE : FIXED;
    } else {
      this.state = UNTIL_CLOSE;
      this.reusable = false;
    }
    return true;
  }

  private protocolError(): void {
    if (this.state === HEAD) this.malformed = true;
    this.reusable = false;
    this.socket.destroy();
  }

  /** The framed end of the response: hand the socket back and tell the consumer. */
  private complete(): void {
    const x = this.x;
    if (!x) return;
    this.x = undefined;
    this.served++;
    x.conn = undefined;
    if (this.reusable && !x.destroyed && !this.socket.destroyed) {
      // Flowing while idle, so a server-side close is noticed (and the connection dropped) right away.
      this.socket.resume();
      this.pool.release(this);
    } else this.socket.destroy();
    x.bodyEnd();
  }

  /** @internal Exchange.start found the connection closed while its body was held. */
  closedDuringBody(): void {
    const x = this.x;
    if (!x) return;
    this.x = undefined;
    if (this.state === UNTIL_CLOSE) {
      this.state = DONE;
      x.bodyEnd();
    } else x.bodyAbort();
  }

  private onClose(): void {
    clearTimeout(this.connectTimer);
    this.pool.forget(this);
    const x = this.x;
    if (!x) return;
    if (this.state === HEAD) {
      this.x = undefined;
      x.conn = undefined;
      if (x.destroyed) return;
      // A kept-alive connection the server closed just as we reused it: nothing was received, so the request
      // was not answered; send it once more on a fresh connection (what browsers and Go's transport do).
      if (this.served > 0 && !x.gotBytes) {
        this.pool.dispatch(x, true);
        return;
      }
      x.destroyed = true;
      x.listener.fail(this.malformed ? "malformed" : this.connected ? "reset" : "connect");
      return;
    }
    if (!x.attached || x.holding) {
      x.holdClose();
      return;
    }
    this.x = undefined;
    if (this.state === UNTIL_CLOSE) {
      this.state = DONE;
      x.bodyEnd();
    } else x.bodyAbort();
  }
}

/** Keep-alive connections to one backend origin. */
export class UpstreamPool {
  readonly secure: boolean;
  private idle: Conn[] = [];
  private all = new Set<Conn>();
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly origin: URL,
    readonly opts: PoolOptions,
  ) {
    if (origin.protocol !== "http:" && origin.protocol !== "https:") throw new Error(`unsupported backend protocol ${origin.protocol}`);
    this.secure = origin.protocol === "https:";
  }

  /** Sends `head` (request line and headers, CRLF-terminated) and `payload`; the listener hears the head. */
  request(head: string, payload: Buffer, listener: HeadListener): Exchange {
    const x = new Exchange(this, head, payload, listener);
    this.dispatch(x, false);
    return x;
  }

  /** @internal */
  dispatch(x: Exchange, fresh: boolean): void {
    let c: Conn | undefined;
    if (!fresh && this.idle.length) {
      const now = Date.now();
      for (c = this.idle.pop(); c && (c.socket.destroyed || this.expired(c, now)); c = this.idle.pop()) {
        this.all.delete(c);
        c.socket.destroy();
      }
    }
    if (!c) {
      c = new Conn(this);
      this.all.add(c);
    }
    c.send(x);
  }

  /** @internal */
  release(c: Conn): void {
    const limit = this.idleLimitOf(c);
    if (this.closed || c.retired || limit <= 0 || this.idle.length >= (this.opts.maxIdle ?? 256)) {
      c.socket.destroy();
      return;
    }
    c.idleSince = Date.now();
    this.idle.push(c);
    if (!this.sweeper) {
      const every = Math.max(250, Math.min(1000, Math.floor(limit / 4)));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  /**
   * How long `c` may idle: the configured time, shortened to 1 s below the server's own keep-alive timeout
   * when it announced one, so the server never closes a connection we are about to reuse. 0: do not keep.
   */
  private idleLimitOf(c: Conn): number {
    const configured = this.opts.idleTimeoutMs ?? 4000;
    return c.serverKeepAliveMs === undefined ? configured : Math.min(configured, c.serverKeepAliveMs - 1000);
  }

  /** Idle too long for reuse, by the limit in force now (a new config applies to idle connections too). */
  private expired(c: Conn, now: number): boolean {
    return now - c.idleSince > this.idleLimitOf(c);
  }

  /** @internal */
  forget(c: Conn): void {
    this.all.delete(c);
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private sweep(): void {
    const now = Date.now();
    // Connections may have different limits (server keep-alive hints): check each one, once.
    const keep: Conn[] = [];
    for (const c of this.idle) {
      if (this.expired(c, now)) c.socket.destroy();
      else keep.push(c);
    }
    this.idle = keep;
    if (!this.idle.length) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  idleCount(): number {
    return this.idle.length;
  }

  openCount(): number {
    return this.all.size;
  }

  /**
   * The connections open now are not reused (a backend just became `publicOnly`: they were opened unchecked):
   * idle ones close now, busy ones when their response ends. The pool stays open; later requests connect afresh.
   */
  retireConnections(): void {
    for (const c of this.all) c.retired = true;
    for (const c of this.idle) c.socket.destroy();
    this.idle = [];
  }

  /** Closes idle connections now and busy ones as they finish (or all of them with `force`). */
  close(force = false): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.idle) c.socket.destroy();
    this.idle = [];
    if (force) for (const c of this.all) c.socket.destroy();
  }
}

/** `head` (latin1, as Node writes headers) followed by `body`, in one buffer. */
export function joinLatin1(head: string, body: Buffer | string): Buffer {
  const bodyLength = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  const out = Buffer.allocUnsafe(head.length + bodyLength);
  out.write(head, 0, "latin1");
  if (typeof body === "string") out.write(body, head.length, "utf8");
  else body.copy(out, head.length);
  return out;
}

/** The request line and headers of one upstream request, as written on the wire. */
export function requestHead(method: string, path: string, headers: string[]): string {
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${s}\r\n`;
}

/** Whether a header name/value pair may be written as-is (no CR/LF injection, no invalid name). */
export function validHeader(name: string, value: string): boolean {
  return TOKEN.test(name) && !/[\0\r\n]/.test(value);
}
