import assert from "node:assert/strict";
import { after, before } from "node:test";
import { defaultScaling } from "./engine";
import { ProviderError, type ProviderErrorCode } from "./errors";
import type { DeploymentSpec } from "./types";

/** A valid spec for tests (any provider's): small Qwen on one L4. Override what the test is about. */
export function makeTestSpec(overrides: Partial<DeploymentSpec> = {}): DeploymentSpec {
  const scaling = defaultScaling();
  return {
    deploymentId: "dep_test_1",
    teamId: "team_test_1",
    name: "tuna-qwen-small-k3j9",
    model: "Qwen/Qwen3-0.6B",
    servedModelName: "qwen-small",
    gpu: "L4",
    gpuCount: 1,
    engine: { kind: "vllm", maxModelLen: 4096 },
    serverlessScaling: scaling.serverless,
    spotScaling: scaling.spot,
    port: 8000,
    secretNames: [],
    ...overrides,
  };
}

/** What a test expects of a `ProviderError`; every field given is asserted. */
export interface ExpectedProviderError {
  code?: ProviderErrorCode;
  status?: number;
  provider?: string;
  retryable?: boolean;
  /** Matched against the message. */
  message?: RegExp;
  /** Secrets (keys, tokens) the message must not contain. */
  hides?: string[];
}

/** Asserts that `promise` rejects with a `ProviderError` as `expected`. */
export async function assertProviderError(promise: Promise<unknown>, expected: ExpectedProviderError): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ProviderError, `expected a ProviderError, got ${String(e)}`);
    if (expected.code !== undefined) assert.equal(e.code, expected.code);
    if (expected.provider !== undefined) assert.equal(e.provider, expected.provider);
    if (expected.status !== undefined) assert.equal(e.status, expected.status);
    if (expected.retryable !== undefined) assert.equal(e.retryable, expected.retryable);
    if (expected.message) assert.match(e.message, expected.message);
    for (const secret of expected.hides ?? []) assert.ok(!e.message.includes(secret), "the error message leaks a secret");
    return true;
  });
}

/** Starts a fake server before the suite (or file) and closes it after. */
export function useFakeServer(fake: { start(): Promise<unknown>; close(): Promise<void> }): void {
  before(async () => {
    await fake.start();
  });
  after(async () => {
    await fake.close();
  });
}
