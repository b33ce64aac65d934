// Which IP addresses are internal (loopback, private, link-local, CGNAT, multicast, reserved), and the operator's
// allowlist of exceptions (`TUNA_ALLOW_PRIVATE_URLS`). One implementation for both sides: the control plane
// checks tenant-supplied URLs with it (server/lib/outbound-url.ts imports `@tuna/router-service/address`), and
// the router checks the addresses it actually connects to for `publicOnly` backends (src/egress.ts).
// Pure functions over strings; `node:net` only for its IP-literal validators.
import net from "node:net";

export const ALLOW_PRIVATE_URLS_ENV = "TUNA_ALLOW_PRIVATE_URLS";

export type AddressClass = "loopback" | "private" | "link-local" | "unspecified" | "shared (CGNAT)" | "multicast" | "reserved";

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

/** A URL's host as compared here: brackets of an IPv6 host and a trailing dot stripped, lower case. */
export function bareHost(hostname: string): string {
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

/** `localhost` and its subdomains, which resolvers answer with loopback without asking DNS. */
export function isLocalhostName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}

// ------------------------------------------------------------------------------------------- allowlist

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

/** A parsed `TUNA_ALLOW_PRIVATE_URLS`. */
export interface Allowlist {
  /** Host names allowed as such (exact, lower case, no trailing dot): whatever they resolve to. */
  hosts: Set<string>;
  cidrs: Cidr[];
  /** Entries that are neither a host name, an address nor a CIDR (ignored; the caller says so). */
  invalid: string[];
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

/**
 * Comma-separated host names (exact, case-insensitive) and/or addresses / CIDRs (`10.1.0.0/16`, `fd00::/8`,
 * `127.0.0.1`, `::ffff:10.0.0.0/104`). Anything else lands in `invalid`.
 */
export function parseAllowlist(raw: string | undefined): Allowlist {
  const out: Allowlist = { hosts: new Set(), cidrs: [], invalid: [] };
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
    out.invalid.push(entry);
  }
  return out;
}

/** Whether `address` (an IP literal) lies in one of the allowlist's addresses / CIDRs. */
export function addressAllowed(list: Allowlist, address: string): boolean {
  const v = addressValue(address);
  if (!v) return false;
  return list.cidrs.some((c) => {
    if (c.family !== v.family) return false;
    const width = c.family === 4 ? 32n : 128n;
    const shift = width - BigInt(c.prefix);
    return v.bits >> shift === c.bits >> shift;
  });
}

/** Whether the host name itself is on the allowlist (then whatever it resolves to is allowed). */
export function hostAllowed(list: Allowlist, hostname: string): boolean {
  return list.hosts.has(bareHost(hostname));
}

/** Why `address` must not be contacted under `list`: its class, or null (public, or allowed by the operator). */
export function refusedAddress(list: Allowlist, address: string): AddressClass | null {
  const cls = classifyAddress(address);
  return cls !== null && !addressAllowed(list, address) ? cls : null;
}
