import { defaultScaling } from "./engine";
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
