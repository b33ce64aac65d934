import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resolveDeployment } from "./plan";

const TEAM = "team-plan-test";
const spotItem = (r: ReturnType<typeof resolveDeployment>) => r.cost.items.find((i) => i.component === "spot")!;

describe("resolveDeployment cost estimate", () => {
  test("local provider: the spot side is the local simulator, priced for illustration as the cost pages do", () => {
    const r = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "hybrid", gpu: "L4", provider: "local" });
    assert.equal(r.spotProvider, "local-spot");
    const spot = spotItem(r);
    // Not "aws spot … (g6.4xlarge, us-east-2)": the simulator runs here; the cheapest cloud's spot price
    // (GCP's $0.22 for L4) is what the usage and cost pages charge it, marked as illustrative.
    assert.equal(spot.description, "local-spot simulator 1 replica(s) × 1 L4 × $0.22/GPU-h on 127.0.0.1 (illustrative: gcp spot price; nothing is billed)");
    assert.doesNotMatch(spot.description, /g6\.|us-east/);
    assert.equal(spot.microsPerHour, 220_000);
    const serverless = r.cost.items.find((i) => i.component === "serverless")!;
    assert.match(serverless.description, /^local 1 warm worker\(s\) × 1 L4/);
    assert.equal(r.estimatedCostPerHourMicros, serverless.microsPerHour + spot.microsPerHour);
    assert.equal(r.cost.complete, true);
    assert.deepEqual(r.cost.warnings, []);
    // Spot clouds narrow the illustrative price as they narrow the cost pages'.
    const aws = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "hybrid", gpu: "L4", provider: "local", spotClouds: ["aws"] });
    assert.match(spotItem(aws).description, /× \$0\.28\/GPU-h on 127\.0\.0\.1 \(illustrative: aws spot price/);
    // Idle: the simulator scales to zero.
    assert.match(spotItem({ ...r, cost: r.idleCost }).description, /^local-spot simulator L4: scales to zero/);
  });

  test("spot-only on the simulator: its illustrative price alone; SkyServe still quotes the chosen cloud's spot price", () => {
    const local = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "spot", gpu: "L4", provider: "local-spot" });
    assert.equal(local.spotProvider, "local-spot");
    assert.equal(local.estimatedCostPerHourMicros, 220_000);
    const sky = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "hybrid", gpu: "L4", provider: "modal", spotClouds: ["gcp"] });
    assert.equal(sky.spotProvider, "skyserve");
    assert.match(spotItem(sky).description, /^gcp spot 1 replica\(s\) × 1 L4 × \$0\.22\/GPU-h/);
  });
});
