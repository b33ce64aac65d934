import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress, LookupOptions } from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { Readable } from "node:stream";

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
 */

export const ALLOW_PRIVATE_URLS_ENV = "TUNA_ALLOW_PRIVATE_URLS";

export type AddressClass = "loopback" | "private" | "link-local" | "unspecified" | "shared (CGNAT)" | "multicast" | "reserved";

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

// ------------------------------------------------------------------------------------------- addresses

function parseIPv4(s: string): number[] | null {
  if (!net.isIPv4(s)) return null;
  return s.split(".").map(Number);
}

/** The 8 groups of an IPv6 address (zone id dropped, embedded dotted quad folded into two groups). */
function parseIPv6(input: string): number[] | null {
  let s = input.split("%")[0];
  if (!net.isIPv6(s)) return null;
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = parseIPv4(tail);
    if (!v4) return null;
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const r = rest === undefined ? [] : rest ? rest.split(":") : [];
  const fill = rest === undefined ? 0 : 8 - h.length - r.length;
  const groups = [...h, ...Array<string>(Math.max(0, fill)).fill("0"), ...r].map((g) => Number.parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

function classifyV4(o: number[]): AddressClass | null {
  const [a, b, c] = o;
  if (a === 0) return "unspecified";
  if (a === 10) return "private";
  if (a === 100 && b >= 64 && b <= 127) return "shared (CGNAT)";
  if (a === 127) return "loopback";
  if (a === 169 && b === 254) return "link-local";
  if (a === 172 && b >= 16 && b <= 31) return "private";
  if (a === 192 && b === 0 && c === 0) return "reserved";
  if (a === 192 && b === 168) return "private";
  if (a === 198 && (b === 18 || b === 19)) return "reserved";
  if (a >= 224 && a <= 239) return "multicast";
  if (a >= 240) return "reserved";
  return null;
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4), if any. */
function embeddedV4(g: number[]): number[] | null {
  const quad = (hi: number, lo: number) => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && g[5] === 0xffff) return quad(g[6], g[7]); // ::ffff:a.b.c.d
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return quad(g[6], g[7]); // ::ffff:0:a.b.c.d
  if (zero(0, 6) && !(g[6] === 0 && g[7] <= 1)) return quad(g[6], g[7]); // ::a.b.c.d (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return quad(g[6], g[7]); // 64:ff9b::/96 (NAT64)
  if (g[0] === 0x2002) return quad(g[1], g[2]); // 2002::/16 (6to4)
  return null;
}

function classifyV6(g: number[]): AddressClass | null {
  if (g.every((x) => x === 0)) return "unspecified";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback";
  const v4 = embeddedV4(g);
  if (v4) return classifyV4(v4);
  if ((g[0] & 0xfe00) === 0xfc00) return "private"; // fc00::/7 unique local
  if ((g[0] & 0xffc0) === 0xfe80) return "link-local"; // fe80::/10
  if ((g[0] & 0xffc0) === 0xfec0) return "private"; // fec0::/10 site-local (deprecated)
  if ((g[0] & 0xff00) === 0xff00) return "multicast"; // ff00::/8
  return null;
}

/** Strips the brackets of a URL's IPv6 host and a trailing dot. */
function bareHost(hostname: string): string {
  const h = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  return h.replace(/\.$/, "").toLowerCase();
}

/** Why an address must not be contacted (`null`: a public address). Anything that is not an IP literal: null. */
export function classifyAddress(address: string): AddressClass | null {
  const a = bareHost(address);
  const v4 = parseIPv4(a);
  if (v4) return classifyV4(v4);
  const v6 = parseIPv6(a);
  return v6 ? classifyV6(v6) : null;
}

// ------------------------------------------------------------------------------------------- allowlist

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

interface Allowlist {
  hosts: Set<string>;
  cidrs: Cidr[];
}

/** An address as a number of its family; IPv4-mapped IPv6 counts as IPv4, so one entry covers both forms. */
function addressValue(address: string): { family: 4 | 6; bits: bigint } | null {
  const a = bareHost(address);
  const v4 = parseIPv4(a);
  if (v4) return { family: 4, bits: v4.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
  const g = parseIPv6(a);
  if (!g) return null;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return { family: 4, bits: (BigInt(g[6]) << 16n) | BigInt(g[7]) };
  return { family: 6, bits: g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n) };
}

const warnedEntries = new Set<string>();

function parseAllowlist(raw: string | undefined): Allowlist {
  const out: Allowlist = { hosts: new Set(), cidrs: [] };
  for (const entry of (raw ?? "").split(",").map((e) => e.trim().toLowerCase()).filter(Boolean)) {
    const [addr, prefixText, extra] = entry.split("/");
    const value = addressValue(addr);
    if (value) {
      const width = value.family === 4 ? 32 : 128;
      // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) counts in IPv4 bits.
      const mappedShift = value.family === 4 && !net.isIPv4(bareHost(addr)) ? 96 : 0;
      const prefix = prefixText === undefined ? width : Number(prefixText) - mappedShift;
      if (extra === undefined && Number.isInteger(prefix) && prefix >= 0 && prefix <= width && (prefixText === undefined || /^\d+$/.test(prefixText))) {
        out.cidrs.push({ family: value.family, bits: value.bits, prefix });
        continue;
      }
    } else if (prefixText === undefined && /^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$/.test(entry)) {
      out.hosts.add(entry.replace(/\.$/, ""));
      continue;
    }
    if (!warnedEntries.has(entry)) {
      warnedEntries.add(entry);
      console.warn(`[outbound-url] ${ALLOW_PRIVATE_URLS_ENV}: ignoring "${entry}" (not a host name, address or CIDR)`);
    }
  }
  return out;
}

function allowlistOf(policy: OutboundUrlPolicy): Allowlist {
  return parseAllowlist(policy.allow ?? process.env[ALLOW_PRIVATE_URLS_ENV]);
}

function addressAllowed(list: Allowlist, address: string): boolean {
  const v = addressValue(address);
  if (!v) return false;
  return list.cidrs.some((c) => {
    if (c.family !== v.family) return false;
    const width = c.family === 4 ? 32n : 128n;
    const shift = width - BigInt(c.prefix);
    return v.bits >> shift === c.bits >> shift;
  });
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

function isLocalhostName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
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
