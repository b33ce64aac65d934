import assert from "node:assert/strict";
import { test } from "node:test";
import { mergeQuery, q, readQuery } from "./url-state";

const schema = { status: q.oneOf(["active", "failed"] as const), owner: q.text(8), from: q.day() };

test("readQuery keeps valid values and leaves out invalid, empty and unknown ones", () => {
  assert.deepEqual(readQuery(new URLSearchParams("status=active&owner=u1&from=2026-02-28&other=x"), schema), { status: "active", owner: "u1", from: "2026-02-28" });
  assert.deepEqual(readQuery(new URLSearchParams("status=bogus&owner=&from=2026-02-30"), schema), {});
  assert.deepEqual(readQuery(new URLSearchParams("owner=123456789&from=2026-2-1"), schema), {});
  assert.deepEqual(readQuery(new URLSearchParams("from=2024-02-29"), schema), { from: "2024-02-29" });
});

test("mergeQuery sets, removes and orders keys; an empty query leaves the bare path", () => {
  assert.equal(mergeQuery("/deployments", "sort=slug", { status: "active", owner: undefined }), "/deployments?sort=slug&status=active");
  assert.equal(mergeQuery("/deployments", "status=active&sort=slug", { status: "", sort: null }), "/deployments");
  assert.equal(mergeQuery("/audit", "", { action: "member. invite&x" }), "/audit?action=member.+invite%26x");
  assert.deepEqual(readQuery(new URLSearchParams(mergeQuery("/a", "", { owner: "a&b=c" }).split("?")[1]), schema), { owner: "a&b=c" });
});
