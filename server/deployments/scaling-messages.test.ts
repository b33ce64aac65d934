import assert from "node:assert/strict";
import { test } from "node:test";
import { DomainError } from "../lib/errors";
import { resolveDeployment, type DeploymentInput } from "./plan";

const base: DeploymentInput = { model: "Qwen/Qwen3-0.6B", mode: "hybrid", gpu: "L4", provider: "local" };

function refusal(input: Partial<DeploymentInput>): { message: string; reason: string | undefined } {
  try {
    resolveDeployment("team-scaling-test", { ...base, ...input });
  } catch (e) {
    assert.ok(e instanceof DomainError, `a DomainError, got ${e}`);
    assert.equal(e.code, "BAD_REQUEST");
    return { message: e.message, reason: e.reason };
  }
  assert.fail("accepted");
}

test("min above max workers/replicas: a plain sentence with a reason the form puts next to the field", () => {
  const cases: Array<[Partial<DeploymentInput>, string, string]> = [
    [{ serverlessScaling: { minWorkers: 3, maxWorkers: 2 } }, "Max workers (2) cannot be fewer than the min warm workers (3).", "max_workers_below_min"],
    // Only the min given: the default max (1) is below it.
    [{ serverlessScaling: { minWorkers: 2 } }, "Max workers (1) cannot be fewer than the min warm workers (2).", "max_workers_below_min"],
    [{ serverlessScaling: { maxWorkers: 0 } }, "Max workers must be at least 1.", "max_workers_below_min"],
    [{ mode: "spot", provider: "local-spot", spotScaling: { minReplicas: 4, maxReplicas: 3 } }, "Max replicas (3) cannot be fewer than the min replicas (4).", "max_replicas_below_min"],
    [{ spotScaling: { maxReplicas: 0 } }, "Max replicas must be at least 1.", "max_replicas_below_min"],
  ];
  for (const [input, message, reason] of cases) {
    const got = refusal(input);
    assert.deepEqual(got, { message, reason }, JSON.stringify(input));
    assert.doesNotMatch(got.message, /invalid deployment spec|serverlessScaling|spotScaling|tuna:/);
  }
});

test("equal min and max is fine", () => {
  const r = resolveDeployment("team-scaling-test", { ...base, serverlessScaling: { minWorkers: 2, maxWorkers: 2 }, spotScaling: { minReplicas: 3, maxReplicas: 3 } });
  assert.equal(r.spec.serverlessScaling.maxWorkers, 2);
  assert.equal(r.spec.spotScaling.maxReplicas, 3);
});
