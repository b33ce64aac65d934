import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  ALLOW_PRIVATE_URLS_ENV,
  checkOutboundUrl,
  checkOutboundUrlSync,
  classifyAddress,
  guardedFetch,
  joinBaseUrl,
  OUTBOUND_POLICIES,
  OutboundUrlError,
  type OutboundUrlPolicy,
  outboundUrlProblem,
  type Resolver,
} from "./outbound-url";

const API = OUTBOUND_POLICIES.skypilotApiServer;
const HOOK = OUTBOUND_POLICIES.webhook;

/** The problem `checkOutboundUrlSync` reports ("ok" when the URL passes). */
function syncProblem(url: string, policy: OutboundUrlPolicy = API): string {
  try {
    checkOutboundUrlSync(url, policy);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof OutboundUrlError, `not an OutboundUrlError: ${String(e)}`);
    return e.problem;
  }
}

async function asyncProblem(url: string, policy: OutboundUrlPolicy): Promise<string> {
  try {
    await checkOutboundUrl(url, policy);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof OutboundUrlError, `not an OutboundUrlError: ${String(e)}`);
    return e.problem;
  }
}

/** A resolver answering from a table (names missing from it do not resolve). */
function table(entries: Record<string, string[]>): Resolver {
  return async (host) => (entries[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
}

// Every test starts without an operator allowlist and sets the one it needs.
const savedEnv = process.env[ALLOW_PRIVATE_URLS_ENV];
beforeEach(() => {
  delete process.env[ALLOW_PRIVATE_URLS_ENV];
});
after(() => {
  if (savedEnv !== undefined) process.env[ALLOW_PRIVATE_URLS_ENV] = savedEnv;
});

describe("address classes", () => {
  test("every internal IPv4 class is named; public addresses are not", () => {
    const cases: Array<[string, string | null]> = [
      ["127.0.0.1", "loopback"],
      ["127.255.255.254", "loopback"],
      ["10.0.0.5", "private"],
      ["172.16.0.1", "private"],
      ["172.31.255.255", "private"],
      ["192.168.1.1", "private"],
      ["169.254.169.254", "link-local"],
      ["0.0.0.0", "unspecified"],
      ["0.1.2.3", "unspecified"],
      ["100.64.0.1", "shared (CGNAT)"],
      ["100.127.255.255", "shared (CGNAT)"],
      ["224.0.0.1", "multicast"],
      ["239.255.255.250", "multicast"],
      ["255.255.255.255", "reserved"],
      ["240.0.0.1", "reserved"],
      ["192.0.0.170", "reserved"],
      ["198.18.0.1", "reserved"],
      ["8.8.8.8", null],
      ["172.32.0.1", null],
      ["100.128.0.1", null],
      ["34.1.2.3", null],
      ["not-an-ip", null],
    ];
    for (const [ip, cls] of cases) assert.equal(classifyAddress(ip), cls, ip);
  });

  test("IPv6: loopback, unspecified, unique local, link-local, multicast, and IPv4 carried in IPv6 forms", () => {
    const cases: Array<[string, string | null]> = [
      ["::1", "loopback"],
      ["[::1]", "loopback"],
      ["0:0:0:0:0:0:0:1", "loopback"],
      ["::", "unspecified"],
      ["fc00::1", "private"],
      ["fd00:ec2::254", "private"], // AWS's IPv6 instance metadata
      ["fec0::1", "private"],
      ["fe80::1", "link-local"],
      ["fe80::1%eth0", "link-local"],
      ["ff02::1", "multicast"],
      ["::ffff:127.0.0.1", "loopback"],
      ["::ffff:7f00:1", "loopback"],
      ["::ffff:a9fe:a9fe", "link-local"],
      ["::ffff:0:10.0.0.1", "private"],
      ["::127.0.0.1", "loopback"],
      ["64:ff9b::a00:1", "private"], // NAT64 of 10.0.0.1
      ["2002:c0a8:101::1", "private"], // 6to4 of 192.168.1.1
      ["::ffff:8.8.8.8", null],
      ["2606:4700:4700::1111", null],
    ];
    for (const [ip, cls] of cases) assert.equal(classifyAddress(ip), cls, ip);
  });
});

describe("URL checks without DNS", () => {
  test("numeric IPv4 notations the URL parser normalises are caught (decimal, hex, octal, short forms)", () => {
    for (const url of [
      "http://2130706433/",
      "http://0x7f.1/",
      "http://0x7f000001/",
      "http://017700000001/",
      "http://0177.0.0.1/",
      "http://127.1/",
      "http://0/",
      "http://0x7f.0.0.1:46580/",
      "http://169.254.169.254/latest/meta-data/",
      "http://2852039166/", // 169.254.169.254
      "http://10.0.0.5:46580",
      "http://100.64.1.1",
      "http://224.0.0.1",
      "http://127.0.0.1./",
    ]) {
      assert.equal(syncProblem(url), "private", url);
    }
    assert.equal(new URL("http://0x7f.1/").hostname, "127.0.0.1", "the WHATWG parser normalises before the check");
  });

  test("IPv6 literals, including IPv4-mapped forms, are caught", () => {
    for (const url of ["http://[::1]:46580/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://[::]/", "http://[64:ff9b::a9fe:a9fe]/"]) {
      assert.equal(syncProblem(url), "private", url);
    }
  });

  test("localhost names are loopback", () => {
    for (const url of ["http://localhost:46580", "http://LOCALHOST/", "http://api.localhost/", "http://localhost./"]) assert.equal(syncProblem(url), "private", url);
  });

  test("public addresses and host names pass the syntax check", () => {
    for (const url of ["https://sky.example.com", "https://sky.example.com/prefix/", "http://34.1.2.3:46580", "https://[2606:4700:4700::1111]/"]) assert.equal(syncProblem(url), "ok", url);
  });

  test("only http and https; no credentials; no fragment (even a bare '#'); base URLs take no query (even a bare '?')", () => {
    assert.equal(syncProblem("ftp://sky.example.com"), "scheme");
    assert.equal(syncProblem("file:///etc/passwd"), "scheme");
    assert.equal(syncProblem("gopher://sky.example.com:70/"), "scheme");
    assert.equal(syncProblem("not a url"), "invalid");
    assert.equal(syncProblem("https://user:pass@sky.example.com"), "userinfo");
    assert.equal(syncProblem("https://user@sky.example.com"), "userinfo");
    assert.equal(syncProblem("https://@sky.example.com"), "userinfo");
    assert.equal(syncProblem("https://sky.example.com#"), "fragment");
    assert.equal(syncProblem("https://sky.example.com/internal/admin/keys?all=1#"), "fragment");
    assert.equal(syncProblem("https://sky.example.com/internal/admin/keys?all=1"), "query");
    assert.equal(syncProblem("https://sky.example.com/x#frag"), "fragment");
    assert.equal(syncProblem("https://sky.example.com/?"), "query");
    assert.equal(syncProblem("https://sky.example.com/?a=1"), "query");
    // A webhook may carry a query (some services put a token there); never a fragment.
    assert.equal(syncProblem("https://hooks.example.com/x?token=1", HOOK), "ok");
    assert.equal(syncProblem("https://hooks.example.com/x#", HOOK), "fragment");
  });

  test("webhooks need https unless the operator allowed the host; their messages never name the host", () => {
    assert.equal(syncProblem("http://hooks.example.com/x", HOOK), "scheme");
    assert.equal(syncProblem("https://hooks.slack.com/services/T/B/x", HOOK), "ok");
    assert.equal(syncProblem("http://127.0.0.1:9/hook", HOOK), "private");
    const msg = outboundUrlProblem("https://10.9.8.7/hook/secret-path", HOOK) ?? "";
    assert.match(msg, /^The webhook URL must not point at a private or loopback address\./);
    assert.ok(!msg.includes("10.9.8.7") && !msg.includes("secret-path"), msg);
    process.env[ALLOW_PRIVATE_URLS_ENV] = "127.0.0.1";
    assert.equal(syncProblem("http://127.0.0.1:9/hook", HOOK), "ok");
  });

  test("messages are sentences a user can act on, naming the address (never the path, query or credentials)", () => {
    assert.equal(
      outboundUrlProblem("http://10.0.0.5:46580/some/path", API),
      "The SkyPilot API server URL must not point at a private or loopback address (10.0.0.5). Use an address reachable from the internet, or ask the operator of this Tuna installation to allow it in TUNA_ALLOW_PRIVATE_URLS.",
    );
    assert.equal(outboundUrlProblem("https://sky.example.com", API), null);
    const userinfo = outboundUrlProblem("https://admin:hunter2@sky.example.com", API) ?? "";
    assert.ok(!userinfo.includes("hunter2"));
  });
});

describe("operator allowlist (TUNA_ALLOW_PRIVATE_URLS)", () => {
  test("single addresses and CIDRs, IPv4 and IPv6; an IPv4 entry also covers its IPv4-mapped IPv6 form", () => {
    process.env[ALLOW_PRIVATE_URLS_ENV] = " 10.0.0.0/8 , 192.168.1.7, fd00:ec2::/32 ";
    assert.equal(syncProblem("http://10.1.2.3:46580"), "ok");
    assert.equal(syncProblem("http://[::ffff:10.1.2.3]/"), "ok");
    assert.equal(syncProblem("http://192.168.1.7/"), "ok");
    assert.equal(syncProblem("http://192.168.1.8/"), "private");
    assert.equal(syncProblem("http://[fd00:ec2::254]/"), "ok");
    assert.equal(syncProblem("http://[fd00:ec3::254]/"), "private");
    assert.equal(syncProblem("http://127.0.0.1/"), "private");
    assert.equal(syncProblem("http://169.254.169.254/"), "private");
  });

  test("host names are allowed by exact (case-insensitive) name, whatever they resolve to; bad entries are ignored", async () => {
    process.env[ALLOW_PRIVATE_URLS_ENV] = "Sky.Corp.Internal,not/a/cidr,10.0.0.0/99";
    const resolver = table({ "sky.corp.internal": ["10.0.0.5"], "other.corp.internal": ["10.0.0.6"] });
    assert.equal(await asyncProblem("http://sky.corp.internal:46580", { ...API, resolver }), "ok");
    assert.equal(await asyncProblem("http://other.corp.internal:46580", { ...API, resolver }), "private");
    assert.equal(syncProblem("http://10.0.0.5/"), "private", "a malformed CIDR allows nothing");
  });

  test("the policy's own allowlist replaces the environment's", () => {
    process.env[ALLOW_PRIVATE_URLS_ENV] = "10.0.0.5";
    assert.equal(syncProblem("http://10.0.0.5/", { ...API, allow: "" }), "private");
    assert.equal(syncProblem("http://10.0.0.6/", { ...API, allow: "10.0.0.6" }), "ok");
  });
});

describe("URL checks with DNS", () => {
  test("a name resolving to a private address is refused, with the name and the address in the message", async () => {
    const resolver = table({ "sky.attacker.example": ["10.0.0.5"] });
    await assert.rejects(checkOutboundUrl("https://sky.attacker.example", { ...API, resolver }), (e: OutboundUrlError) => {
      assert.equal(e.problem, "private");
      assert.match(e.message, /^The SkyPilot API server URL must not point at a private or loopback address \(sky\.attacker\.example resolves to 10\.0\.0\.5\)\./);
      return true;
    });
  });

  test("one internal address among public ones is enough to refuse (IPv4 and IPv6 answers alike)", async () => {
    const resolver = table({ mixed: ["34.1.2.3", "127.0.0.1"], six: ["2606:4700:4700::1111", "::ffff:169.254.169.254"], public: ["34.1.2.3", "2606:4700:4700::1111"] });
    assert.equal(await asyncProblem("https://mixed/", { ...API, resolver }), "private");
    assert.equal(await asyncProblem("https://six/", { ...API, resolver }), "private");
    const ok = await checkOutboundUrl("https://public/", { ...API, resolver });
    assert.deepEqual(ok.addresses.map((a) => a.address), ["34.1.2.3", "2606:4700:4700::1111"]);
  });

  test("a name that does not resolve is 'unresolvable', not a pass", async () => {
    assert.equal(await asyncProblem("https://nowhere.example/", { ...API, resolver: table({}) }), "unresolvable");
    const failing: Resolver = async () => {
      throw Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" });
    };
    assert.equal(await asyncProblem("https://nowhere.example/", { ...API, resolver: failing }), "unresolvable");
  });

  test("the system resolver: localhost is refused; allowing 127.0.0.1 alone does not allow ::1", async () => {
    assert.equal(await asyncProblem("http://localhost:46580", API), "private");
    process.env[ALLOW_PRIVATE_URLS_ENV] = "localhost";
    assert.equal(await asyncProblem("http://localhost:46580", API), "ok");
  });
});

describe("joinBaseUrl", () => {
  test("keeps the base's path and never lets the path leave the base", () => {
    assert.equal(joinBaseUrl("https://h.example/sky", "/api/get?request_id=a%2Fb").href, "https://h.example/sky/api/get?request_id=a%2Fb");
    assert.equal(joinBaseUrl("https://h.example/sky/", "api/health").href, "https://h.example/sky/api/health");
    assert.equal(joinBaseUrl("https://h.example", "/api/health").href, "https://h.example/api/health");
    // Whatever query or fragment a base carries is dropped, never allowed to swallow the path.
    assert.equal(joinBaseUrl("https://h.example/x?y=1#", "/api/health").href, "https://h.example/x/api/health");
    assert.throws(() => joinBaseUrl("https://h.example/sky", "/../admin"), /leaves the base URL/);
    assert.equal(joinBaseUrl("https://h.example/sky", "//evil.example/x").href, "https://h.example/sky/evil.example/x");
  });
});

describe("guardedFetch", () => {
  let server: Server;
  let port = 0;
  const seen: Array<{ url: string; host: string | undefined }> = [];
  let handler: (req: IncomingMessage, res: import("node:http").ServerResponse) => void = (_req, res) => res.end("ok");
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? "", host: req.headers.host });
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    seen.length = 0;
    handler = (_req, res) => res.end("ok");
  });

  test("refuses a loopback target without connecting", async () => {
    const f = guardedFetch(API);
    await assert.rejects(f(`http://127.0.0.1:${port}/internal`), (e: OutboundUrlError) => e.problem === "private");
    await assert.rejects(f(`http://localhost:${port}/internal`), (e: OutboundUrlError) => e.problem === "private");
    assert.deepEqual(seen, []);
  });

  test("the connection goes to the address checked at connect time: a name that resolves internally is refused there", async () => {
    // What a rebinding name looks like once it answers with an internal address: refused in the socket's lookup.
    const f = guardedFetch({ ...API, resolver: table({ "rebind.example": ["127.0.0.1"] }) });
    await assert.rejects(f(`http://rebind.example:${port}/internal`), (e: OutboundUrlError) => e.problem === "private");
    assert.deepEqual(seen, []);
    // Allowed: the request reaches the resolved address, with the name as Host.
    const allowed = guardedFetch({ ...API, allow: "127.0.0.1", resolver: table({ "sky.test": ["127.0.0.1"] }) });
    const res = await allowed(`http://sky.test:${port}/api/health`, { method: "POST", body: JSON.stringify({ a: 1 }), headers: { "content-type": "application/json" } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
    assert.deepEqual(seen, [{ url: "/api/health", host: `sky.test:${port}` }]);
  });

  test("redirects are returned, never followed", async () => {
    handler = (req, res) => {
      if (req.url === "/start") res.writeHead(302, { location: "/internal/admin" }).end();
      else res.end("followed");
    };
    const f = guardedFetch({ ...API, allow: "127.0.0.1" });
    const res = await f(`http://127.0.0.1:${port}/start`);
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "/internal/admin");
    assert.deepEqual(seen.map((s) => s.url), ["/start"]);
  });

  test("an AbortSignal timeout ends a request that never answers", async () => {
    handler = () => {};
    const f = guardedFetch({ ...API, allow: "127.0.0.1" });
    await assert.rejects(f(`http://127.0.0.1:${port}/stall`, { signal: AbortSignal.timeout(100) }), (e: Error) => e.name === "TimeoutError");
  });

  test("204 has no body; status and headers come through", async () => {
    handler = (_req, res) => res.writeHead(204, { "x-skypilot-request-id": "abc" }).end();
    const res = await guardedFetch({ ...API, allow: "127.0.0.1" })(`http://127.0.0.1:${port}/x`);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("x-skypilot-request-id"), "abc");
    assert.equal(res.body, null);
  });
});
