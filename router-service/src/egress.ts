// Connect-time address checks for `publicOnly` backends (a host a tenant chose: SkyServe endpoints). The control
// plane checked the URL when it was published and again before the snapshot, but the name's DNS is the tenant's:
// it can be re-pointed at an internal address afterwards (DNS rebinding). So each new connection to such a
// backend resolves the name here, refuses it when any address is internal, and connects to the very address that
// was checked (Node's `lookup` hook of net/tls `connect`), with no second lookup between check and connect.
// The host name stays the TLS server name and the `Host` header; only the address to dial comes from here.
import dns from "node:dns";
import net from "node:net";
import { type AddressClass, type Allowlist, hostAllowed, refusedAddress } from "./address.js";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address of a name (both families). Tests inject their own. */
export type Resolve = (hostname: string, callback: (err: NodeJS.ErrnoException | null, addresses: ResolvedAddress[]) => void) => void;

/** `dns.lookup` with `all: true`: the system resolver, as Node itself would connect (hosts file included). */
export const systemResolve: Resolve = (hostname, callback) => {
  dns.lookup(hostname, { all: true }, (err, list) => {
    if (err) callback(err, []);
    else callback(null, list.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
  });
};

export type EgressDecision = { ok: true; addresses: ResolvedAddress[] } | { ok: false; address: string; class: AddressClass };

/**
 * Whether a `publicOnly` backend's host may be connected to, given every address it resolved to. Refused when
 * *any* address is internal and not allowed, as the control plane decides at publish time: a name that mixes
 * public and internal addresses is what a rebinding attack looks like, and Node may dial any of the addresses
 * it is given (happy eyeballs), so dropping the bad ones would only hide the attack. A host name on the
 * allowlist is allowed whatever it resolves to (the operator vouched for the name).
 */
export function decideEgress(host: string, addresses: readonly ResolvedAddress[], allow: Allowlist): EgressDecision {
  if (!hostAllowed(allow, host)) {
    for (const a of addresses) {
      const cls = refusedAddress(allow, a.address);
      if (cls !== null) return { ok: false, address: a.address, class: cls };
    }
  }
  return { ok: true, addresses: [...addresses] };
}

/** A connection refused because its host resolved to an internal address. */
export class EgressRefusedError extends Error {
  readonly code = "ERR_TUNA_EGRESS_REFUSED";
  constructor(
    readonly host: string,
    readonly address: string,
    readonly addressClass: AddressClass,
  ) {
    super(host === address ? `${address} is a ${addressClass} address` : `${host} resolves to ${address}, a ${addressClass} address`);
    this.name = "EgressRefusedError";
  }
}

/** What a guard reports: each refusal, and each connection it allowed. */
export interface EgressEvents {
  refused(err: EgressRefusedError): void;
  allowed(host: string): void;
}

export interface EgressGuard {
  /** For `net.connect` / `tls.connect` `{ lookup }`: resolves, checks every address, answers only checked ones. */
  lookup: net.LookupFunction;
  /** A literal IP host, which Node connects to without calling `lookup`: the error to fail with, or null. */
  checkLiteral(address: string): EgressRefusedError | null;
}

export function egressGuard(allow: Allowlist, events: EgressEvents, resolve: Resolve = systemResolve): EgressGuard {
  return {
    lookup(hostname, options, callback) {
      resolve(hostname, (err, addresses) => {
        if (err || addresses.length === 0) {
          const e = err ?? Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" });
          if (options.all) callback(e, []);
          else callback(e, "", 0);
          return;
        }
        const d = decideEgress(hostname, addresses, allow);
        if (!d.ok) {
          const refused = new EgressRefusedError(hostname, d.address, d.class);
          events.refused(refused);
          if (options.all) callback(refused, []);
          else callback(refused, "", 0);
          return;
        }
        const family = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = family ? d.addresses.filter((a) => a.family === family) : d.addresses;
        if (usable.length === 0) {
          const e = Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: "ENOTFOUND" });
          if (options.all) callback(e, []);
          else callback(e, "", 0);
          return;
        }
        events.allowed(hostname);
        if (options.all) callback(null, usable.map((a) => ({ address: a.address, family: a.family })));
        else callback(null, usable[0].address, usable[0].family);
      });
    },
    checkLiteral(address) {
      const d = decideEgress(address, [{ address, family: net.isIPv6(address) ? 6 : 4 }], allow);
      if (d.ok) {
        events.allowed(address);
        return null;
      }
      const refused = new EgressRefusedError(address, d.address, d.class);
      events.refused(refused);
      return refused;
    },
  };
}
