// Fast path for inbound HTTP/1.1: the router's listening socket is Node's `http.Server`, but each new
// connection is first read by this small parser. Requests in a narrow, unambiguous subset (GET/POST,
// HTTP/1.1, a Host, no duplicate header, no Transfer-Encoding / Expect / Upgrade, a plain Content-Length
// within the body limit) are answered here without Node's IncomingMessage/ServerResponse machinery. The
// first request outside that subset hands the connection, with every byte not yet consumed, to Node's own
// HTTP server, which then owns it to the end: odd, malformed or hostile input always meets llhttp and Node's
// error handling, never a second, weaker parser.
import http, { type IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { joinLatin1 } from "./upstream.js";

export interface FastOptions {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/** An inbound request whose body has been read completely. */
export class FastRequest {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly headers: IncomingHttpHeaders,
    readonly body: Buffer,
  ) {}
}

type Handler = (req: FastRequest, res: FastResponse) => void;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^\/[\x21-\x7e]*$/;
const CRLFCRLF = Buffer.from("\r\n\r\n");
/** Ends a head only for a parser that accepts bare LF; a valid CRLF head never contains it. */
const LFLF = Buffer.from("\n\n");
const LAST_CHUNK = "0\r\n\r\n";
const NOOP = () => undefined;

let dateHeader = "";
let dateAt = 0;
/** The `date` header value (RFC 9110 §6.6.1), rendered at most once a second. */
export function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateHeader = new Date(dateAt).toUTCString();
  }
  return dateHeader;
}

/** The response side of one fast-path request; the subset of `ServerResponse` the router uses. */
export class FastResponse {
  headersSent = false;
  shouldKeepAlive = true;
  finished = false;
  private head: string | undefined;
  private chunked = false;
  private hasLength = false;
  private hasConnection = false;
  private closed = false;
  private closeListeners: Array<() => void> | undefined;

  constructor(private conn: FastConn) {}

  get socket(): Socket {
    return this.conn.socket;
  }

  writeHead(status: number, headers?: string[] | Record<string, string | number | string[]>): this {
    if (this.headersSent) return this;
    this.headersSent = true;
    let s = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Unknown"}\r\ndate: ${httpDate()}\r\n`;
    this.hasLength = false;
    this.hasConnection = false;
    if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) s += this.headerLine(headers[i], headers[i + 1]);
    else if (headers)
      for (const k in headers) {
        const v = headers[k];
        if (Array.isArray(v)) for (const x of v) s += this.headerLine(k, x);
        else s += this.headerLine(k, String(v));
      }
    if (!this.shouldKeepAlive || this.conn.closing) {
      this.shouldKeepAlive = false;
      if (!this.hasConnection) s += "connection: close\r\n";
    }
    if (!this.hasLength && status !== 204 && status !== 304) {
      this.chunked = true;
      s += "transfer-encoding: chunked\r\n";
    }
    this.head = `${s}\r\n`;
    return this;
  }

  /** One header line; notes the framing and connection headers the handler set itself. */
  private headerLine(k: string, v: string): string {
    const lower = k.length === 14 || k.length === 10 ? k.toLowerCase() : "";
    if (lower === "content-length") this.hasLength = true;
    else if (lower === "connection") {
      this.hasConnection = true;
      if (v.toLowerCase().includes("close")) this.shouldKeepAlive = false;
    }
    return `${k}: ${v}\r\n`;
  }

  write(chunk: string | Buffer): boolean {
    if (this.finished || this.closed) return false;
    if (!this.headersSent) this.writeHead(200);
    const sock = this.conn.socket;
    const len = typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (len === 0) return !sock.writableNeedDrain;
    sock.cork();
    this.flushHead(sock);
    if (this.chunked) {
      if (typeof chunk === "string") sock.write(`${len.toString(16)}\r\n${chunk}\r\n`);
      else {
        sock.write(`${len.toString(16)}\r\n`, "latin1");
        sock.write(chunk);
        sock.write("\r\n", "latin1");
      }
    } else sock.write(chunk);
    sock.uncork();
    return !sock.writableNeedDrain;
  }

  end(chunk?: string | Buffer): this {
    if (this.finished || this.closed) return this;
    if (!this.headersSent) this.writeHead(200, chunk === undefined ? { "content-length": 0 } : { "content-length": typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length });
    this.finished = true;
    const sock = this.conn.socket;
    const len = chunk === undefined ? 0 : typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    // Everything left goes out in one corked write; the last piece's callback is the response's "close".
    // The head is latin1 (like Node's); body strings are UTF-8 (sizes and CRLF are ASCII either way).
    const head = this.head;
    this.head = undefined;
    sock.cork();
    if (head !== undefined && this.chunked) sock.write(head, "latin1");
    if (this.chunked) {
      if (len > 0 && typeof chunk !== "string") {
        sock.write(`${len.toString(16)}\r\n`, "latin1");
        sock.write(chunk as Buffer);
        sock.write(`\r\n${LAST_CHUNK}`, "latin1", () => this.emitClose());
      } else sock.write(len > 0 ? `${len.toString(16)}\r\n${chunk}\r\n${LAST_CHUNK}` : LAST_CHUNK, "utf8", () => this.emitClose());
    } else if (len > 0) {
      if (head !== undefined) sock.write(joinLatin1(head, chunk as string | Buffer), () => this.emitClose());
      else sock.write(chunk as string | Buffer, () => this.emitClose());
    }
    else if (head !== undefined) sock.write(head, "latin1", () => this.emitClose());
    else process.nextTick(() => this.emitClose());
    sock.uncork();
    this.conn.responseDone(this);
    return this;
  }

  destroy(): void {
    this.conn.socket.destroy();
  }

  once(event: string, fn: () => void): this {
    if (event === "close") {
      if (this.closed) process.nextTick(fn);
      else {
        this.closeListeners ??= [];
        this.closeListeners.push(fn);
      }
    } else if (event === "drain") this.conn.socket.once("drain", fn);
    return this;
  }

  /** Like ServerResponse's "close": after the response was handed to the kernel, or the connection died. */
  emitClose(): void {
    if (this.closed) return;
    this.closed = true;
    const ls = this.closeListeners;
    this.closeListeners = undefined;
    if (ls) for (const fn of ls) fn();
  }

  private flushHead(sock: Socket): void {
    if (this.head === undefined) return;
    sock.write(this.head, "latin1");
    this.head = undefined;
  }
}

/** One client connection on the fast path. */
class FastConn {
  /** Received, not yet consumed bytes (joined lazily: a large body is copied once, not per packet). */
  private parts: Buffer[] = [];
  private have = 0;
  /** The head of the request whose body is still arriving, and the byte count that completes it. */
  private head: ParsedHead | undefined;
  private headEnd = 0;
  private need = 0;
  private headPackets = 0;
  busy: FastResponse | undefined;
  /** When the first byte of a request still being received arrived (0: none pending). */
  requestStart = 0;
  idleSince = Date.now();
  closing = false;
  private handedOff = false;
  private keepAlive = true;
  private driving = false;
  private readonly onDataBound = (d: Buffer) => this.onData(d);
  private readonly onCloseBound = () => this.onClose();
  /**
   * The client closed its side. With a request in progress it is gone, as Node's server (without
   * httpAllowHalfOpen) and nginx treat it: the connection is dropped, so the response's close aborts the
   * upstream request instead of letting a GPU finish an answer nobody reads.
   */
  private readonly onEndBound = () => {
    this.keepAlive = false;
    if (this.busy) this.socket.destroy();
    else this.socket.end();
  };

  constructor(
    readonly front: FastFront,
    readonly socket: Socket,
  ) {
    socket.setNoDelay(true);
    socket.on("data", this.onDataBound);
    socket.on("close", this.onCloseBound);
    socket.on("end", this.onEndBound);
    socket.on("error", NOOP);
  }

  private onData(d: Buffer): void {
    // After the last response (connection: close, 408) nothing more is read as a request (RFC 9112 §9.6).
    if (this.socket.writableEnded) return;
    this.parts.push(d);
    this.have += d.length;
    if (this.requestStart === 0) this.requestStart = Date.now();
    if (this.busy) {
      // Pipelined bytes wait for the current response; bounded, then reading stops until it is done.
      if (this.have > this.front.opts.maxBodyBytes + this.front.opts.maxHeaderBytes) this.socket.pause();
      return;
    }
    if (this.head && this.have < this.need) return; // body still arriving
    // A head dribbling in over many packets is left to Node (and its own slow-client handling).
    if (!this.head && ++this.headPackets > 32) {
      this.handOff();
      return;
    }
    this.drive();
  }

  private drive(): void {
    if (this.driving) return;
    this.driving = true;
    try {
      while (!this.busy && !this.handedOff && this.have > 0 && !this.socket.destroyed) {
        const buf = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.have);
        this.parts = [buf];
        let parsed = this.head;
        if (!parsed) {
          const end = buf.indexOf(CRLFCRLF);
          if (end < 0) {
            // Too long, or a bare-LF head that would otherwise wait here for the head timeout: Node's answer.
            if (buf.length > this.front.opts.maxHeaderBytes || buf.includes(LFLF)) this.handOff();
            return;
          }
          // The header limit holds however the head was fragmented.
          parsed = end > this.front.opts.maxHeaderBytes ? undefined : this.front.parseHead(buf.toString("latin1", 0, end));
          if (!parsed || parsed.contentLength > this.front.opts.maxBodyBytes) {
            this.handOff();
            return;
          }
          this.head = parsed;
          this.headPackets = 0;
          this.headEnd = end + 4;
          this.need = end + 4 + parsed.contentLength;
        }
        const need = this.need;
        if (buf.length < need) return; // body still arriving
        const body = buf.subarray(this.headEnd, need);
        this.head = undefined;
        if (need < buf.length) {
          this.parts = [buf.subarray(need)];
          this.have = buf.length - need;
        } else {
          this.parts = [];
          this.have = 0;
        }
        this.requestStart = this.have ? Date.now() : 0;
        this.keepAlive &&= parsed.keepAlive;
        const res = new FastResponse(this);
        if (!this.keepAlive) res.shouldKeepAlive = false;
        this.busy = res;
        this.front.handler(new FastRequest(parsed.method, parsed.url, parsed.headers, body), res);
      }
    } finally {
      this.driving = false;
    }
  }

  /** The current response ended: close, or go on with the next request already buffered. */
  responseDone(res: FastResponse): void {
    if (this.busy !== res) return;
    this.busy = undefined;
    this.idleSince = Date.now();
    if (!this.keepAlive || !res.shouldKeepAlive || this.closing) {
      // Requests pipelined behind the last response are not processed.
      this.parts = [];
      this.have = 0;
      this.socket.end();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.have) this.drive();
  }

  /** Gives the connection and its unread bytes to Node's HTTP server for good. */
  private handOff(): void {
    if (this.handedOff) return;
    this.handedOff = true;
    const s = this.socket;
    s.pause();
    s.removeListener("data", this.onDataBound);
    s.removeListener("close", this.onCloseBound);
    s.removeListener("end", this.onEndBound);
    s.removeListener("error", NOOP);
    this.front.conns.delete(this);
    if (this.have) s.unshift(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.have));
    this.parts = [];
    this.have = 0;
    // Node's header timer starts again at the hand-off: the head keeps the deadline it had here.
    this.front.handOff(s, this.requestStart && !this.head ? this.requestStart + this.front.opts.headersTimeoutMs : 0);
    s.resume();
  }

  private onClose(): void {
    this.front.conns.delete(this);
    const res = this.busy;
    this.busy = undefined;
    res?.emitClose();
  }

  /** Timer sweep: slow heads/bodies get 408, idle keep-alive connections are closed. */
  sweep(now: number): void {
    const o = this.front.opts;
    if (this.busy) return;
    if (this.requestStart) {
      if (now - this.requestStart > (this.head ? o.requestTimeoutMs : o.headersTimeoutMs)) {
        this.parts = [];
        this.have = 0;
        this.socket.end(`HTTP/1.1 408 Request Timeout\r\ndate: ${httpDate()}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        this.socket.destroySoon();
      }
    } else if (this.closing || now - this.idleSince > o.keepAliveTimeoutMs) this.socket.destroy();
  }
}

interface ParsedHead {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  contentLength: number;
  keepAlive: boolean;
}

/** Installs the fast path in front of `server`'s own connection handling. */
export class FastFront {
  readonly conns = new Set<FastConn>();
  /** Connections handed to Node in the middle of a head, with the fast path's deadline for it. */
  private readonly headDeadlines = new Map<Socket, number>();
  private nodeListener: (socket: Socket) => void;
  private timer: NodeJS.Timeout;

  constructor(
    readonly server: http.Server,
    readonly handler: Handler,
    readonly opts: FastOptions,
  ) {
    // http.Server registers its connection listener in its constructor: take it over, keep it for hand-offs.
    const listeners = server.listeners("connection") as Array<(socket: Socket) => void>;
    if (listeners.length !== 1) throw new Error("fast path must be installed on a fresh http.Server");
    this.nodeListener = listeners[0];
    server.removeListener("connection", this.nodeListener);
    server.prependListener("connection", (socket: Socket) => {
      this.conns.add(new FastConn(this, socket));
    });
    // Node's path only (fast-path requests never emit "request"): the handed-off head has arrived in time.
    server.on("request", (req: http.IncomingMessage) => {
      if (this.headDeadlines.size) this.headDeadlines.delete(req.socket);
    });
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const c of this.conns) c.sweep(now);
      for (const [s, deadline] of this.headDeadlines)
        if (now > deadline) {
          this.headDeadlines.delete(s);
          if (s.writable) s.end(`HTTP/1.1 408 Request Timeout\r\ndate: ${httpDate()}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
          s.destroySoon();
        }
    }, 1000);
    this.timer.unref();
  }

  /** @internal `headDeadline`: when a head still arriving must be complete (0: none). */
  handOff(socket: Socket, headDeadline: number): void {
    if (headDeadline) {
      this.headDeadlines.set(socket, headDeadline);
      socket.once("close", () => this.headDeadlines.delete(socket));
    }
    this.nodeListener.call(this.server, socket);
  }

  /** Strict parse of a request head; undefined when the request is not in the fast-path subset. */
  parseHead(head: string): ParsedHead | undefined {
    if (!cleanHead(head)) return undefined;
    const n = head.length;
    let eol = head.indexOf("\r\n");
    if (eol < 0) eol = n;
    const sp1 = head.indexOf(" ");
    const sp2 = sp1 < 0 ? -1 : head.indexOf(" ", sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || sp2 > eol || eol - sp2 !== 9 || !head.startsWith("HTTP/1.1", sp2 + 1)) return undefined;
    const method = head.slice(0, sp1);
    if (method !== "POST" && method !== "GET") return undefined;
    const url = head.slice(sp1 + 1, sp2);
    if (!TARGET.test(url)) return undefined;
    // A name that reads as defined before it is set (duplicate, or an Object.prototype member) is handed off.
    const headers: IncomingHttpHeaders = {};
    let contentLength = 0;
    let keepAlive = true;
    let host = false;
    for (let pos = eol + 2; pos < n; ) {
      let end = head.indexOf("\r\n", pos);
      if (end < 0) end = n;
      const colon = head.indexOf(":", pos);
      if (colon <= pos || colon > end) return undefined;
      const name = head.slice(pos, colon).toLowerCase();
      if (!TOKEN.test(name) || headers[name] !== undefined) return undefined; // also obs-fold, duplicates
      // Optional whitespace is SP/HTAB only (RFC 9110 §5.6.3), as llhttp trims it.
      let vs = colon + 1;
      let ve = end;
      while (vs < ve && isOws(head.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(head.charCodeAt(ve - 1))) ve--;
      const value = head.slice(vs, ve);
      headers[name] = value;
      pos = end + 2;
      switch (name) {
        case "content-length":
          if (!/^\d{1,15}$/.test(value)) return undefined;
          contentLength = Number(value);
          break;
        case "transfer-encoding":
        case "expect":
        case "upgrade":
          return undefined;
        case "connection": {
          const v = value.toLowerCase();
          if (v.includes("upgrade")) return undefined;
          if (v.includes("close")) keepAlive = false;
          break;
        }
        case "host":
          host = true;
          break;
      }
    }
    if (!host) return undefined;
    return { method, url, headers, contentLength, keepAlive };
  }

  /** Shutdown: idle fast-path connections close now, busy ones after their current response. */
  closeIdle(): void {
    for (const c of this.conns) {
      c.closing = true;
      if (!c.busy && !c.requestStart) c.socket.destroy();
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const isOws = (c: number) => c === 32 || c === 9;

/** No control character but HTAB, and CR/LF only as CRLF pairs (a bare CR or LF is never a line end here). */
function cleanHead(head: string): boolean {
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c >= 32 && c !== 127) continue;
    if (c === 9) continue;
    if (c === 13 && head.charCodeAt(i + 1) === 10) {
      i++;
      continue;
    }
    return false;
  }
  return true;
}

export function installFastPath(server: http.Server, handler: Handler, opts: FastOptions): FastFront {
  return new FastFront(server, handler, opts);
}

/** What the router's handlers need of a response: met by Node's `ServerResponse` and by `FastResponse`. */
export interface RouterResponse {
  headersSent: boolean;
  shouldKeepAlive: boolean;
  writeHead(status: number, headers?: string[] | Record<string, string | number | string[]>): unknown;
  write(chunk: string | Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  destroy(): void;
  once(event: "close" | "drain", fn: () => void): unknown;
}
