import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import superjson from "superjson";
import { useTestDatabase } from "@/server/test/db";
import { makeRoleFixture } from "@/server/test/fixtures";
import { db } from "@/server/db";
import { contextFor } from "@/server/trpc/context";
import type { AppRouter, SessionUser } from "@/server/trpc";
import { handleTrpcRequest } from "./handler";

await useTestDatabase();

const APP = "http://tuna.test:3000";
process.env.NEXTAUTH_URL = APP;

/** The route, with `user` signed in (the session cookie's part is contextFor's, as in the real route). */
function route(user: SessionUser) {
  return (req: Request) => handleTrpcRequest(req, (r) => contextFor(r, user));
}

/** What a page on another site gets a browser to send: a form POST with the victim's cookies. */
function formPost(path: string, enctype: "multipart/form-data" | "application/x-www-form-urlencoded" | "text/plain", teamId: string, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = { origin: "https://evil.example", "sec-fetch-site": "cross-site", cookie: `tuna_team=${teamId}`, ...extra };
  if (enctype === "multipart/form-data") {
    const body = new FormData();
    body.set("x", "1");
    return new Request(`${APP}/api/trpc/${path}`, { method: "POST", headers, body });
  }
  return new Request(`${APP}/api/trpc/${path}`, { method: "POST", headers: { ...headers, "content-type": enctype }, body: enctype === "text/plain" ? '{"json":null}=' : "x=1" });
}

async function errorOf(res: Response) {
  const body = (await res.json()) as { error?: { json?: { message?: string; data?: { code?: string; httpStatus?: number } } } };
  return { status: res.status, code: body.error?.json?.data?.code, message: body.error?.json?.message ?? "" };
}

async function isMember(teamId: string, userId: string) {
  return (await db.membership.count({ where: { teamId, userId } })) === 1;
}

describe("tRPC over HTTP refuses cross-site requests", () => {
  test("a cross-site form POST to an input-less mutation is refused and changes nothing", async () => {
    const f = await makeRoleFixture();
    for (const enctype of ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"] as const) {
      const res = await route(f.viewer)(formPost("team.leave", enctype, f.team.id));
      const e = await errorOf(res);
      assert.equal(e.status, 403, enctype);
      assert.equal(e.code, "FORBIDDEN", enctype);
      assert.match(e.message, /Cross-site requests are not accepted/);
      assert.ok(await isMember(f.team.id, f.viewer.id), enctype);
    }
    const verify = await errorOf(await route(f.admin)(formPost("audit.verify", "multipart/form-data", f.team.id)));
    assert.deepEqual([verify.status, verify.code], [403, "FORBIDDEN"]);
    // A batch gets one tRPC error per call, as the app's client expects.
    const batch = await route(f.viewer)(formPost("team.leave,audit.verify?batch=1", "text/plain", f.team.id));
    assert.equal(batch.status, 403);
    const items = (await batch.json()) as Array<{ error?: { json?: { data?: { code?: string; path?: string } } } }>;
    assert.deepEqual(items.map((i) => [i.error?.json?.data?.code, i.error?.json?.data?.path]), [["FORBIDDEN", "team.leave"], ["FORBIDDEN", "audit.verify"]]);
    assert.ok(await isMember(f.team.id, f.viewer.id));
  });

  test("another Origin is refused even without Sec-Fetch-Site (older browsers), and so is Origin: null", async () => {
    const f = await makeRoleFixture();
    for (const origin of ["https://evil.example", "http://tuna.test:3001", "https://tuna.test:3000", "null"]) {
      const req = new Request(`${APP}/api/trpc/team.leave`, {
        method: "POST",
        headers: { origin, "content-type": "application/json", cookie: `tuna_team=${f.team.id}` },
        body: JSON.stringify({ json: null }),
      });
      const e = await errorOf(await route(f.viewer)(req));
      assert.deepEqual([e.status, e.code], [403, "FORBIDDEN"], origin);
      assert.match(e.message, /not accepted/);
    }
    assert.ok(await isMember(f.team.id, f.viewer.id));
  });

  test("a multipart POST is refused even from the app's own origin", async () => {
    const f = await makeRoleFixture();
    const res = await route(f.viewer)(formPost("team.leave", "multipart/form-data", f.team.id, { origin: APP, "sec-fetch-site": "same-origin" }));
    const e = await errorOf(res);
    assert.deepEqual([e.status, e.code], [415, "UNSUPPORTED_MEDIA_TYPE"]);
    assert.match(e.message, /application\/json/);
    assert.ok(await isMember(f.team.id, f.viewer.id));
  });

  test("the app's own client works: JSON, same origin (and from scripts without an Origin)", async () => {
    const f = await makeRoleFixture();
    const client = (user: SessionUser, headers: Record<string, string>) =>
      createTRPCClient<AppRouter>({
        links: [httpBatchLink({ url: `${APP}/api/trpc`, transformer: superjson, headers: { cookie: `tuna_team=${f.team.id}`, ...headers }, fetch: (url, init) => route(user)(new Request(url, init as RequestInit)) })],
      });
    const browser = client(f.admin, { origin: APP, "sec-fetch-site": "same-origin" });
    assert.equal((await browser.team.get.query()).id, f.team.id);
    assert.equal((await browser.audit.verify.mutate()).ok, true);
    await client(f.viewer, { origin: APP, "sec-fetch-site": "same-origin" }).team.leave.mutate();
    assert.equal(await isMember(f.team.id, f.viewer.id), false);
    await client(f.developer, {}).team.leave.mutate(); // a script: no Origin, no Sec-Fetch-Site
    assert.equal(await isMember(f.team.id, f.developer.id), false);
  });

  test("without NEXTAUTH_URL the request's Host is the app's origin", async () => {
    const f = await makeRoleFixture();
    const saved = process.env.NEXTAUTH_URL;
    delete process.env.NEXTAUTH_URL;
    try {
      const post = (origin: string) =>
        route(f.admin)(new Request("http://127.0.0.1:3100/api/trpc/audit.verify", {
          method: "POST",
          headers: { origin, host: "127.0.0.1:3100", "content-type": "application/json", "sec-fetch-site": "same-origin", cookie: `tuna_team=${f.team.id}` },
          body: JSON.stringify({ json: null }),
        }));
      assert.equal((await post("http://127.0.0.1:3100")).status, 200);
      assert.equal((await post("http://localhost:3100")).status, 403);
    } finally {
      process.env.NEXTAUTH_URL = saved;
    }
  });
});
