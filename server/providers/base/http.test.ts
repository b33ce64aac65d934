import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { rateLimitWaitMs, tokenRefreshMarginMs } from "./http";

const wait = (ratelimit?: string) => rateLimitWaitMs({ headers: new Headers(ratelimit === undefined ? {} : { ratelimit }) });

describe("RateLimit header", () => {
  test("the longest wait among spent windows; windows with quota left do not count", () => {
    assert.equal(wait('"minute";r=0;t=20, "hour";r=0;t=1800'), 1_800_000);
    assert.equal(wait('"minute";r=0;t=20, "hour";r=12;t=1800'), 20_000);
    assert.equal(wait('default;r=0;t=7'), 7_000);
    assert.equal(wait('"minute";r=3;t=20'), undefined);
  });

  test("the earlier drafts' dictionary form", () => {
    assert.equal(wait("limit=100, remaining=0, reset=45"), 45_000);
    assert.equal(wait("limit=100, remaining=4, reset=45"), undefined);
  });

  test("absent or unreadable → undefined (Retry-After or the backoff decide)", () => {
    assert.equal(wait(), undefined);
    assert.equal(wait("garbage"), undefined);
    assert.equal(wait('"minute";r=0;t=soon'), undefined);
  });
});

test("tokens are renewed 5 min before expiry, or half-way through a shorter life", () => {
  assert.equal(tokenRefreshMarginMs(3_599_000), 300_000);
  assert.equal(tokenRefreshMarginMs(60_000), 30_000);
});
