import assert from "node:assert/strict";
import { test } from "node:test";
import { envInt } from "./env";

test("envInt: default when unset or blank; a non-integer or out-of-range value throws naming the variable", () => {
  const name = "TUNA_TEST_ENV_INT";
  const saved = process.env[name];
  try {
    delete process.env[name];
    assert.equal(envInt(name, 10, 1), 10);
    process.env[name] = " ";
    assert.equal(envInt(name, 10, 1), 10);
    process.env[name] = "4";
    assert.equal(envInt(name, 10, 1), 4);
    for (const bad of ["abc", "2.5", "0", "-3"]) {
      process.env[name] = bad;
      assert.throws(() => envInt(name, 10, 1), new RegExp(`^Error: ${name} must be a whole number ≥ 1, got "${bad}"$`));
    }
    process.env[name] = "70000";
    assert.throws(() => envInt(name, 3000, 1, 65535), /TUNA_TEST_ENV_INT must be a whole number 1–65535, got "70000"/);
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
});
