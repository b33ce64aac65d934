import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { initTRPC, TRPCError } from "@trpc/server";
import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import superjson from "superjson";
import { CANT_REACH_TUNA, TUNA_UNAVAILABLE, TransportError, withTransportErrors } from "./error-text";
import { errorMessage } from "./trpc";

/** A stand-in for the app's router: Tuna's own answers, which must reach the user unchanged. */
const t = initTRPC.create({ transformer: superjson });
const router = t.router({
  ok: t.procedure.query(() => "fine"),
  missing: t.procedure.query(() => {
    throw new TRPCError({ code: "NOT_FOUND", message: "Deployment not found." });
  }),
  // A provider's error passed on by the server: Tuna's answer, even though its words look like fetch's.
  upstream: t.procedure.query(() => {
    throw new TRPCError({ code: "BAD_GATEWAY", message: "fetch failed" });
  }),
});

/**
 * One server playing Tuna (/api/trpc) and the reverse proxy in front of it: /down/<status> answers the HTML
 * page nginx or a load balancer sends while the app is restarting or gone.
 */
let server: Server;
let base: string;
before(async () => {
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const down = /^\/down\/(\d{3})\//.exec(url.pathname);
    if (down) {
      res.writeHead(Number(down[1]), { "content-type": "text/html" });
      res.end(`<!DOCTYPE html><html><body><h1>${down[1]} Bad Gateway</h1><hr>nginx</body></html>`);
      return;
    }
    const r = await fetchRequestHandler({ endpoint: "/api/trpc", req: new Request(url.toString().replace("http://localhost", base)), router, createContext: () => ({}) });
    res.writeHead(r.status, Object.fromEntries(r.headers));
    res.end(await r.text());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The app's client setup (app/_lib/trpc.tsx): batch link, superjson, fetch wrapped by withTransportErrors. */
function client(url: string, fetchImpl?: typeof fetch, wrap = true) {
  return createTRPCClient<typeof router>({
    links: [httpBatchLink({ url, transformer: superjson, fetch: wrap ? withTransportErrors(fetchImpl) : fetchImpl })],
  });
}

async function messageOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return errorMessage(e);
  }
  assert.fail("the call should have failed");
}

/** fetch as a browser fails when nothing comes back: a TypeError in the engine's own words. */
const offline = (words: string): typeof fetch => async () => {
  throw new TypeError(words);
};

describe("plain error messages", () => {
  test("no connection: Chromium's, Firefox's and Safari's words become one plain message", async () => {
    for (const words of ["Failed to fetch", "NetworkError when attempting to fetch resource.", "Load failed"]) {
      assert.equal(await messageOf(client(`${base}/api/trpc`, offline(words)).ok.query()), CANT_REACH_TUNA, words);
      // And for an error that skipped the wrapper (another fetch, an older client in the cache).
      assert.equal(await messageOf(client(`${base}/api/trpc`, offline(words), false).ok.query()), CANT_REACH_TUNA, `${words} (unwrapped)`);
    }
    assert.equal(CANT_REACH_TUNA, "Can't reach Tuna. Check your connection and try again.");
  });

  test("a server that is down (connection refused) is the same plain message", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    assert.equal(await messageOf(client(`http://127.0.0.1:${port}/api/trpc`).ok.query()), CANT_REACH_TUNA);
  });

  test("a proxy's 502/503/504 HTML page instead of Tuna's JSON is a plain message, not a JSON parse error", async () => {
    for (const status of [502, 503, 504]) {
      assert.equal(await messageOf(client(`${base}/down/${status}/api/trpc`).ok.query()), TUNA_UNAVAILABLE, String(status));
      // Without the wrapper tRPC throws the parser's "Unexpected token '<'…": mapped all the same.
      assert.equal(await messageOf(client(`${base}/down/${status}/api/trpc`, undefined, false).ok.query()), TUNA_UNAVAILABLE, `${status} (unwrapped)`);
    }
    assert.match(await messageOf(client(`${base}/down/404/api/trpc`).ok.query()), /^Tuna sent an unexpected reply \(HTTP 404\)\. Reload the page and try again\.$/);
  });

  test("Tuna's own answers pass unchanged, even when their words look like a fetch failure", async () => {
    const c = client(`${base}/api/trpc`);
    assert.equal(await c.ok.query(), "fine");
    assert.equal(await messageOf(c.missing.query()), "Deployment not found.");
    assert.equal(await messageOf(c.upstream.query()), "fetch failed");
  });

  test("a cancelled request stays a cancellation (React Query recognises it by its AbortError)", async () => {
    const abort = new DOMException("The operation was aborted.", "AbortError");
    const f = withTransportErrors(async () => {
      throw abort;
    });
    await assert.rejects(f("http://x/api/trpc"), (e) => e === abort);
    const refused = withTransportErrors(offline("Failed to fetch"));
    await assert.rejects(refused("http://x/api/trpc"), (e) => e instanceof TransportError && e.message === CANT_REACH_TUNA && e.cause instanceof TypeError);
  });

  test("other content types can be accepted (the audit export answers CSV)", async () => {
    const csv = withTransportErrors(async () => new Response("a,b\r\n", { headers: { "content-type": "text/csv; charset=utf-8" } }), ["text/csv", "json"]);
    assert.equal(await (await csv("http://x/export")).text(), "a,b\r\n");
    const proxied = withTransportErrors(async () => new Response("<html>", { status: 503, headers: { "content-type": "text/html" } }), ["text/csv", "json"]);
    await assert.rejects(proxied("http://x/export"), (e) => e instanceof TransportError && e.status === 503 && e.message === TUNA_UNAVAILABLE);
  });
});
