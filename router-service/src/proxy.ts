// Upstream I/O: one attempt against one backend, and the relay of its response to the client.
import type { IncomingHttpHeaders } from "node:http";
import type { RouterResponse } from "./http1.js";
import { StringDecoder } from "node:string_decoder";
import type { BackendRuntime } from "./backend.js";
import { type BodyListener, type Exchange, type HeadListener, requestHead, type UpstreamFailure } from "./upstream.js";

/** RFC 9110 hop-by-hop headers plus what the router owns (client credentials, framing, encoding). */
const STRIP_REQUEST = new Set([
  "host", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
  "transfer-encoding", "upgrade", "authorization", "x-api-key", "content-length", "cookie", "expect",
  // The router reads usage out of the body, so it asks for identity encoding.
  "accept-encoding", "forwarded", "x-real-ip", "proxy-connection",
]);
/** Client-supplied proxy metadata (x-forwarded-for/-host/-proto/-port/-prefix/…) is never passed on as if true. */
const FORWARDED_PREFIX = "x-forwarded-";
const STRIP_RESPONSE = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
  "upgrade", "set-cookie", "server", "date",
]);

function connectionListed(h: IncomingHttpHeaders): Set<string> | undefined {
  const c = h.connection;
  // "keep-alive" (the common case) only names a header that is stripped anyway.
  if (!c || c === "keep-alive") return undefined;
  return new Set(String(c).toLowerCase().split(",").map((s) => s.trim()).filter(Boolean));
}

function pushHeader(out: string[], k: string, v: string | string[] | undefined): void {
  if (v === undefined) return;
  if (typeof v === "string") out.push(k, v);
  else for (const x of v) out.push(k, x);
}

/**
 * Upstream request headers as a flat `[name, value, …]` list (Node writes it without building a header map).
 * `host` comes from the backend; headers the backend config sets replace the client's of the same name.
 */
export function upstreamRequestHeaders(client: IncomingHttpHeaders, backend: BackendRuntime, bodyLength: number, requestId: string): string[] {
  const listed = connectionListed(client);
  const own = backend.upstreamHeaderNames;
  const out: string[] = ["host", backend.hostHeader];
  for (const k in client)
    if (!STRIP_REQUEST.has(k) && !OWN_REQUEST.has(k) && !own.has(k) && !listed?.has(k) && !k.startsWith(FORWARDED_PREFIX)) pushHeader(out, k, client[k]);
  out.push("content-type", "application/json", "content-length", String(bodyLength), "x-request-id", requestId);
  // Per-backend credentials come from config only; the client's key never leaves the router.
  const bh = backend.upstreamHeaders;
  for (let i = 0; i < bh.length; i++) out.push(bh[i][0], bh[i][1]);
  return out;
}
/** Set by the router itself on every upstream request. */
const OWN_REQUEST = new Set(["content-type", "x-request-id"]);

export interface ClientHead {
  /** Flat `[name, value, …]` list for writeHead. */
  headers: string[];
  sse: boolean;
  /** Upstream content-length that frames the body (also in `headers`), -1 when absent or overridden by Transfer-Encoding. */
  contentLength: number;
}

/**
 * Client response headers, read from the upstream's raw header lines in one pass (no header map is built):
 * the upstream's minus hop-by-hop, cookies, server/date, then the router's own `extra` pairs, which replace
 * upstream headers of the same name. Content-length is kept once, and only when it frames the body the client
 * gets: not for SSE (re-framed) nor next to a Transfer-Encoding (which wins, RFC 9112 §6.3: the router decodes
 * the chunks and frames the client's response itself).
 */
export function clientResponseHead(up: { rawHeaders: string[] }, extra: string[]): ClientHead {
  const raw = up.rawHeaders;
  const names: string[] = new Array(raw.length >> 1);
  let sse = false;
  let te = false;
  let contentLength = -1;
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    names[i >> 1] = k;
    if (k === "content-type") sse ||= raw[i + 1].includes("text/event-stream");
    else if (k === "content-length") contentLength = contentLength < 0 ? Number(raw[i + 1]) : contentLength;
    else if (k === "transfer-encoding") te = true;
    else if (k === "connection") connection = connection === undefined ? raw[i + 1] : `${connection},${raw[i + 1]}`;
  }
  // The upstream parser refuses differing lengths, so a repeated one is the same value: it is sent once.
  let lengthLeft = sse || te ? 0 : 1;
  if (te) contentLength = -1;
  const listed = connection !== undefined && connection !== "keep-alive" ? connectionListed({ connection }) : undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = names[i >> 1];
    if (STRIP_RESPONSE.has(k) || listed?.has(k)) continue;
    if (k === "content-length" && lengthLeft-- <= 0) continue;
    if (k === "x-tuna-backend" || (k.startsWith("x-ratelimit-") && pairHas(extra, k))) continue;
    out.push(k, raw[i + 1]);
  }
  for (let i = 0; i < extra.length; i++) out.push(extra[i]);
  return { headers: out, sse, contentLength };
}

function pairHas(pairs: string[], name: string): boolean {
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === name) return true;
  return false;
}

/**
 * Why an attempt failed before anything reached the client: before the response head (`connect`, `reset`,
 * `timeout`), at the head (`bad_response`: a head the parser refused),
 * between the head and the first body byte (`*_before_body`; for a buffered answer, before its body was
 * complete), or because the client left (`aborted`).
 */
export type AttemptFailure = "connect" | "timeout" | "reset" | "bad_response" | "aborted" | "reset_before_body" | "timeout_before_body";

/** Largest body (of known length, not SSE) that is received whole and sent to the client in one write. */
const WHOLE_MAX = 1024 * 1024;

/**
 * One upstream attempt (a class rather than closures: fewer allocations on the hot path). It is the exchange's
 * body listener too, and holds the client's answer back until the attempt *commits*: for SSE, when the first
 * complete event the client is sent arrives (the attempt frames the events itself with its `tap`, so a head
 * followed by part of an event and then a loss or a stall is still a failure before the first byte); for a
 * small JSON answer of known length, once its whole body is in; for any other answer, at its first body byte;
 * and for all of them at the end of the body if it comes first. Until then
 * nothing has been sent to the client, so a failure is one the router may still fail over from; `failure` says
 * which, and stays readable after the promise resolved (a loss just after committing, before the relay took
 * over, is still reported there). The relay takes the body over with `attach`.
 */
export class Attempt implements HeadListener, BodyListener {
  settled = false;
  /** Set when the attempt failed; read by the caller after the promise resolved. */
  failure: AttemptFailure | undefined;
  timer: NodeJS.Timeout | undefined;
  x: Exchange | undefined;
  /** The client's response head (upstream headers minus hop-by-hop, plus `extra`); set once the head arrived. */
  clientHead: ClientHead | undefined;
  /** The body is received whole before committing (see WHOLE_MAX); the relay sends it in one write. */
  whole = false;
  /** Body bytes received before the relay attached (for SSE: after the commit; earlier ones went into `tap`). */
  held: Buffer[] | undefined;
  /** SSE only: frames the events from the first byte on; the relay takes it over. */
  tap: SseTap | undefined;
  /** SSE only: what `tap` produced for the client up to the commit, not yet written (the relay writes it first). */
  tapOut: string | undefined;
  ended = false;
  /** performance.now() at the first body byte (TTFT); 0 before. */
  firstByteAt = 0;
  private sink: BodyListener | undefined;
  constructor(
    readonly clientGone: () => boolean,
    private resolve: (a: Attempt) => void,
    /** Resolve at a 5xx head without reading its body: the caller fails over (not for the last candidate). */
    private failFastOn5xx: boolean,
    private extra: string[],
    private clientWantsUsage: boolean,
    /** Sent to the client as `x-tuna-backend`. */
    private backendId: string,
  ) {}
  private finish(failure: AttemptFailure | undefined): void {
    this.settled = true;
    this.failure = failure;
    clearTimeout(this.timer);
    this.resolve(this);
  }
  /** The deadline passed before the attempt committed, or the client left: abandon the exchange. */
  abandon(reason: "timeout" | "aborted"): void {
    if (this.settled) return;
    this.finish(reason === "timeout" && this.clientHead !== undefined ? "timeout_before_body" : reason);
    this.x?.destroy();
  }
  head(x: Exchange): void {
    if (this.settled) {
      x.destroy();
      return;
    }
    if (this.failFastOn5xx && x.statusCode >= 500) {
      this.finish(undefined);
      return;
    }
    const h = clientResponseHead(x, this.extra);
    // Relayable as it is by either response implementation (the fast path's writeHead checks nothing, Node's
    // throws): the parser held the upstream's lines to Node's rule, the contract holds backend ids to printable
    // ASCII, and the router's rate-limit values are numbers.
    h.headers.push("x-tuna-backend", this.backendId);
    this.clientHead = h;
    this.whole = !h.sse && h.contentLength >= 0 && h.contentLength <= WHOLE_MAX;
    if (h.sse) this.tap = new SseTap(this.clientWantsUsage);
    // Bytes that came with the head are delivered now, synchronously.
    x.start(this);
  }
  fail(reason: UpstreamFailure): void {
    if (!this.settled) this.finish(this.clientGone() ? "aborted" : reason === "malformed" ? "bad_response" : reason);
  }
  data(chunk: Buffer): void {
    if (this.sink !== undefined) {
      this.sink.data(chunk);
      return;
    }
    if (this.firstByteAt === 0) this.firstByteAt = performance.now();
    const tap = this.tap;
    if (tap !== undefined && !this.settled) {
      // Nothing for the client yet (a partial event, or only the usage chunk it does not get): not committed.
      const out = tap.push(chunk);
      if (out) {
        this.tapOut = out;
        this.finish(undefined);
      }
      return;
    }
    if (this.held === undefined) this.held = [chunk];
    else this.held.push(chunk);
    if (!this.whole && !this.settled) this.finish(undefined);
  }
  end(): void {
    this.ended = true;
    if (this.sink !== undefined) this.sink.end();
    else if (!this.settled) this.finish(undefined);
  }
  abort(): void {
    if (this.sink !== undefined) {
      this.sink.abort();
      return;
    }
    // Nothing of this answer reached the client yet. After the promise resolved (the relay has not attached),
    // the caller reads this before relaying.
    const failure = this.clientGone() ? "aborted" : "reset_before_body";
    if (!this.settled) this.finish(failure);
    else this.failure ??= failure;
  }
  /** The body received whole (`whole` attempts, once committed). */
  body(): Buffer {
    const held = this.held;
    if (held === undefined) return EMPTY;
    return held.length === 1 ? held[0] : Buffer.concat(held);
  }
  /**
   * Hands the body over to `sink`: what arrived so far first (and its end), then the rest as it comes. For SSE
   * the bytes that went into `tap` before the commit are not passed again: the sink writes `tapOut` first.
   */
  attach(sink: BodyListener): void {
    this.sink = sink;
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) for (let i = 0; i < held.length; i++) sink.data(held[i]);
    if (this.ended) sink.end();
  }
}
const EMPTY = Buffer.alloc(0);

/**
 * Sends one request; resolves with the attempt once it committed (see `Attempt`) or failed. The deadline
 * `timeoutMs` runs from the send until the attempt commits: for SSE, its first complete event for the client
 * (vLLM sends the head at once and the first event after prefill); for a buffered answer, the end of its body;
 * for another streamed one, its first body byte.
 */
export function attemptUpstream(
  backend: BackendRuntime,
  apiPath: string,
  headers: string[],
  body: Buffer,
  timeoutMs: number,
  failFastOn5xx: boolean,
  extra: string[],
  clientWantsUsage: boolean,
  clientGone: () => boolean,
  onClientGone: (fn: () => void) => void,
): Promise<Attempt> {
  return new Promise((resolve) => {
    const a = new Attempt(clientGone, resolve, failFastOn5xx, extra, clientWantsUsage, backend.id);
    a.timer = setTimeout(() => a.abandon("timeout"), timeoutMs);
    onClientGone(() => a.abandon("aborted"));
    a.x = backend.pool.request(requestHead("POST", backend.basePath + apiPath, headers), body, a);
  });
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

const LF = 10;
const CR = 13;

/**
 * Just past the blank line whose last line end is `s[i]`, or -1 when `s[i]` does not end a blank line. Lines end
 * with CRLF, LF or CR (SSE spec), so a blank line is two line ends in a row: any pair of CR/LF characters
 * except CR followed by LF (one CRLF line end).
 */
function blankLineEnd(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c !== LF && c !== CR) return -1;
  const p = s.charCodeAt(i - 1);
  if (p === LF || (p === CR && c === CR)) return c === CR && s.charCodeAt(i + 1) === LF ? i + 2 : i + 1;
  return -1;
}

/** Where the last complete SSE event in `s` ends, looking only at blank lines ending at or after `from`; -1 if none. */
function lastEventEnd(s: string, from: number): number {
  for (let i = s.length - 1; i >= from && i > 0; i--) {
    const end = blankLineEnd(s, i);
    if (end >= 0) return end;
  }
  return -1;
}

/** The end of the first event of `s` at or after `start` (past its blank line), or `s.length`. */
function nextEventEnd(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    const end = blankLineEnd(s, i);
    if (end >= 0) return end;
  }
  return s.length;
}

const LINE_END = /\r\n|\r|\n/;

/**
 * Frames SSE events so the router can read `usage` from the final chunk and, when the client did not ask
 * for usage itself, drop the usage-only chunk the router requested on its behalf. Complete events are
 * forwarded as soon as they arrive, byte for byte; only a partial trailing event is held back. Only events
 * whose text holds `"usage"` are looked into (their data parsed as JSON), so the per-chunk cost is a scan of
 * the new bytes for the last blank line.
 */
export class SseTap {
  usage: Usage | undefined;
  private pending = "";
  private decoder = new StringDecoder("utf8");
  constructor(private clientWantsUsage: boolean) {}

  push(chunk: Buffer): string | null {
    const held = this.pending.length;
    const text = this.decoder.write(chunk);
    const all = held ? this.pending + text : text;
    // What was held has no blank line in it: only one ending in the new text (it may start in the held part).
    const cut = lastEventEnd(all, held);
    if (cut < 0) {
      this.pending = all;
      // No event boundary in a megabyte: not SSE we understand, stop holding bytes back.
      if (all.length > 1 << 20) return this.flush();
      return null;
    }
    let complete = cut === all.length ? all : all.slice(0, cut);
    this.pending = cut === all.length ? "" : all.slice(cut);
    if (complete.includes('"usage"')) complete = this.inspect(complete);
    return complete;
  }

  flush(): string | null {
    let rest = this.pending + this.decoder.end();
    this.pending = "";
    // A last event without its blank line (the stream ended): still read its usage.
    if (rest.includes('"usage"')) rest = this.inspect(rest);
    return rest.length ? rest : null;
  }

  /** Reads usage out of the events of `text` that may carry it; returns `text` minus a usage-only chunk to drop. */
  private inspect(text: string): string {
    // Line ends before the first event (the LF of a CRLF whose CR ended the previous piece) belong to no event.
    let start = 0;
    while (start < text.length && (text.charCodeAt(start) === LF || text.charCodeAt(start) === CR)) start++;
    let out = start ? text.slice(0, start) : "";
    while (start < text.length) {
      const end = nextEventEnd(text, start);
      const ev = text.slice(start, end);
      if (!(ev.includes('"usage"') && this.takeUsage(ev))) out += ev;
      start = end;
    }
    return out;
  }

  /** Parses one event's data; keeps its usage. True when the event is the usage-only chunk to drop. */
  private takeUsage(ev: string): boolean {
    let data: string | undefined;
    for (const line of ev.split(LINE_END)) {
      if (!line.startsWith("data:")) continue;
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = data === undefined ? v : `${data}\n${v}`;
    }
    if (data === undefined) return false;
    let obj: { usage?: unknown; choices?: unknown };
    try {
      obj = JSON.parse(data);
    } catch {
      return false; // not JSON: forwarded untouched
    }
    if (!obj || typeof obj.usage !== "object" || obj.usage === null) return false;
    this.usage = obj.usage as Usage;
    return !this.clientWantsUsage && Array.isArray(obj.choices) && obj.choices.length === 0;
  }
}

const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Index just past the JSON string that opens at `i` (a quote), or -1 when it does not end in `buf`. */
function skipString(buf: Buffer, i: number): number {
  for (let j = i + 1; j < buf.length; j++) {
    const c = buf[j];
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return -1;
}

/** The index of the `}` that closes the object opening at `open`, or -1. */
function objectEnd(buf: Buffer, open: number): number {
  // Usage objects are flat as a rule (numbers under quoted keys): the first `}` closes it when no `{` or `"…}`
  // comes before it; a wrong guess only fails JSON.parse, so the string-aware scan is the exception.
  const first = buf.indexOf(0x7d, open);
  if (first < 0) return -1;
  const nested = buf.indexOf(0x7b, open + 1);
  if (nested < 0 || nested > first) return first;
  let depth = 0;
  for (let i = open; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x22) {
      i = skipString(buf, i) - 1;
      if (i < 0) return -1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return i;
  }
  return -1;
}

/** Whether the document after index `from` (inside the outermost object) only closes that object. */
function closesRoot(buf: Buffer, from: number): boolean {
  let depth = 0;
  for (let i = from; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x22) {
      i = skipString(buf, i) - 1;
      if (i < 0) return false;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth < 0) {
      for (i++; i < buf.length; i++) if (!WS(buf[i])) return false;
      return true;
    }
  }
  return false;
}

/**
 * The `usage` object of the top-level object whose bytes end `buf`, found from the end without parsing the rest:
 * the last `"usage"` key (not inside an escaped string) whose value is an object after which the document only
 * closes its outermost object. `buf` may be just the tail of the body. Undefined when there is none.
 */
export function usageFromTail(buf: Buffer): Usage | undefined {
  for (let at = buf.lastIndexOf(USAGE_KEY); at >= 0; at = at > 0 ? buf.lastIndexOf(USAGE_KEY, at - 1) : -1) {
    if (at > 0 && buf[at - 1] === 0x5c) continue; // \"usage\" inside a string
    let i = at + USAGE_KEY.length;
    while (i < buf.length && WS(buf[i])) i++;
    if (buf[i] !== 0x3a /* : */) continue;
    i++;
    while (i < buf.length && WS(buf[i])) i++;
    if (buf[i] !== 0x7b /* { */) continue;
    const close = objectEnd(buf, i);
    if (close < 0 || !closesRoot(buf, close + 1)) continue;
    try {
      const u = JSON.parse(buf.toString("utf8", i, close + 1)) as Usage;
      if (u && typeof u === "object") return u;
    } catch {
      /* not JSON after all: look further back */
    }
  }
  return undefined;
}
const USAGE_KEY = Buffer.from('"usage"');

/**
 * `usage` of a whole JSON body. OpenAI-style bodies put it last; reading just that object (found in the bytes,
 * without decoding the whole body) is much cheaper than parsing the body, which is the fallback.
 */
export function usageFromJson(buf: Buffer): Usage | undefined {
  const u = usageFromTail(buf);
  if (u) return u;
  try {
    const obj = JSON.parse(buf.toString("utf8")) as { usage?: Usage };
    return obj.usage ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes `data` honouring backpressure: pauses the upstream until the client drains. A slow client is not a
 * frozen backend: the stream's idle clock (`idle`) stops while the upstream is paused and restarts at the drain.
 */
export function writeWithBackpressure(res: RouterResponse, up: Exchange, data: string | Buffer, idle?: StreamIdleWatch): void {
  if (!res.write(data)) {
    up.pause();
    idle?.pause();
    res.once("drain", () => {
      idle?.resume();
      up.resume();
    });
  }
}

/**
 * The idle deadline of a relayed body after the commit (`streamIdleTimeoutMs`): `onIdle` runs once when no body
 * byte arrived for `ms` while the upstream was not paused for backpressure. One timer per stream, not one per
 * chunk: a chunk only stores its arrival time; the timer, when it fires, re-arms for what is left. While paused
 * the timer is not re-armed; `resume` restarts the clock (and the timer if it had lapsed meanwhile).
 */
export class StreamIdleWatch {
  private lastByteAt: number;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private done = false;
  constructor(
    readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.lastByteAt = performance.now();
    this.arm(ms);
  }
  /** A body byte arrived. */
  touch(): void {
    this.lastByteAt = performance.now();
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    if (this.done || !this.paused) return;
    this.paused = false;
    this.lastByteAt = performance.now();
    if (this.timer === undefined) this.arm(this.ms);
  }
  /** The body ended, was cut, or the client left: the watch is over. */
  stop(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
  private arm(ms: number): void {
    this.timer = setTimeout(fireIdle, ms, this);
  }
  /** @internal the timer fired. */
  fired(): void {
    this.timer = undefined;
    if (this.done || this.paused) return;
    const left = this.lastByteAt + this.ms - performance.now();
    // Timers may fire a fraction of a millisecond early: under a millisecond left counts as idle.
    if (left >= 1) {
      this.arm(Math.ceil(left));
      return;
    }
    this.done = true;
    this.onIdle();
  }
}
function fireIdle(w: StreamIdleWatch): void {
  w.fired();
}
