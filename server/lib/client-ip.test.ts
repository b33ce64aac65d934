import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { clientIp, installPeerAddressStamp, stampPeerAddress, trustedProxyCount } from "./client-ip";

/** Headers as a route sees them once the stamp ran for a request from `peer` that carried `xff`. */
function stamped(xff: string | undefined, peer = "198.51.100.7"): Record<string, string> {
  const h: http.IncomingHttpHeaders = xff === undefined ? {} : { "x-forwarded-for": xff };
  stampPeerAddress(h, peer);
  return h as Record<string, string>;
}

describe("clientIp", () => {
  test("no trusted proxies: the socket peer, whatever X-Forwarded-For the client sent", () => {
    assert.equal(clientIp(stamped(undefined), 0), "198.51.100.7");
    for (const forged of ["6.6.6.6", "1.1.1.1, 6.6.6.6", "203.0.113.9, 10.0.0.1, 192.0.2.1"]) {
      assert.equal(clientIp(stamped(forged), 0), "198.51.100.7", forged);
    }
  });

  test("one trusted proxy: the address the proxy appended, never what the client put before it", () => {
    // The client sent "6.6.6.6"; the proxy appended the client's real address; the socket peer is the proxy.
    assert.equal(clientIp(stamped("6.6.6.6, 203.0.113.50", "10.0.0.2"), 1), "203.0.113.50");
    assert.equal(clientIp(stamped("203.0.113.50", "10.0.0.2"), 1), "203.0.113.50");
    assert.equal(clientIp(stamped("6.6.6.6, 203.0.113.50, 10.0.0.3", "10.0.0.2"), 2), "203.0.113.50");
    // Fewer hops than proxies (the outer ones were skipped): the leftmost hop a trusted proxy added.
    assert.equal(clientIp(stamped(undefined, "10.0.0.2"), 1), "10.0.0.2");
  });

  test("a request the stamp did not see: the entry the outermost trusted proxy appended", () => {
    assert.equal(clientIp({ "x-forwarded-for": "6.6.6.6, 203.0.113.50" }, 1), "203.0.113.50");
    assert.equal(clientIp({ "x-forwarded-for": "6.6.6.6, 203.0.113.50, 10.0.0.3" }, 2), "203.0.113.50");
    assert.equal(clientIp({ "x-forwarded-for": "127.0.0.1" }, 0), "127.0.0.1");
    // A stamp mark the client wrote itself is not ours.
    assert.equal(clientIp({ "x-forwarded-for": "6.6.6.6, 203.0.113.50", "x-tuna-peer-stamp": "forged" }, 1), "203.0.113.50");
    assert.equal(clientIp({}, 0), "local");
    assert.equal(clientIp(undefined, 0), "local");
  });

  test("Fetch Headers and Node header records read the same; addresses are normalized", () => {
    const h = stamped("6.6.6.6", "::ffff:192.0.2.4");
    assert.equal(clientIp(new Headers(h), 0), "192.0.2.4");
    assert.equal(clientIp(h, 0), "192.0.2.4");
    assert.equal(clientIp({ "x-forwarded-for": ["6.6.6.6", "192.0.2.5:4431"] }, 0), "192.0.2.5");
    assert.equal(clientIp({ "x-forwarded-for": "[2001:db8::1]:443" }, 0), "2001:db8::1");
    assert.equal(clientIp({ "x-forwarded-for": "2001:db8::2" }, 0), "2001:db8::2");
  });

  test("TUNA_TRUSTED_PROXIES: default 0, a whole number, anything else names the variable", () => {
    const saved = process.env.TUNA_TRUSTED_PROXIES;
    try {
      delete process.env.TUNA_TRUSTED_PROXIES;
      assert.equal(trustedProxyCount(), 0);
      process.env.TUNA_TRUSTED_PROXIES = "1";
      assert.equal(trustedProxyCount(), 1);
      assert.equal(clientIp(stamped("6.6.6.6, 203.0.113.50", "10.0.0.2")), "203.0.113.50");
      for (const bad of ["-1", "one", "1.5"]) {
        process.env.TUNA_TRUSTED_PROXIES = bad;
        assert.throws(() => trustedProxyCount(), /TUNA_TRUSTED_PROXIES/);
      }
    } finally {
      if (saved === undefined) delete process.env.TUNA_TRUSTED_PROXIES;
      else process.env.TUNA_TRUSTED_PROXIES = saved;
    }
  });

  test("installed, the stamp runs before a server's listener: a forged header cannot replace the peer", async () => {
    installPeerAddressStamp();
    installPeerAddressStamp(); // idempotent: one peer entry, not two
    let seen: http.IncomingHttpHeaders = {};
    const server = http.createServer((req, res) => {
      seen = req.headers;
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      await fetch(`http://127.0.0.1:${port}/`, { headers: { "x-forwarded-for": "6.6.6.6", "x-tuna-peer-stamp": "forged" } });
      assert.equal(seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
      assert.equal(clientIp(seen as Record<string, string>, 0), "127.0.0.1");
      assert.equal(clientIp(seen as Record<string, string>, 1), "6.6.6.6"); // as if a trusted proxy had added it
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
