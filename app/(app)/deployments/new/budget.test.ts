import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { budgetMicrosOf } from "./budget";

describe("new deployment: the budget field", () => {
  test("empty is no budget", () => {
    assert.deepEqual(budgetMicrosOf(""), {});
    assert.deepEqual(budgetMicrosOf("   "), {});
  });

  test("an amount in USD becomes integer micro-dollars", () => {
    assert.deepEqual(budgetMicrosOf("25"), { micros: 25_000_000 });
    assert.deepEqual(budgetMicrosOf("0.01"), { micros: 10_000 });
    assert.deepEqual(budgetMicrosOf(" 12.5 "), { micros: 12_500_000 });
  });

  test("what the API would refuse is an error before anything is created", () => {
    for (const bad of ["-5", "0", "0.001", "-0.01", "1e300", "Infinity", "NaN"]) {
      const r = budgetMicrosOf(bad);
      assert.equal(r.micros, undefined, bad);
      assert.match(r.error ?? "", /at least \$0\.01/, bad);
    }
  });

  test("text the number input could not read is an error, not 'no budget'", () => {
    // Chrome reports "-" or "1e" as value "" with validity.badInput set.
    assert.match(budgetMicrosOf("", true).error ?? "", /at least \$0\.01/);
  });
});
