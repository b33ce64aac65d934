import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, test } from "node:test";
import type { ProviderError } from "../base/errors";
import { assertProviderError, makeTestSpec } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { FakeModalCli } from "./fake";
import { modalProvider, webUrlFromDeployOutput } from "./index";
import { planModal } from "./plan";

const HF = "hf_modal_secret_value_987654";
/** Quotes of every kind, a comment, a literal backslash-n and a command substitution. */
const HOSTILE = `x"; rm -rf / #'\\n$(id)`;

function hasPython(): boolean {
  try {
    execFileSync("python3", ["-c", "import ast"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Parses a rendered Python file with the real Python parser and returns ENGINE_ARGV. */
function pythonArgv(source: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), "tuna-modal-test-"));
  try {
    const file = path.join(dir, "app.py");
    writeFileSync(file, source);
    const out = execFileSync("python3", [
      "-c",
      "import ast,json,sys\nt=ast.parse(open(sys.argv[1]).read())\nprint(json.dumps([ast.literal_eval(n.value) for n in t.body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '')=='ENGINE_ARGV'][0]))",
      file,
    ]);
    return JSON.parse(out.toString()) as string[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const EXPECTED_FUNCTION = `@app.function(
    image=image,
    gpu="T4",
    timeout=600,
    scaledown_window=60,
    min_containers=0,
    max_containers=1,
    secrets=[modal.Secret.from_name(name) for name in SECRET_NAMES],
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": engine_cache},
)
@modal.concurrent(max_inputs=32)
@modal.web_server(port=PORT, startup_timeout=600)
def serve():
    subprocess.Popen(ENGINE_ARGV)
`;

describe("modal plan (pure)", () => {
  test("T4: exact app with --dtype half, scaling knobs, secret by name only", () => {
    const plan = planModal(makeTestSpec({ gpu: "T4", secretNames: ["HF_TOKEN"] }));
    const app = plan.files["app.py"];
    assert.ok(app.includes(`APP_NAME = "tuna-qwen-small-k3j9-serverless"\n`));
    assert.ok(
      app.includes(
        `ENGINE_ARGV = ["vllm","serve","Qwen/Qwen3-0.6B","--host","0.0.0.0","--port","8000","--served-model-name","qwen-small","--max-model-len","4096","--dtype","half"]\n`,
      ),
    );
    assert.ok(app.includes(`SECRET_NAMES = ["tuna-qwen-small-k3j9-serverless-secrets"]\n`));
    assert.ok(app.endsWith(EXPECTED_FUNCTION), app);
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "T4", count: 1 });
    assert.deepEqual(plan.secretEnv, ["HF_TOKEN"]);
    assert.ok(!app.includes("HF_TOKEN"), "the secret value or env is not in the file");
    assert.ok(plan.notes.includes("T4 is Turing: --dtype half"));
  });

  test("A10G maps to Modal's A10, several GPUs use gpu=\"<id>:<n>\", knobs come from the spec", () => {
    const base = makeTestSpec();
    const plan = planModal(
      makeTestSpec({
        gpu: "A10G",
        gpuCount: 2,
        region: "us-east",
        serverlessScaling: { minWorkers: 1, maxWorkers: 4, concurrency: 8, idleTimeoutS: 300, coldStartTimeoutS: 900 },
        spotScaling: base.spotScaling,
      }),
    );
    const app = plan.files["app.py"];
    for (const line of ['gpu="A10:2"', "scaledown_window=300", "min_containers=1", "max_containers=4", 'region="us-east",', "max_inputs=8", "startup_timeout=900", "SECRET_NAMES = []"]) {
      assert.ok(app.includes(line), line);
    }
    assert.throws(() => planModal(makeTestSpec({ gpu: "A4000" })), /not offered by Modal/);
  });

  test("a hostile model name cannot inject Python", { skip: !hasPython() && "python3 not available" }, () => {
    const plan = planModal(makeTestSpec({ model: HOSTILE, servedModelName: HOSTILE }));
    const argv = pythonArgv(plan.files["app.py"]);
    assert.equal(argv[2], HOSTILE);
    assert.equal(argv[argv.indexOf("--served-model-name") + 1], HOSTILE);
  });

  test("line breaks in the model name are refused by spec validation", () => {
    assert.throws(() => planModal(makeTestSpec({ model: "a\nb" })), /must not contain line breaks/);
  });
});

describe("modal web URL parsing", () => {
  test("from the deploy line, else from the dashboard link", () => {
    assert.equal(webUrlFromDeployOutput("└── 🔨 Created web function serve => https://ws--app-serve.modal.run\n", "app"), "https://ws--app-serve.modal.run");
    assert.equal(webUrlFromDeployOutput("View Deployment: https://modal.com/apps/ws/main/deployed/app", "app"), "https://ws--app-serve.modal.run");
    assert.equal(webUrlFromDeployOutput("View Deployment: https://modal.com/apps/ws/dev/deployed/app", "app"), "https://ws-dev--app-serve.modal.run");
    assert.equal(webUrlFromDeployOutput("nothing", "app"), undefined);
  });
});

describe("modal provider against the fake CLI", () => {
  let fake: FakeModalCli;
  let ctx: ProviderContext;
  let creds: { tokenId: string; tokenSecret: string; secrets: Record<string, string> };

  beforeEach(() => {
    fake = new FakeModalCli();
    ctx = { exec: fake.exec, sleep: async () => {} };
    creds = { tokenId: fake.tokenId, tokenSecret: fake.tokenSecret, secrets: { HF_TOKEN: HF } };
  });

  test("preflight: missing token, CLI missing, unauthorised token, fine", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    assert.deepEqual((await modalProvider.preflight(plan, undefined, ctx)).map((f) => f.code), ["missing_credentials"]);
    fake.installed = false;
    const missing = await modalProvider.preflight(plan, creds, ctx);
    assert.deepEqual(missing.map((f) => [f.level, f.code]), [["error", "cli_missing"]]);
    assert.match(missing[0].message, /pip install modal/);
    fake.installed = true;
    const bad = await modalProvider.preflight(plan, { ...creds, tokenSecret: "as-wrong-secret-value" }, ctx);
    assert.deepEqual(bad.map((f) => [f.level, f.code]), [["error", "unauthorized"]]);
    assert.ok(!JSON.stringify(bad).includes("as-wrong-secret-value"));
    assert.deepEqual(await modalProvider.preflight(plan, creds, ctx), []);
    assert.deepEqual((await modalProvider.preflight(plan, { tokenId: fake.tokenId, tokenSecret: fake.tokenSecret }, ctx)).map((f) => f.code), ["missing_secret"]);
  });

  test("deploy → status → destroy with exact CLI args and env; destroy twice succeeds", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const comp = await modalProvider.deploy(plan, creds, ctx);
    const app = "tuna-qwen-small-k3j9-serverless";
    assert.deepEqual(comp, {
      provider: "modal",
      kind: "serverless",
      endpointUrl: `https://tuna-team--${app}-serve.modal.run`,
      upstreamHeaders: {},
      externalIds: { app, webUrl: `https://tuna-team--${app}-serve.modal.run` },
    });
    assert.deepEqual(fake.commandLines(), [`modal secret create ${app}-secrets --from-json secret.json --force`, "modal deploy app.py"]);
    for (const c of fake.calls) assert.deepEqual(c.env, { MODAL_TOKEN_ID: fake.tokenId, MODAL_TOKEN_SECRET: fake.tokenSecret });
    assert.equal(fake.calls[1].files["app.py"], plan.files["app.py"]);
    assert.deepEqual(fake.secrets.get(`${app}-secrets`), { HF_TOKEN: HF });
    assert.ok(!fake.calls.some((c) => c.args.join(" ").includes(HF)), "the secret value is never a CLI argument");

    const ref = refFromPlan(plan, comp.externalIds);
    assert.deepEqual(await modalProvider.status(ref, creds, ctx), {
      state: "scaled_to_zero",
      message: "Modal app deployed, no container running",
      replicas: { ready: 0, total: 0 },
      endpointUrl: comp.endpointUrl,
    });
    fake.setTasks(app, 2);
    const ready = await modalProvider.status(ref, creds, ctx);
    assert.deepEqual([ready.state, ready.replicas], ["ready", { ready: 2, total: 2 }]);

    // Redeploy updates the same app (no second app).
    await modalProvider.deploy(plan, creds, ctx);
    assert.equal(fake.apps.size, 1);

    fake.calls.length = 0;
    await modalProvider.destroy(ref, creds, ctx);
    await modalProvider.destroy(ref, creds, ctx);
    assert.deepEqual(fake.commandLines(), [`modal app stop ${app} --yes`, `modal app stop ${app} --yes`]);
    assert.equal((await modalProvider.status(ref, creds, ctx)).state, "gone");
    await modalProvider.cleanupStorage(ref, creds, ctx);
    await modalProvider.cleanupStorage(ref, creds, ctx);
    assert.deepEqual([fake.liveApps().length, fake.secrets.size, fake.volumes.size], [0, 0, 0]);
  });

  test("destroy after a half-finished deploy (secret created, deploy failed) leaves the fake empty", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    fake.fail("deploy", 1, `Error: build failed: image pull error (token ${creds.tokenSecret})`);
    await assertProviderError(modalProvider.deploy(plan, creds, ctx), { code: "failed", message: /modal deploy failed \(exit 1\): Error: build failed/, hides: [creds.tokenSecret] });
    assert.equal(fake.secrets.size, 1);
    const ref = refFromPlan(plan);
    await modalProvider.destroy(ref, creds, ctx);
    await modalProvider.cleanupStorage(ref, creds, ctx);
    assert.deepEqual([fake.apps.size, fake.secrets.size, fake.volumes.size], [0, 0, 0]);
  });

  test("errors: unauthorised deploy, CLI missing at deploy, missing secret value", async () => {
    const plan = planModal(makeTestSpec());
    await assertProviderError(modalProvider.deploy(plan, { ...creds, tokenSecret: "as-not-the-right-one" }, ctx), { code: "unauthorized", hides: ["as-not-the-right-one"] });
    fake.installed = false;
    await assert.rejects(modalProvider.destroy(refFromPlan(plan), creds, ctx), (e: ProviderError) => e.code === "cli_missing");
    fake.installed = true;
    await assert.rejects(
      modalProvider.deploy(planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] })), { tokenId: fake.tokenId, tokenSecret: fake.tokenSecret }, ctx),
      /secret HF_TOKEN has no value/,
    );
    await assert.rejects(modalProvider.destroy(refFromPlan(plan), { ...creds, tokenId: "ak-wrong" }, ctx), (e: ProviderError) => e.code === "unauthorized");
  });

  test("web URL falls back to the dashboard link when deploy prints none", async () => {
    fake.printWebUrl = false;
    const comp = await modalProvider.deploy(planModal(makeTestSpec()), creds, ctx);
    assert.equal(comp.endpointUrl, "https://tuna-team--tuna-qwen-small-k3j9-serverless-serve.modal.run");
  });
});

describe("CLI runner (real subprocess)", () => {
  test("the child gets only the minimal env plus what is passed; a missing binary is cli_missing", async () => {
    const { spawnExec, runCli } = await import("../base/cli");
    const prev = process.env.TUNA_TEST_CONTROL_PLANE_SECRET;
    process.env.TUNA_TEST_CONTROL_PLANE_SECRET = "must-not-leak";
    try {
      const res = await spawnExec("sh", ["-c", 'printf "%s|%s" "$MODAL_TOKEN_ID" "$TUNA_TEST_CONTROL_PLANE_SECRET"'], { env: { MODAL_TOKEN_ID: "ak-1" }, timeoutMs: 10_000 });
      assert.deepEqual([res.code, res.stdout], [0, "ak-1|"]);
    } finally {
      if (prev === undefined) delete process.env.TUNA_TEST_CONTROL_PLANE_SECRET;
      else process.env.TUNA_TEST_CONTROL_PLANE_SECRET = prev;
    }
    await assert.rejects(
      runCli({}, { provider: "modal", installHint: "install it", cmd: "tuna-no-such-cli-xyz", args: ["--version"], secrets: [] }),
      (e: ProviderError) => e.code === "cli_missing" && /tuna-no-such-cli-xyz/.test(e.message),
    );
  });

  test("every GPU Modal lists can be planned", () => {
    for (const gpu of modalProvider.supportedGpus()) assert.equal(planModal(makeTestSpec({ gpu })).gpu.catalogName, gpu);
  });
});
