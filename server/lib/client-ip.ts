import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { envInt } from "./env";

/**
 * The client's IP address, for sign-in limits and the audit log: the one helper every caller uses.
 *
 * Next.js (`next start` and `next dev`, 16.x) passes a client-supplied `X-Forwarded-For` through unchanged
 * and only fills it in from the socket when the request has none, so a route cannot tell a forged header
 * from a real one. `installPeerAddressStamp` closes that: before Next sees a request it appends the TCP
 * peer's address to X-Forwarded-For (as a proxy would) and marks the request with this process's secret
 * nonce. Then, with TUNA_TRUSTED_PROXIES = N reverse proxies in front of the app, the client is the entry N
 * places left of the rightmost one: the rightmost is the socket peer, and each trusted proxy appended the
 * address it was connected from. Entries further left were sent by the client and are never used.
 *
 * A request without the mark (one that arrived before the stamp was installed, or a non-Next caller) has
 * no socket entry; there the client is the entry N-1 places left of the rightmost (the one the outermost
 * trusted proxy appended) and, with no proxies, the rightmost, which a client can forge.
 */
const STAMP_HEADER = "x-tuna-peer-stamp";
const NONCE = Symbol.for("tuna.clientIp.stampNonce");
const INSTALLED = Symbol.for("tuna.clientIp.stampInstalled");

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

/** TUNA_TRUSTED_PROXIES: how many reverse proxies (each appending to X-Forwarded-For) sit in front of the app. */
export function trustedProxyCount(): number {
  return envInt("TUNA_TRUSTED_PROXIES", 0, 0, 32);
}

export function clientIp(headers: HeaderBag | null | undefined, trustedProxies = trustedProxyCount()): string {
  const xff = header(headers, "x-forwarded-for");
  const hops = (xff ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (hops.length === 0) return "local"; // not an HTTP request through Next (scripts, tests)
  const stamped = header(headers, STAMP_HEADER) === stampNonce();
  const skip = stamped ? trustedProxies : Math.max(trustedProxies - 1, 0);
  // Fewer hops than proxies: the request skipped the outer ones; the leftmost entry was still added by one we trust.
  const hop = hops[Math.max(hops.length - 1 - skip, 0)];
  return normalizeAddress(hop).slice(0, 64);
}

function header(headers: HeaderBag | null | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const v = headers[name];
  // Node joins repeated X-Forwarded-For lines with ", "; a raw list is joined the same way here.
  return Array.isArray(v) ? v.join(", ") : v;
}

/** "::ffff:1.2.3.4" → "1.2.3.4"; "1.2.3.4:5678" → "1.2.3.4"; "[::1]:80" → "::1". Anything else as given. */
function normalizeAddress(raw: string): string {
  let a = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracketed) a = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(":"));
  if (/^::ffff:[\d.]+$/i.test(a) && isIP(a.slice(7)) === 4) a = a.slice(7);
  return a;
}

function stampNonce(): string {
  const g = globalThis as unknown as Record<symbol, string | undefined>;
  g[NONCE] ??= randomBytes(16).toString("hex");
  return g[NONCE];
}

/**
 * Appends the socket peer to X-Forwarded-For and marks the headers as stamped by this process. A mark the
 * client sent is overwritten, so it never passes for ours.
 */
export function stampPeerAddress(headers: http.IncomingHttpHeaders, peer: string | undefined): void {
  const prev = headers["x-forwarded-for"];
  const list = Array.isArray(prev) ? prev.join(", ") : prev;
  if (peer) headers["x-forwarded-for"] = list ? `${list}, ${peer}` : peer;
  headers[STAMP_HEADER] = stampNonce();
}

/**
 * Makes every HTTP(S) server of this process stamp requests (stampPeerAddress) before any listener sees them,
 * Next's included. Idempotent. Install it as early as possible (instrumentation's register()); the tRPC and
 * next-auth routes also install it when they load, so later requests are stamped in any case.
 */
export function installPeerAddressStamp(): void {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (g[INSTALLED]) return;
  g[INSTALLED] = true;
  for (const Server of [http.Server, https.Server]) {
    const emit = Server.prototype.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
    Server.prototype.emit = function (this: unknown, event: string | symbol, ...args: unknown[]) {
      if (event === "request") {
        const req = args[0] as http.IncomingMessage | undefined;
        if (req?.headers) stampPeerAddress(req.headers, req.socket?.remoteAddress);
      }
      return emit.apply(this, [event, ...args]);
    } as typeof Server.prototype.emit;
  }
}
