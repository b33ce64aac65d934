// Upstream I/O: one attempt against one backend, and the relay of its response to the client.
import type { IncomingHttpHeaders } from "node:http";
import type { RouterResponse } from "./http1.js";
import { StringDecoder } from "node:string_decoder";
import type { BackendRuntime } from "./backend.js";
import { type Exchange, type HeadListener, requestHead, type UpstreamFailure } from "./upstream.js";

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
  /** Upstream content-length, -1 when absent. */
  contentLength: number;
}

/**
 * Client response headers, read from the upstream's raw header lines in one pass (no header map is built):
 * the upstream's minus hop-by-hop, cookies, server/date (and content-length for SSE, which is re-framed),
 * then the router's own `extra` pairs, which replace upstream headers of the same name.
 */
export function clientResponseHead(up: { rawHeaders: string[] }, extra: string[]): ClientHead {
  const raw = up.rawHeaders;
  const names: string[] = new Array(raw.length >> 1);
  let sse = false;
  let contentLength = -1;
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    names[i >> 1] = k;
    if (k === "content-type") sse ||= raw[i + 1].includes("text/event-stream");
    else if (k === "content-length") contentLength = contentLength < 0 ? Number(raw[i + 1]) : contentLength;
    else if (k === "connection") connection = connection === undefined ? raw[i + 1] : `${connection},${raw[i + 1]}`;
  }
  const listed = connection !== undefined && connection !== "keep-alive" ? connectionListed({ connection }) : undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = names[i >> 1];
    if (STRIP_RESPONSE.has(k) || listed?.has(k) || (sse && k === "content-length")) continue;
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

export type AttemptResult = { ok: true; up: Exchange } | { ok: false; reason: "connect" | "timeout" | "reset" | "aborted" };

/** State of one upstream attempt (a class rather than closures: fewer allocations on the hot path). */
class Attempt implements HeadListener {
  settled = false;
  firstByteTimer: NodeJS.Timeout | undefined;
  x: Exchange | undefined;
  constructor(
    readonly clientGone: () => boolean,
    private resolve: (r: AttemptResult) => void,
  ) {}
  private finish(r: AttemptResult): void {
    this.settled = true;
    clearTimeout(this.firstByteTimer);
    this.resolve(r);
  }
  /** Timeout before the first byte, or the client left: abandon the exchange. */
  abandon(reason: "timeout" | "aborted"): void {
    if (this.settled) return;
    this.finish({ ok: false, reason });
    this.x?.destroy();
  }
  head(x: Exchange): void {
    if (this.settled) x.destroy();
    else this.finish({ ok: true, up: x });
  }
  fail(reason: UpstreamFailure): void {
    if (!this.settled) this.finish({ ok: false, reason: this.clientGone() ? "aborted" : reason });
  }
}

/** Sends one request; resolves at the response head (the "first byte") or with the failure reason. */
export function attemptUpstream(
  backend: BackendRuntime,
  apiPath: string,
  headers: string[],
  body: Buffer,
  headTimeoutMs: number,
  clientGone: () => boolean,
  onClientGone: (fn: () => void) => void,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    const a = new Attempt(clientGone, resolve);
    a.firstByteTimer = setTimeout(() => a.abandon("timeout"), headTimeoutMs);
    onClientGone(() => a.abandon("aborted"));
    a.x = backend.pool.request(requestHead("POST", backend.basePath + apiPath, headers), body, a);
  });
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

/**
 * Frames SSE events so the router can read `usage` from the final chunk and, when the client did not ask
 * for usage itself, drop the usage-only chunk the router requested on its behalf. Complete events are
 * forwarded as soon as they arrive; only a partial trailing event is held back.
 */
export class SseTap {
  usage: Usage | undefined;
  private pending = "";
  private decoder = new StringDecoder("utf8");
  constructor(private clientWantsUsage: boolean) {}

  push(chunk: Buffer): string | null {
    this.pending += this.decoder.write(chunk);
    const idx = this.pending.lastIndexOf("\n\n");
    if (idx < 0) {
      // No event boundary in a megabyte: not SSE we understand, stop holding bytes back.
      if (this.pending.length > 1 << 20) return this.flush();
      return null;
    }
    let complete = this.pending.slice(0, idx + 2);
    this.pending = this.pending.slice(idx + 2);
    if (complete.includes('"usage":{')) complete = this.inspect(complete);
    return complete;
  }

  flush(): string | null {
    const rest = this.pending + this.decoder.end();
    this.pending = "";
    return rest.length ? rest : null;
  }

  private inspect(text: string): string {
    const events = text.split("\n\n");
    const kept: string[] = [];
    for (const ev of events) {
      if (!ev) continue;
      if (ev.includes('"usage":{')) {
        const data = ev
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        try {
          const obj = JSON.parse(data) as { usage?: Usage; choices?: unknown[] };
          if (obj.usage) this.usage = obj.usage;
          if (!this.clientWantsUsage && Array.isArray(obj.choices) && obj.choices.length === 0) continue;
        } catch {
          /* not JSON: forward untouched */
        }
      }
      kept.push(ev);
    }
    return kept.length ? `${kept.join("\n\n")}\n\n` : "";
  }
}

export function usageFromJson(buf: Buffer): Usage | undefined {
  // OpenAI-style bodies put `usage` last; parsing just that object (found in the bytes, without decoding the
  // whole body) is much cheaper than the whole body.
  const at = buf.lastIndexOf(USAGE_MARK);
  if (at >= 0) {
    const end = buf.indexOf(0x7d /* } */, at);
    if (end > 0) {
      try {
        return JSON.parse(buf.toString("utf8", at + USAGE_MARK.length - 1, end + 1)) as Usage;
      } catch {
        /* nested or odd formatting: fall back to a full parse */
      }
    }
  }
  try {
    const obj = JSON.parse(buf.toString("utf8")) as { usage?: Usage };
    return obj.usage ?? undefined;
  } catch {
    return undefined;
  }
}
const USAGE_MARK = Buffer.from('"usage":{');

/** Writes `data` honouring backpressure: pauses the upstream until the client drains. */
export function writeWithBackpressure(res: RouterResponse, up: Exchange, data: string | Buffer): void {
  if (!res.write(data)) {
    up.pause();
    res.once("drain", () => up.resume());
  }
}
