import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { stampPeerAddress } from "../lib/client-ip";
import { contextFor } from "./context";
import { createCaller } from ".";

await useTestDatabase();

/** A request as the tRPC route gets it from a client at `peer` that forged X-Forwarded-For. */
function request(peer: string, forgedXff: string): Request {
  const h: IncomingHttpHeaders = { "x-forwarded-for": forgedXff, "content-type": "application/json" };
  stampPeerAddress(h, peer);
  return new Request("http://localhost/api/trpc/auth.signUp", { method: "POST", headers: h as Record<string, string> });
}

describe("the client IP of a tRPC request (audit log)", () => {
  test("no trusted proxies: the audit row has the socket peer, not the forged X-Forwarded-For", async () => {
    delete process.env.TUNA_TRUSTED_PROXIES;
    const ctx = await contextFor(request("192.0.2.10", "6.6.6.6"), null);
    assert.equal(ctx.ip, "192.0.2.10");
    const { teamId } = await createCaller(ctx).auth.signUp({ name: "Ip", email: "ip-audit@example.test", password: "0123456789abc" });
    const rows = await db.auditLog.findMany({ where: { teamId } });
    assert.ok(rows.length > 0);
    assert.deepEqual([...new Set(rows.map((r) => r.ip))], ["192.0.2.10"]);
  });

  test("one trusted proxy: the address the proxy appended", async () => {
    process.env.TUNA_TRUSTED_PROXIES = "1";
    try {
      assert.equal((await contextFor(request("10.0.0.2", "6.6.6.6, 203.0.113.5"), null)).ip, "203.0.113.5");
    } finally {
      delete process.env.TUNA_TRUSTED_PROXIES;
    }
  });
});
