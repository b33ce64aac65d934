import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { credentialOutcomeOfError, credentialsAcceptedFinding, credentialVerdict } from "./credential-check";
import { ProviderError } from "./errors";
import type { Finding } from "./types";

const accepted = credentialsAcceptedFinding("RunPod");
const unauthorized: Finding = { level: "error", code: "unauthorized", message: "RunPod rejected the API key (HTTP 401)." };
const unreachable: Finding = { level: "warning", code: "catalog_unavailable", message: "network error: fetch failed" };
const stock: Finding = { level: "error", code: "gpu_unavailable_in_region", message: "no L4 in US-KS-2" };

describe("credentialVerdict", () => {
  test("passes only on the provider's confirmation; plan findings do not matter", () => {
    assert.equal(credentialVerdict([accepted, stock]).outcome, "passed");
  });
  test("a refusal fails, even next to a confirmation", () => {
    assert.deepEqual(credentialVerdict([accepted, unauthorized]), { outcome: "failed", reasons: [unauthorized] });
  });
  test("no answer either way is 'unverified', with the reasons; no findings at all is not a pass", () => {
    assert.deepEqual(credentialVerdict([unreachable, { level: "info", code: "live_price", message: "$0.69" }]), { outcome: "unverified", reasons: [unreachable] });
    assert.equal(credentialVerdict([]).outcome, "unverified");
    // The code decides, not the wording: a message mentioning "auth" is not a refusal.
    assert.equal(credentialVerdict([{ level: "error", code: "unreachable", message: "auth.example.com: network error" }]).outcome, "unverified");
  });
  test("errors thrown by a preflight: 401/403 fail, network/5xx/timeout are unverified", () => {
    const err = (code: "unauthorized" | "forbidden" | "unavailable" | "timeout") => new ProviderError({ provider: "x", code, message: code });
    assert.equal(credentialOutcomeOfError(err("unauthorized")), "failed");
    assert.equal(credentialOutcomeOfError(err("forbidden")), "failed");
    assert.equal(credentialOutcomeOfError(err("unavailable")), "unverified");
    assert.equal(credentialOutcomeOfError(err("timeout")), "unverified");
  });
});
