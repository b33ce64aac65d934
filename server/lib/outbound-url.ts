import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress, LookupOptions } from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { Readable } from "node:stream";
import {
  ALLOW_PRIVATE_URLS_ENV, type AddressClass, type Allowlist, addressAllowed, bareHost, classifyAddress, isLocalhostName, parseAllowlist,
} from "@tuna/router-service/address";

/**
 * Outbound URLs a tenant supplies (a SkyPilot API server, an alert webhook) or that a tenant-controlled server
 * returns (a SkyServe service endpoint that becomes a router backend). The control plane and the router run
 * inside the operator's network, so such a URL must not make them talk to loopback, private, link-local
 * (cloud metadata at 169.254.169.254), CGNAT, multicast or otherwise reserved addresses (SSRF).
 *
 * - `checkOutboundUrlSync`: parse (WHATWG, which also turns `2130706433`, `0x7f.1`, `017700000001` into dotted
 *   quads), http/https only, no `user:pass@`, no fragment, for base URLs no query string; a literal address or
 *   a `localhost` name must not be internal. No DNS: for save-time validation and the router snapshot.
 * - `checkOutboundUrl`: the same, then resolves the name (every address it has) and refuses if any is internal.
 * - `guardedFetch`: a fetch that re-checks the address it actually connects to (resolve once, check, connect
 *   to that address: no DNS rebinding between check and connect) and never follows redirects.
 *
 * Operator escape hatch: `TUNA_ALLOW_PRIVATE_URLS`, comma-separated host names (exact, case-insensitive) and/or
 * addresses / CIDRs (`10.1.0.0/16`, `fd00::/8`, `127.0.0.1`) that are allowed anyway. Read on every check.
 *
 * Which addresses are internal, and the allowlist's syntax, live in the router package
 * (`@tuna/router-service/address`), because the router applies the same rule when it connects: a SkyServe
 * endpoint goes into the snapshot as a `publicOnly` backend, and the router resolves its host for every new
 * connection, refuses it if any address is internal, and connects to the address it checked (a name that
 * passed here cannot be re-pointed at an internal address later: DNS rebinding). The router reads its own
 * `TUNA_ALLOW_PRIVATE_URLS` (the snapshot carries no allowlist): an endpoint the operator allowed here must be
 * allowed in the router's environment too, or the router refuses it (logged, `tuna_router_upstream_refused_total`).
 * `npm run dev` / `npm start` (scripts/launch.ts) pass the app's environment to the router they start, so there
 * one setting covers both; a router deployed on its own needs the variable set.
 */

export { ALLOW_PRIVATE_URLS_ENV, type AddressClass, classifyAddress };

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface OutboundUrlPolicy {
  /** How the URL is named in messages, capitalised: "The SkyPilot API server URL". */
  label: string;
  /** A base URL that paths are joined to (API servers, router backends): a query string is refused too. */
  base?: boolean;
  /** Plain http only for hosts the operator allowed (webhooks); https otherwise. */
  requireHttps?: boolean;
  /** false: messages never quote the host or address (the URL is a secret, e.g. a webhook). Default true. */
  revealHost?: boolean;
  /** DNS resolver (tests); default `dns.lookup` with `all: true`. */
  resolver?: Resolver;
  /** Allowlist (same syntax as the environment variable); default: `TUNA_ALLOW_PRIVATE_URLS` read now. */
  allow?: string;
}

export type OutboundUrlProblem = "invalid" | "scheme" | "userinfo" | "fragment" | "query" | "private" | "unresolvable";

/** A refused URL. `message` is a sentence a user can act on; it never holds the URL's path, query or credentials. */
export class OutboundUrlError extends Error {
  readonly problem: OutboundUrlProblem;
  constructor(problem: OutboundUrlProblem, message: string) {
    super(message);
    this.name = "OutboundUrlError";
    this.problem = problem;
  }
}

/** Named policies, so the vault (save time) and the clients (use time) check the same thing. */
export const OUTBOUND_POLICIES = {
  skypilotApiServer: { label: "The SkyPilot API server URL", base: true },
  serviceEndpoint: { label: "The service endpoint", base: true },
  webhook: { label: "The webhook URL", requireHttps: true, revealHost: false },
} satisfies Record<string, OutboundUrlPolicy>;

// ------------------------------------------------------------------------------------------- allowlist

const warnedEntries = new Set<string>();

function allowlistOf(policy: OutboundUrlPolicy): Allowlist {
  const list = parseAllowlist(policy.allow ?? process.env[ALLOW_PRIVATE_URLS_ENV]);
  for (const entry of list.invalid) {
    if (warnedEntries.has(entry)) continue;
    warnedEntries.add(entry);
    console.warn(`[outbound-url] ${ALLOW_PRIVATE_URLS_ENV}: ignoring "${entry}" (not a host name, address or CIDR)`);
  }
  return list;
}

// ------------------------------------------------------------------------------------------- checks

function hostShown(policy: OutboundUrlPolicy, text: string): string {
  return policy.revealHost === false ? "" : ` (${text})`;
}

function privateRefusal(policy: OutboundUrlPolicy, shown: string): OutboundUrlError {
  return new OutboundUrlError(
    "private",
    `${policy.label} must not point at a private or loopback address${hostShown(policy, shown)}. Use an address reachable from the internet, or ask the operator of this Tuna installation to allow it in ${ALLOW_PRIVATE_URLS_ENV}.`,
  );
}

/**
 * Syntax and literal-address checks (no DNS). Returns the parsed URL; throws `OutboundUrlError`.
 * A host name is only refused here when it is a `localhost` name; `checkOutboundUrl` resolves the others.
 */
export function checkOutboundUrlSync(raw: string, policy: OutboundUrlPolicy): URL {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new OutboundUrlError("invalid", `${policy.label} is not a valid URL; write it like https://host.example.com.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundUrlError("scheme", `${policy.label} must start with ${policy.requireHttps ? "https://" : "https:// or http://"}.`);
  }
  // "user:pass@" and even a bare "@" in the authority: the part before it is not where the request goes.
  const authority = /^[a-z][a-z0-9+.-]*:[\\/]*([^/\\?#]*)/i.exec(text)?.[1] ?? "";
  if (url.username || url.password || authority.includes("@")) {
    throw new OutboundUrlError("userinfo", `${policy.label} must not contain a user name or password (user:password@); put credentials in their own field.`);
  }
  // A bare trailing "#" or "?" leaves url.hash / url.search empty, so look at the text itself.
  if (text.includes("#")) throw new OutboundUrlError("fragment", `${policy.label} must not contain a "#" fragment.`);
  if (policy.base && text.includes("?")) {
    throw new OutboundUrlError("query", `${policy.label} must not contain a "?" query string; give the server's base address only.`);
  }
  const host = bareHost(url.hostname);
  const allow = allowlistOf(policy);
  const allowed = allow.hosts.has(host) || addressAllowed(allow, host);
  if (!allowed) {
    if (net.isIP(host) && classifyAddress(host)) throw privateRefusal(policy, host);
    if (isLocalhostName(host) && !(addressAllowed(allow, "127.0.0.1") && addressAllowed(allow, "::1"))) throw privateRefusal(policy, host);
    if (policy.requireHttps && url.protocol === "http:") throw new OutboundUrlError("scheme", `${policy.label} must use https://.`);
  }
  return url;
}

/** `checkOutboundUrlSync` as a message (null: acceptable), for validators that report text. */
export function outboundUrlProblem(raw: string, policy: OutboundUrlPolicy): string | null {
  try {
    checkOutboundUrlSync(raw, policy);
    return null;
  } catch (e) {
    if (e instanceof OutboundUrlError) return e.message;
    throw e;
  }
}

const defaultResolver: Resolver = async (hostname) => {
  const rows = await dnsLookup(hostname, { all: true, verbatim: true });
  return rows.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
};

/**
 * The addresses `hostname` resolves to, each checked: throws `OutboundUrlError` ("private") when any of them is
 * internal and not allowed, ("unresolvable") when the name does not resolve. An allowed host name is resolved
 * but not checked; an IP literal is checked as is.
 */
export async function resolveChecked(hostname: string, policy: OutboundUrlPolicy): Promise<ResolvedAddress[]> {
  const host = bareHost(hostname);
  const allow = allowlistOf(policy);
  if (net.isIP(host)) {
    if (classifyAddress(host) && !addressAllowed(allow, host)) throw privateRefusal(policy, host);
    return [{ address: host, family: net.isIPv6(host) ? 6 : 4 }];
  }
  let addresses: ResolvedAddress[];
  try {
    addresses = await (policy.resolver ?? defaultResolver)(host);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) {
    throw new OutboundUrlError("unresolvable", `${policy.label} names a host that does not resolve${hostShown(policy, host)}; check the name.`);
  }
  if (allow.hosts.has(host)) return addresses;
  const bad = addresses.find((a) => classifyAddress(a.address) && !addressAllowed(allow, a.address));
  if (bad) throw privateRefusal(policy, `${host} resolves to ${bad.address}`);
  return addresses;
}

/** Every check, DNS included. Returns the parsed URL and the addresses it resolved to. */
export async function checkOutboundUrl(raw: string, policy: OutboundUrlPolicy): Promise<{ url: URL; addresses: ResolvedAddress[] }> {
  const url = checkOutboundUrlSync(raw, policy);
  return { url, addresses: await resolveChecked(url.hostname, policy) };
}

/**
 * `path` (with its query) under `base`, keeping the base's own path: `https://h/sky` + `/api/get?x=1` →
 * `https://h/sky/api/get?x=1`. Never string concatenation, and the result must stay under the base.
 */
export function joinBaseUrl(base: URL | string, path: string): URL {
  const b = new URL(typeof base === "string" ? base : base.href);
  b.search = "";
  b.hash = "";
  if (!b.pathname.endsWith("/")) b.pathname = `${b.pathname}/`;
  const joined = new URL(`./${path.replace(/^\/+/, "")}`, b);
  if (joined.origin !== b.origin || !joined.pathname.startsWith(b.pathname)) throw new Error(`path ${JSON.stringify(path)} leaves the base URL`);
  return joined;
}

// ------------------------------------------------------------------------------------------- transport

/** A `lookup` for sockets: resolves, refuses internal addresses (re-checked at connect time), answers the checked ones. */
export function checkedLookup(policy: OutboundUrlPolicy): net.LookupFunction {
  return (hostname, options: LookupOptions, callback) => {
    resolveChecked(hostname, policy).then(
      (addresses) => {
        const family = typeof options.family === "number" ? options.family : 0;
        const usable = family ? addresses.filter((a) => a.family === family) : addresses;
        if (usable.length === 0) {
          const err = Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: "ENOTFOUND" }) as NodeJS.ErrnoException;
          callback(err, "", 0);
          return;
        }
        if (options.all) callback(null, usable.map((a): LookupAddress => ({ address: a.address, family: a.family })));
        else callback(null, usable[0].address, usable[0].family);
      },
      (err: Error) => callback(err as NodeJS.ErrnoException, "", 0),
    );
  };
}

function requestBody(body: unknown): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("guardedFetch: the request body must be a string or bytes");
}

const NULL_BODY_STATUS = new Set([204, 205, 304]);

/**
 * A `fetch` for tenant-controlled URLs over node:http(s): the URL is checked (`checkOutboundUrlSync`), the host
 * is resolved once and every address checked in the socket's `lookup`, so the connection goes to the address
 * that was checked. Redirects are never followed (a 3xx comes back as the answer). One connection per request.
 */
export function guardedFetch(policy: OutboundUrlPolicy): typeof fetch {
  const lookup = checkedLookup(policy);
  const impl = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const raw = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const url = checkOutboundUrlSync(raw, { ...policy, base: false });
    const method = (init.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    const body = requestBody(init.body);
    if (body) headers.set("content-length", String(body.length));
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    return new Promise<Response>((resolve, reject) => {
      const mod = url.protocol === "https:" ? https : http;
      const req = mod.request(url, { method, headers: Object.fromEntries(headers), agent: false, lookup });
      let res: http.IncomingMessage | undefined;
      const onAbort = () => {
        const reason = signal?.reason ?? new DOMException("This operation was aborted", "AbortError");
        req.destroy(reason);
        res?.destroy(reason);
        reject(reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => signal?.removeEventListener("abort", onAbort);
      req.on("error", (err) => {
        done();
        reject(err);
      });
      req.on("response", (incoming) => {
        res = incoming;
        incoming.on("close", done);
        const status = incoming.statusCode ?? 0;
        if (status < 200 || status > 599) {
          incoming.destroy();
          reject(new Error(`unexpected HTTP status ${status}`));
          return;
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(incoming.headers)) {
          if (v === undefined) continue;
          for (const x of Array.isArray(v) ? v : [v]) h.append(k, x);
        }
        const nullBody = method === "HEAD" || NULL_BODY_STATUS.has(status);
        if (nullBody) incoming.resume();
        const stream = nullBody ? null : (Readable.toWeb(incoming) as unknown as ReadableStream<Uint8Array>);
        try {
          resolve(new Response(stream, { status, statusText: incoming.statusMessage ?? "", headers: h }));
        } catch {
          resolve(new Response(stream, { status, headers: h }));
        }
      });
      req.end(body);
    });
  };
  return impl as typeof fetch;
}
