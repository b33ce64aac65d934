import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z, ZodError } from "zod";
import { cloudPrice } from "../catalog";
import { deploymentInputSchema, resolveDeployment } from "./plan";

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

  test("spot on several clouds: priced on the cheapest one with a known price, as the cost model charges it", () => {
    // L40S has no static gcp spot price but an aws one: listing gcp first must not make the estimate unknown.
    const r = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "spot", gpu: "L40S", spotProvider: "skyserve", spotClouds: ["gcp", "aws"] });
    const charged = cloudPrice("L40S", ["gcp", "aws"], "spot");
    assert.equal(charged?.cloud, "aws");
    assert.equal(r.cost.complete, true);
    assert.deepEqual(r.cost.warnings, []);
    assert.equal(spotItem(r).unitPriceMicros, charged.micros);
    assert.match(spotItem(r).description, /^aws spot 1 replica\(s\) × 1 L40S/);
    assert.equal(r.estimatedCostPerHourMicros, charged.micros);
    // No known price on any chosen cloud: still unknown, named on the first one.
    const gcp = resolveDeployment(TEAM, { model: "Qwen/Qwen3-0.6B", mode: "spot", gpu: "L40S", spotProvider: "skyserve", spotClouds: ["gcp"] });
    assert.equal(gcp.cost.complete, false);
    assert.deepEqual(gcp.cost.warnings, ["no known gcp spot price for L40S; its 1 GPU(s) are counted as $0"]);
  });
});

describe("model ids", () => {
  const parse = (model: string) => deploymentInputSchema.safeParse({ model, mode: "serverless", gpu: "L4", provider: "local" });
  const modelError = (model: string) => {
    const r = parse(model);
    assert.equal(r.success, false, `${JSON.stringify(model)} must be refused`);
    return z.flattenError(r.error!).fieldErrors.model?.[0] ?? "";
  };

  test("Hugging Face repo ids are accepted as they are", () => {
    for (const model of ["Qwen/Qwen3-0.6B", "meta-llama/Llama-3.1-8B-Instruct", "TheBloke/Llama-2-7B-GPTQ", "gpt2", "org_1/model.v2_final", "  Qwen/Qwen3-0.6B  "]) {
      const r = parse(model);
      assert.ok(r.success, `${model}: ${r.error?.message}`);
      assert.equal(r.data.model, model.trim());
    }
    assert.equal(resolveDeployment(TEAM, { model: "meta-llama/Llama-3.1-8B-Instruct", mode: "serverless", gpu: "L4", provider: "local" }).slug, "llama-3-1-8b-instruct");
  });

  test("what the QA walkthrough typed is refused with a message that says what a model id looks like", () => {
    for (const model of ["🐟🐟", "模型/🐟-ünïcode"]) {
      assert.match(modelError(model), /^Use a Hugging Face model id such as Qwen\/Qwen3-0\.6B/);
      assert.throws(() => resolveDeployment(TEAM, { model, mode: "serverless", gpu: "L4", provider: "local" }), ZodError);
    }
  });

  test("ids the Hub or the engines would not take are refused", () => {
    for (const model of [
      "a/b/c", // one "/" at most
      "/models/llama", // an absolute path: nothing of the team's disk reaches a provider's workers
      "../../etc/passwd",
      "org/", "/name", "org//name",
      "-org/name", "org/name-", ".hidden/name", "org/.name", "org/name.", // no "-" or "." at either end
      "org/na--me", "org/na..me", // the Hub reserves "--" and ".."
      "org/name.git",
      "org name/model", "org/model:latest", "org/model@main", "org/mödel",
      `org/${"n".repeat(97)}`, // names are at most 96 characters
    ]) {
      assert.notEqual(modelError(model), "", model);
    }
    assert.match(modelError("a/b/c"), /one "\/"/);
    assert.match(modelError("org/na--me"), /"--" or "\.\."/);
    assert.match(modelError(`org/${"n".repeat(97)}`), /96/);
  });
});
