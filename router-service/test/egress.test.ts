// Connect-time checks of publicOnly backends (src/egress.ts) and the shared address rules (src/address.ts): the
// decision on a resolved address set, the `lookup` hook the upstream pool connects through, and the pool itself on
// real sockets (plain and TLS). Router-level behaviour (failover, metrics, logs, probes) is in publiconly.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { LookupOptions } from "node:dns";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import type { TLSSocket } from "node:tls";
import { addressAllowed, classifyAddress, parseAllowlist } from "../src/address.js";
import { decideEgress, EgressRefusedError, egressGuard, type Resolve, type ResolvedAddress } from "../src/egress.js";
import { requestHead, UpstreamPool } from "../src/upstream.js";

const NONE = parseAllowlist(undefined);
const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });
const PUBLIC = [v4("93.184.216.34"), v6("2606:4700::1111")];

describe("address rules shared with the control plane", () => {
  test("classes and allowlist: the same answers server/lib/outbound-url.ts gives", () => {
    for (const [ip, cls] of [
      ["127.0.0.1", "loopback"], ["::1", "loopback"], ["::ffff:7f00:1", "loopback"], ["[::ffff:127.0.0.1]", "loopback"], ["10.1.2.3", "private"],
      ["169.254.169.254", "link-local"], ["100.64.0.1", "shared (CGNAT)"], ["fd00::1", "private"], ["64:ff9b::a00:1", "private"], ["0.0.0.0", "unspecified"],
      ["8.8.8.8", null], ["2606:4700::1111", null], ["lb.example.com", null],
    ] as const)
      assert.equal(classifyAddress(ip), cls, ip);
    const list = parseAllowlist(" 10.1.0.0/16, LB.Internal. ,::ffff:192.168.0.0/112, not a host, 10.0.0.0/33");
    assert.deepEqual([...list.hosts], ["lb.internal"]);
    assert.deepEqual(list.invalid, ["not a host", "10.0.0.0/33"]);
    assert.ok(addressAllowed(list, "10.1.200.3") && addressAllowed(list, "::ffff:10.1.0.9") && addressAllowed(list, "192.168.4.4"));
    assert.ok(!addressAllowed(list, "10.2.0.1") && !addressAllowed(list, "127.0.0.1"));
  });
});

describe("connect-time decision", () => {
  test("any internal address among public ones refuses the host; only public addresses pass", () => {
    assert.deepEqual(decideEgress("lb.example.com", [PUBLIC[0], v4("10.0.0.7"), PUBLIC[1]], NONE), { ok: false, address: "10.0.0.7", class: "private" });
    assert.deepEqual(decideEgress("lb.example.com", [PUBLIC[1], v6("::ffff:169.254.169.254")], NONE), { ok: false, address: "::ffff:169.254.169.254", class: "link-local" });
    assert.deepEqual(decideEgress("lb.example.com", [v4("127.0.0.1")], NONE), { ok: false, address: "127.0.0.1", class: "loopback" });
    assert.deepEqual(decideEgress("lb.example.com", PUBLIC, NONE), { ok: true, addresses: PUBLIC });
  });

  test("the operator's allowlist: addresses / CIDRs allow those addresses only; a host name allows whatever it resolves to", () => {
    const cidr = parseAllowlist("10.0.0.0/8");
    assert.deepEqual(decideEgress("lb.example.com", [PUBLIC[0], v4("10.0.0.7")], cidr), { ok: true, addresses: [PUBLIC[0], v4("10.0.0.7")] });
    assert.deepEqual(decideEgress("lb.example.com", [v4("10.0.0.7"), v4("127.0.0.1")], cidr), { ok: false, address: "127.0.0.1", class: "loopback" });
    const byName = parseAllowlist("sky-lb.corp");
    assert.equal(decideEgress("SKY-LB.corp.", [v4("127.0.0.1")], byName).ok, true);
    assert.equal(decideEgress("other.corp", [v4("10.0.0.7")], byName).ok, false);
  });

  test("the lookup hook: one resolution per connection, refuses a mix, answers only checked addresses", async () => {
    const calls: string[] = [];
    let answer: ResolvedAddress[] | Error = [PUBLIC[0], v4("10.0.0.7"), PUBLIC[1]];
    const resolve: Resolve = (host, cb) => {
      calls.push(host);
      const a = answer;
      setImmediate(() => (a instanceof Error ? cb(Object.assign(a, { code: "ENOTFOUND" }), []) : cb(null, a)));
    };
    const refused: EgressRefusedError[] = [];
    const allowed: string[] = [];
    const g = egressGuard(NONE, { refused: (e) => refused.push(e), allowed: (h) => allowed.push(h) }, resolve);
    const lookup = (options: LookupOptions) =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((r) => g.lookup("lb.example.com", options, (err, address, family) => r({ err, address, family })));

    for (const options of [{ all: true }, {}, { family: 4 }]) {
      const r = await lookup(options);
      assert.ok(r.err instanceof EgressRefusedError, JSON.stringify(options));
      assert.equal(r.err.code, "ERR_TUNA_EGRESS_REFUSED");
      assert.deepEqual([r.err.host, r.err.address, r.err.addressClass], ["lb.example.com", "10.0.0.7", "private"]);
    }
    assert.equal(refused.length, 3);
    assert.equal(allowed.length, 0);

    answer = PUBLIC;
    assert.deepEqual(await lookup({ all: true }), { err: null, address: PUBLIC, family: undefined });
    assert.deepEqual(await lookup({}), { err: null, address: "93.184.216.34", family: 4 });
    assert.deepEqual(await lookup({ family: 6 }), { err: null, address: "2606:4700::1111", family: 6 });
    assert.equal(allowed.length, 3);

    // A name that does not resolve is an ordinary connect error, not a refusal.
    answer = new Error("no such host");
    const r = await lookup({});
    assert.equal(r.err?.code, "ENOTFOUND");
    assert.equal(refused.length, 3);
    assert.deepEqual(calls, Array(7).fill("lb.example.com"), "one resolution per lookup, never cached or repeated");
  });

  test("literal addresses (Node does not call lookup for them) are checked as they are", () => {
    const refused: EgressRefusedError[] = [];
    const strict = egressGuard(NONE, { refused: (e) => refused.push(e), allowed: () => {} });
    for (const [ip, cls] of [["127.0.0.1", "loopback"], ["::ffff:7f00:1", "loopback"], ["169.254.169.254", "link-local"], ["::1", "loopback"], ["10.9.8.7", "private"]]) {
      const e = strict.checkLiteral(ip);
      assert.ok(e instanceof EgressRefusedError, ip);
      assert.equal(e.addressClass, cls, ip);
    }
    assert.equal(strict.checkLiteral("93.184.216.34"), null);
    assert.equal(refused.length, 5);
    const allow = egressGuard(parseAllowlist("127.0.0.1"), { refused: () => assert.fail("refused"), allowed: () => {} });
    assert.equal(allow.checkLiteral("127.0.0.1"), null);
    assert.equal(allow.checkLiteral("::ffff:7f00:1"), null, "an IPv4 entry covers the IPv4-mapped form");
  });
});

// ------------------------------------------------------------------------------------------- pool, real sockets

/** GET through the pool: the status and body, or how it failed. */
function get(pool: UpstreamPool, host: string): Promise<{ status?: number; body?: string; failure?: string }> {
  return new Promise((resolve) => {
    pool.request(requestHead("GET", "/hello", ["host", host]), Buffer.alloc(0), {
      head(x) {
        let body = "";
        x.start({ data: (c) => (body += c), end: () => resolve({ status: x.statusCode, body }), abort: () => resolve({ failure: "abort" }) });
      },
      fail: (failure) => resolve({ failure }),
    });
  });
}

async function server(t: TestContext, secure?: { key: Buffer; cert: Buffer }) {
  const seen = { connections: 0, hosts: [] as string[], servernames: [] as unknown[] };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.hosts.push(String(req.headers.host));
    res.end("hi");
  };
  const srv = secure ? https.createServer(secure, handler) : http.createServer(handler);
  srv.on("connection", () => seen.connections++);
  srv.on("secureConnection", (s: TLSSocket) => seen.servernames.push(s.servername));
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  t.after(() => {
    srv.closeAllConnections();
    srv.close();
  });
  return { port: (srv.address() as net.AddressInfo).port, seen };
}

describe("upstream pool with a guard", () => {
  test("a refused address is never dialled (literal, localhost, IPv4-mapped); the same pool without a guard connects", async (t) => {
    const { port, seen } = await server(t);
    const guard = egressGuard(NONE, { refused: () => {}, allowed: () => {} });
    for (const url of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::ffff:127.0.0.1]:${port}`]) {
      const pool = new UpstreamPool(new URL(url), { connectTimeoutMs: 1000, guard });
      t.after(() => pool.close(true));
      assert.deepEqual(await get(pool, "x"), { failure: "connect" }, url);
      assert.equal(pool.openCount(), 0, url);
    }
    assert.equal(seen.connections, 0, "the backend never saw a connection");
    const open = new UpstreamPool(new URL(`http://127.0.0.1:${port}`), { connectTimeoutMs: 1000 });
    t.after(() => open.close(true));
    assert.deepEqual(await get(open, "x"), { status: 200, body: "hi" });
    assert.equal(seen.connections, 1);
  });

  test("the address the guard checked is the one dialled; the name stays the TLS server name and certificate identity", async (t) => {
    if (spawnSync("openssl", ["version"]).status !== 0) {
      t.skip("openssl is not installed");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "tuna-egress-tls-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A certificate for a name no resolver knows: the handshake only succeeds if the connection went to the
    // guard's address and the name was kept for SNI and verification.
    const gen = spawnSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1",
      "-subj", "/CN=tenant-lb.tuna-test.invalid", "-addext", "subjectAltName=DNS:tenant-lb.tuna-test.invalid",
    ]);
    assert.equal(gen.status, 0, gen.stderr?.toString());
    const cert = readFileSync(join(dir, "c.pem"));
    const { port, seen } = await server(t, { key: readFileSync(join(dir, "k.pem")), cert });
    const name = "tenant-lb.tuna-test.invalid";
    let answer = [v4("127.0.0.1")];
    const resolved: string[] = [];
    const resolve: Resolve = (host, cb) => {
      resolved.push(host);
      setImmediate(() => cb(null, answer));
    };

    // Without an allowlist the loopback answer is refused: no TCP connection at all.
    const strict = new UpstreamPool(new URL(`https://${name}:${port}`), { connectTimeoutMs: 1000, tls: { ca: cert }, guard: egressGuard(NONE, { refused: () => {}, allowed: () => {} }, resolve) });
    t.after(() => strict.close(true));
    assert.deepEqual(await get(strict, name), { failure: "connect" });
    assert.equal(seen.connections, 0);

    // Allowed (standing in for a public address): connects to 127.0.0.1, SNI and certificate check use the name,
    // and the keep-alive connection is reused without resolving again.
    const allowed = new UpstreamPool(new URL(`https://${name}:${port}`), {
      connectTimeoutMs: 1000, tls: { ca: cert }, guard: egressGuard(parseAllowlist("127.0.0.1"), { refused: () => {}, allowed: () => {} }, resolve),
    });
    t.after(() => allowed.close(true));
    assert.deepEqual(await get(allowed, name), { status: 200, body: "hi" });
    assert.deepEqual(await get(allowed, name), { status: 200, body: "hi" });
    assert.deepEqual(seen.servernames, [name]);
    assert.equal(seen.connections, 1);
    assert.equal(resolved.length, 2, "one resolution for the refused pool, one for the new connection; none for the reused one");

    // Rebinding: the name now also resolves to the metadata address. The next new connection is refused.
    answer = [v4("127.0.0.1"), v4("169.254.169.254")];
    allowed.close(true);
    const again = new UpstreamPool(new URL(`https://${name}:${port}`), {
      connectTimeoutMs: 1000, tls: { ca: cert }, guard: egressGuard(parseAllowlist("127.0.0.1"), { refused: () => {}, allowed: () => {} }, resolve),
    });
    t.after(() => again.close(true));
    assert.deepEqual(await get(again, name), { failure: "connect" });
    assert.equal(seen.connections, 1);
  });
});
