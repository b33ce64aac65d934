import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { plainFieldErrors, plainFieldMessage } from "./field-messages";

/** Field errors exactly as the tRPC error formatter sends them (`z.flattenError` of zod's own messages). */
function fieldErrorsOf(schema: z.ZodType, input: unknown): Record<string, string[]> {
  const r = schema.safeParse(input);
  assert.equal(r.success, false, "the input must be rejected");
  return z.flattenError(r.error!).fieldErrors as Record<string, string[]>;
}

describe("plain field messages", () => {
  test("the three messages the QA walkthrough found: empty label, long model id, budget of 0", () => {
    const fe = fieldErrorsOf(
      z.object({ label: z.string().trim().min(1).max(80), model: z.string().max(256), monthlyLimitMicros: z.number().int().positive() }),
      { label: "   ", model: "m".repeat(257), monthlyLimitMicros: 0 },
    );
    // The raw wording, so that a zod upgrade that rewords it fails here rather than reaching users.
    assert.deepEqual(fe, {
      label: ["Too small: expected string to have >=1 characters"],
      model: ["Too big: expected string to have <=256 characters"],
      monthlyLimitMicros: ["Too small: expected number to be >0"],
    });
    assert.deepEqual(plainFieldErrors(fe), { label: "Enter a label.", model: "At most 256 characters.", monthlyLimitMicros: "Must be more than 0." });
  });

  test("other built-in messages become sentences too", () => {
    const fe = fieldErrorsOf(
      z.object({
        name: z.string().min(2),
        email: z.email(),
        ttlHours: z.number().int().min(1).max(720),
        gpuCount: z.number(),
        apiKey: z.string().min(1),
        role: z.enum(["admin", "viewer"]),
        confirm: z.literal("destroy all"),
        port: z.number().max(65_535),
      }),
      { name: "x", email: "nope", ttlHours: 0.5, gpuCount: Number.NaN, role: "owner", confirm: "yes", port: 70_000 },
    );
    const plain = plainFieldErrors(fe);
    assert.equal(plain.name, "At least 2 characters.");
    assert.equal(plain.email, "Enter a valid email address.");
    assert.equal(plain.ttlHours, "Enter a whole number.");
    assert.equal(plain.gpuCount, "Enter a number.");
    assert.equal(plain.apiKey, "Enter an api key.");
    assert.equal(plain.role, "Choose one of: admin, viewer.");
    assert.equal(plain.confirm, "Must be “destroy all”.");
    assert.equal(plain.port, "Must be at most 65535.");
    for (const [field, message] of Object.entries(plain)) assert.doesNotMatch(message ?? "", /Too (small|big)|expected|>=|<=|Invalid input/, field);
  });

  test("messages written for users pass through, as sentences", () => {
    assert.equal(plainFieldMessage("Enter your name", "name"), "Enter your name.");
    assert.equal(plainFieldMessage("Use at least 10 characters.", "password"), "Use at least 10 characters.");
    assert.equal(plainFieldMessage("lowercase letters, digits and dashes", "slug"), "Lowercase letters, digits and dashes.");
  });
});
