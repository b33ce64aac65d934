// Small pure pieces whose edge cases are awkward to reach over sockets.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { routerSnapshotSchema, usageReportSchema } from "../src/contract.js";
import { SseTap } from "../src/proxy.js";
import { UsageAggregator } from "../src/usage.js";
import { deployment, snapshot } from "./helpers/fixtures.js";

describe("SseTap", () => {
  const events = [
    'data: {"choices":[{"delta":{"content":"héllo ✓"}}]}\n\n',
    'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
    "data: [DONE]\n\n",
  ];
  const bytes = Buffer.from(events.join(""));

  test("reads usage across arbitrary chunk boundaries (including inside a UTF-8 character) and strips it when not asked", () => {
    for (const size of [1, 2, 3, 7, 50, bytes.length]) {
      const tap = new SseTap(false);
      let out = "";
      for (let i = 0; i < bytes.length; i += size) out += tap.push(bytes.subarray(i, i + size)) ?? "";
      out += tap.flush() ?? "";
      assert.deepEqual(tap.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, `chunk ${size}`);
      assert.equal(out, events[0] + events[2], `chunk ${size}`);
    }
  });

  test("keeps the usage chunk when the client asked for it", () => {
    const tap = new SseTap(true);
    const out = (tap.push(bytes) ?? "") + (tap.flush() ?? "");
    assert.equal(out, events.join(""));
  });
});

describe("contract", () => {
  test("accepts the DESIGN.md §3.6 example and rejects duplicates and bad URLs", () => {
    const ok = routerSnapshotSchema.safeParse(snapshot([deployment({ svlUrl: "http://127.0.0.1:9001", spotUrl: "http://127.0.0.1:9002" })]));
    assert.ok(ok.success);
    const dup = snapshot([deployment({ svlUrl: "http://a" }), deployment({ svlUrl: "http://b" })]);
    assert.equal(routerSnapshotSchema.safeParse(dup).success, false);
    assert.equal(routerSnapshotSchema.safeParse(snapshot([deployment({ svlUrl: "file:///etc/passwd" })])).success, false);
  });
});

describe("UsageAggregator", () => {
  test("a failed-over attempt adds busy time but is not a request; drain resets", () => {
    const agg = new UsageAggregator();
    const base = { keyId: "k", deploymentId: "d", backendKind: "spot" as const, inputTokens: 0, outputTokens: 0, latencyMs: 3, ttftMs: undefined, busyMs: 3 };
    agg.record({ ...base, backendId: "spot", error: true, countRequest: false });
    agg.record({ ...base, backendId: "svl", backendKind: "serverless", error: false, inputTokens: 4, outputTokens: 9, ttftMs: 2 });
    const r = agg.drain("router-1", 5);
    assert.ok(r);
    assert.ok(usageReportSchema.safeParse(r).success);
    const spot = r.entries.find((e) => e.backendId === "spot");
    const svl = r.entries.find((e) => e.backendId === "svl");
    assert.equal(spot?.requests, 0);
    assert.equal(spot?.busyMs, 3);
    assert.equal(svl?.requests, 1);
    assert.equal(svl?.outputTokens, 9);
    assert.equal(agg.drain("router-1", 5), undefined);
  });
});
