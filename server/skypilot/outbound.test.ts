import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { ProviderError } from "../providers/base/errors";
import { SkyPilotClient } from "./client";

/**
 * The SkyPilot API server URL is tenant-supplied: the client must not let it reach internal services, and must
 * not repeat what a server that is not a SkyPilot API server answers (the auditor's SSRF finding).
 */

const ENV = "TUNA_ALLOW_PRIVATE_URLS";
const LEAK = "INTERNAL-ONLY: db_password=hunter2";
const TOKEN = "sky_outbound_test_token_0123456789";

let server: Server;
let base = "";
const seen: string[] = [];
let handler: (req: IncomingMessage, res: ServerResponse) => void;

before(async () => {
  server = createServer((req, res) => {
    seen.push(req.url ?? "");
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen.length = 0;
  // This loopback stand-in is allowed the way an operator would allow a server on their own network.
  process.env[ENV] = "127.0.0.1";
  handler = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "healthy", api_version: "33" }));
});

const client = (baseUrl: string) => new SkyPilotClient({ baseUrl, token: TOKEN, sleep: async () => {}, timeoutMs: 5_000 });

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProviderError, `not a ProviderError: ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded");
}

describe("SkyPilot client: the API server URL", () => {
  test("a '#' or '?' in the base URL cannot choose the path: refused before any request; a base path is kept", async () => {
    for (const url of [`${base}/internal/admin/keys?all=1#`, `${base}/internal/admin/keys#`, `${base}/internal/admin/keys?all=1&x=`, `${base}?`]) {
      const err = await failure(client(url).health());
      assert.equal(err.code, "validation", url);
      assert.match(err.message, /The SkyPilot API server URL must not contain a/);
    }
    assert.deepEqual(seen, [], "the loopback server saw a request");
    await client(`${base}/sky`).health();
    assert.deepEqual(seen, ["/sky/api/health"]);
  });

  test("a loopback or private server is refused unless the operator allowed it, and nothing is sent", async () => {
    delete process.env[ENV];
    const err = await failure(client(base).health());
    assert.equal(err.code, "validation");
    assert.match(err.message, /must not point at a private or loopback address \(127\.0\.0\.1\)/);
    for (const url of [`http://localhost:${new URL(base).port}`, `http://2130706433:${new URL(base).port}`, `http://[::ffff:127.0.0.1]:${new URL(base).port}`]) {
      assert.equal((await failure(client(url).health())).code, "validation", url);
    }
    assert.deepEqual(seen, []);
    process.env[ENV] = "127.0.0.1";
    assert.equal((await client(base).health()).status, "healthy");
  });

  test("redirects are not followed", async () => {
    handler = (req, res) => {
      if (req.url === "/api/health") res.writeHead(302, { location: "/internal/admin/keys?all=1" }).end();
      else res.writeHead(403).end(LEAK);
    };
    const err = await failure(client(base).health());
    assert.match(err.message, /GET \/api\/health failed \(HTTP 302\)/);
    assert.deepEqual(seen, ["/api/health"]);
  });
});

describe("SkyPilot client: answers are not echoed", () => {
  test("a non-2xx HTML or text body is not repeated; the status is", async () => {
    handler = (_req, res) => res.writeHead(403, { "content-type": "text/html" }).end(`<html><body>${LEAK}</body></html>`);
    const err = await failure(client(base).health());
    assert.equal(err.status, 403);
    assert.equal(err.code, "forbidden");
    assert.equal(err.message, "skypilot: GET /api/health failed (HTTP 403) Forbidden");
    handler = (_req, res) => res.writeHead(500, { "content-type": "text/plain" }).end(LEAK);
    assert.ok(!(await failure(client(base).health())).message.includes("hunter2"));
  });

  test("JSON that is not the SkyPilot error shape is not repeated either", async () => {
    for (const body of [{ secret: LEAK }, [LEAK], LEAK, { detail: 42, leak: LEAK }, { error: "other", message: LEAK }]) {
      handler = (_req, res) => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify(body));
      const err = await failure(client(base).health());
      assert.ok(!err.message.includes("hunter2"), err.message);
      assert.match(err.message, /\(HTTP 400\) Bad Request$/);
    }
  });

  test("the documented {detail} message is kept, on one line and cut to ~200 characters", async () => {
    handler = (_req, res) => res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ detail: `Invalid token.\n${"x".repeat(5000)}` }));
    const err = await failure(client(base).health());
    assert.equal(err.code, "unauthorized");
    assert.match(err.message, /^skypilot: GET \/api\/health failed \(HTTP 401\): Invalid token\. x+…$/);
    assert.ok(err.message.length < 260, `${err.message.length} characters`);
  });

  test("a 200 answer that is not JSON is reported by its status only", async () => {
    handler = (_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<html>${LEAK}</html>`);
    const err = await failure(client(base).health());
    assert.equal(err.message, "skypilot: GET /api/health: the SkyPilot API server answered something that is not JSON (HTTP 200)");
    handler = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ leak: LEAK }));
    const odd = await failure(client(base).health());
    assert.ok(!odd.message.includes("hunter2"), odd.message);
    assert.match(odd.message, /unexpected body \(HTTP 200\)/);
  });
});
