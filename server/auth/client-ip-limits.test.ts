import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { useTestDatabase } from "../test/db";
import { callerFor } from "../test/fixtures";
import { stampPeerAddress } from "../lib/client-ip";
import { authOptions } from "./options";
import { THROTTLE } from "./throttle";

await useTestDatabase();

type Authorize = (credentials: Record<string, string>, req: { headers: Record<string, string> }) => Promise<unknown>;

/** The credentials provider's authorize(), as next-auth calls it on a sign-in POST. */
function authorize(): Authorize {
  const p = authOptions().providers.find((x) => x.id === "credentials") as unknown as { options: { authorize: Authorize } };
  return p.options.authorize;
}

/** Request headers as Next hands them on: the client's X-Forwarded-For, then the socket peer appended by the stamp. */
function fromPeer(peer: string, forgedXff: string): Record<string, string> {
  const h: IncomingHttpHeaders = { "x-forwarded-for": forgedXff, "user-agent": "test" };
  stampPeerAddress(h, peer);
  return h as Record<string, string>;
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return (e as Error).message;
  }
}

async function withTrustedProxies<T>(n: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.TUNA_TRUSTED_PROXIES;
  if (n === undefined) delete process.env.TUNA_TRUSTED_PROXIES;
  else process.env.TUNA_TRUSTED_PROXIES = n;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.TUNA_TRUSTED_PROXIES;
    else process.env.TUNA_TRUSTED_PROXIES = saved;
  }
}

describe("the per-IP sign-in limit and X-Forwarded-For", () => {
  test("no trusted proxies: a new forged X-Forwarded-For per request does not escape the limit", async () => {
    await callerFor(null).auth.signUp({ name: "V", email: "xff-victim@example.test", password: "the-right-password" });
    const outcomes = await withTrustedProxies(undefined, async () => {
      const auth = authorize();
      for (let i = 0; i < THROTTLE.ip.maxFailures; i++) {
        assert.equal(await outcome(auth({ email: `xff-spray${i}@example.test`, password: "guess-guess" }, { headers: fromPeer("192.0.2.66", `6.6.${i}.6`) })), "CredentialsSignin");
      }
      return outcome(auth({ email: "xff-victim@example.test", password: "the-right-password" }, { headers: fromPeer("192.0.2.66", "7.7.7.7") }));
    });
    assert.equal(outcomes, "TooManyAttempts");
  });

  test("one trusted proxy: the address the proxy appended is the one limited", async () => {
    await callerFor(null).auth.signUp({ name: "W", email: "xff-proxied@example.test", password: "the-right-password" });
    await withTrustedProxies("1", async () => {
      const auth = authorize();
      // Many clients behind one proxy (10.0.0.2): each has its own limit.
      for (let i = 0; i < THROTTLE.ip.maxFailures; i++) {
        await outcome(auth({ email: `proxied-spray${i}@example.test`, password: "guess-guess" }, { headers: fromPeer("10.0.0.2", `203.0.113.${i}`) }));
      }
      assert.equal(await outcome(auth({ email: "xff-proxied@example.test", password: "the-right-password" }, { headers: fromPeer("10.0.0.2", "203.0.113.200") })), "ok");
      // One client whose real address the proxy appended after a forged entry: still one client.
      for (let i = 0; i < THROTTLE.ip.maxFailures; i++) {
        await outcome(auth({ email: `proxied-spray${i}@example.test`, password: "guess-guess" }, { headers: fromPeer("10.0.0.2", `6.6.${i}.6, 198.51.100.99`) }));
      }
      assert.equal(await outcome(auth({ email: "xff-proxied@example.test", password: "the-right-password" }, { headers: fromPeer("10.0.0.2", "9.9.9.9, 198.51.100.99") })), "TooManyAttempts");
    });
  });
});
