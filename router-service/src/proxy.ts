// Upstream I/O: one attempt against one backend, and the relay of its response to the client.
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import https from "node:https";
import { StringDecoder } from "node:string_decoder";
import type { BackendRuntime } from "./backend.js";

/** RFC 9110 hop-by-hop headers plus what the router owns (client credentials, framing, encoding). */
const STRIP_REQUEST = new Set([
  "host", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
  "transfer-encoding", "upgrade", "authorization", "x-api-key", "content-length", "cookie", "expect",
  // The router reads usage out of the body, so it asks for identity encoding.
  "accept-encoding", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
]);
const STRIP_RESPONSE = new Set([
  "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
  "upgrade", "set-cookie", "server", "date",
]);

function connectionListed(h: IncomingHttpHeaders): Set<string> {
  const c = h.connection;
  if (!c) return new Set();
  return new Set(String(c).toLowerCase().split(",").map((s) => s.trim()).filter(Boolean));
}

export function upstreamRequestHeaders(client: IncomingHttpHeaders, backend: BackendRuntime, bodyLength: number, requestId: string): OutgoingHttpHeaders {
  const listed = connectionListed(client);
  const out: OutgoingHttpHeaders = {};
  for (const k in client) if (!STRIP_REQUEST.has(k) && !listed.has(k)) out[k] = client[k];
  out["content-type"] = "application/json";
  out["content-length"] = bodyLength;
  out["x-request-id"] = requestId;
  // Per-backend credentials come from config only; the client's key never leaves the router.
  for (const [k, v] of backend.upstreamHeaders) out[k] = v;
  return out;
}

export function clientResponseHeaders(up: IncomingMessage, dropLength: boolean): OutgoingHttpHeaders {
  const listed = connectionListed(up.headers);
  const out: OutgoingHttpHeaders = {};
  for (const k in up.headers)
    if (!STRIP_RESPONSE.has(k) && !listed.has(k) && !(dropLength && k === "content-length")) out[k] = up.headers[k];
  return out;
}

export type AttemptResult =
  | { ok: true; up: IncomingMessage; req: http.ClientRequest }
  | { ok: false; reason: "connect" | "timeout" | "reset" | "aborted" };

/** Sends one request; resolves at response headers (the "first byte") or with the failure reason. */
export function attemptUpstream(
  backend: BackendRuntime,
  apiPath: string,
  headers: OutgoingHttpHeaders,
  body: Buffer,
  clientGone: () => boolean,
  onClientGone: (fn: () => void) => void,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    const o = backend.origin;
    const base = o.pathname.endsWith("/") ? o.pathname.slice(0, -1) : o.pathname;
    const mod = o.protocol === "https:" ? https : http;
    let settled = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const finish = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(firstByteTimer);
      clearTimeout(connectTimer);
      resolve(r);
    };
    const req = mod.request({
      protocol: o.protocol, hostname: o.hostname, port: o.port || undefined, method: "POST",
      path: base + apiPath, agent: backend.agent, headers,
    });
    const firstByteTimer = setTimeout(() => {
      finish({ ok: false, reason: "timeout" });
      req.destroy();
    }, backend.firstByteTimeoutMs);
    req.on("socket", (s) => {
      if (!s.connecting) return;
      connectTimer = setTimeout(() => {
        finish({ ok: false, reason: "connect" });
        req.destroy();
      }, backend.connectTimeoutMs);
      s.once("connect", () => clearTimeout(connectTimer));
    });
    req.on("response", (up) => {
      if (settled) {
        up.resume();
        return;
      }
      finish({ ok: true, up, req });
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? "";
      const connectFailure = ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED"].includes(code);
      finish({ ok: false, reason: clientGone() ? "aborted" : connectFailure ? "connect" : "reset" });
    });
    onClientGone(() => {
      if (!settled) {
        finish({ ok: false, reason: "aborted" });
        req.destroy();
      }
    });
    req.end(body);
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
  // OpenAI-style bodies put `usage` last; parsing just that object is much cheaper than the whole body.
  const text = buf.toString("latin1");
  const at = text.lastIndexOf('"usage":{');
  if (at >= 0) {
    const end = text.indexOf("}", at);
    if (end > 0) {
      try {
        return JSON.parse(text.slice(at + 8, end + 1)) as Usage;
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

/** Writes `data` honouring backpressure: pauses the upstream until the client drains. */
export function writeWithBackpressure(res: ServerResponse, up: IncomingMessage, data: string | Buffer): void {
  if (!res.write(data)) {
    up.pause();
    res.once("drain", () => up.resume());
  }
}
