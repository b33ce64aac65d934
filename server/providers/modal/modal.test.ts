import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, test } from "node:test";
import { ProviderError } from "../base/errors";
import { buildEngineArgs, validateSpec } from "../base/engine";
import { assertProviderError, makeTestSpec } from "../base/testing";
import { refFromPlan, type ProviderContext } from "../base/types";
import { FakeModalCli } from "./fake";
import { modalProvider, webUrlFromDeployOutput } from "./index";
import { planModal } from "./plan";

const HF = "hf_modal_secret_value_987654";
const KEY_SHAPE = /^tuna_up_[A-Za-z0-9_-]{43}$/;
const SECRET = "tuna-qwen-small-k3j9-serverless-secrets";
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

/** A stand-in `modal` module: every attribute, call and decorator is a no-op that returns the decorated function. */
const MODAL_STUB = `class _Any:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k):
        return a[0] if len(a) == 1 and callable(a[0]) and not k else self
    def __getattr__(self, name): return _Any()
def __getattr__(name): return _Any()
`;

/**
 * Runs the rendered app's \`serve()\` with the stub \`modal\` and a recording \`subprocess.Popen\`, with
 * VLLM_API_KEY set to \`key\` (or unset): the argv the container would start, or the error it raises.
 */
function runServe(source: string, key: string | null): { argv?: string[]; error?: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "tuna-modal-serve-"));
  try {
    writeFileSync(path.join(dir, "modal.py"), MODAL_STUB);
    writeFileSync(path.join(dir, "app.py"), source);
    const script = [
      "import json, os, subprocess, sys",
      "sys.path.insert(0, sys.argv[1])",
      "seen = []",
      "subprocess.Popen = lambda argv: seen.append(argv)",
      "ns = {}",
      "exec(open(os.path.join(sys.argv[1], 'app.py')).read(), ns)",
      "try:\n    ns['serve']()\n    print(json.dumps({'argv': seen[0]}))\nexcept RuntimeError as e:\n    print(json.dumps({'error': str(e)}))",
    ].join("\n");
    const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
    if (key !== null) env.VLLM_API_KEY = key;
    return JSON.parse(execFileSync("python3", ["-c", script, dir], { env: env as NodeJS.ProcessEnv }).toString()) as { argv?: string[]; error?: string };
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
    if not os.environ.get(UPSTREAM_KEY_ENV):
        raise RuntimeError(f"{UPSTREAM_KEY_ENV} is not set: refusing to serve without the upstream key")
    argv = ENGINE_ARGV + ([ENGINE_KEY_FLAG, os.environ[UPSTREAM_KEY_ENV]] if ENGINE_KEY_FLAG else [])
    subprocess.Popen(argv)
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
    assert.ok(app.includes(`UPSTREAM_KEY_ENV = "VLLM_API_KEY"\nENGINE_KEY_FLAG = ""\n`), "vLLM reads the key from its env: no flag");
    assert.ok(app.endsWith(EXPECTED_FUNCTION), app);
    assert.deepEqual(plan.request.secretKeys, ["HF_TOKEN", "VLLM_API_KEY"]);
    assert.deepEqual(plan.gpu, { catalogName: "T4", providerGpuId: "T4", count: 1 });
    assert.deepEqual(plan.secretEnv, ["HF_TOKEN"]);
    assert.ok(!app.includes("HF_TOKEN"), "the secret value or env is not in the file");
    assert.ok(plan.notes.includes("T4 is Turing: --dtype half"));
    assert.ok(plan.notes.some((n) => n.includes("upstream key") && n.includes("/health stays open")));
    assert.ok(!plan.notes.some((n) => /public|anyone/i.test(n)));
  });

  test("upstream key: the secret is attached without workload secrets; SGLang gets --api-key from the env at start; the name and flag are reserved", () => {
    const plain = planModal(makeTestSpec());
    assert.ok(plain.files["app.py"].includes(`SECRET_NAMES = ["${SECRET}"]\n`));
    assert.equal(plain.request.secret, SECRET);
    assert.deepEqual(plain.secretEnv, [], "the key is not a vault secret");
    const sglang = planModal(makeTestSpec({ engine: { kind: "sglang" } })).files["app.py"];
    assert.ok(sglang.includes(`ENGINE_KEY_FLAG = "--api-key"\n`));
    assert.ok(!/ENGINE_ARGV = .*--api-key/.test(sglang), "the flag's value is read from the env at start, not rendered");
    assert.throws(() => planModal(makeTestSpec({ secretNames: ["HF_TOKEN", "VLLM_API_KEY"] })), /VLLM_API_KEY is reserved/);
    assert.throws(() => planModal(makeTestSpec({ engine: { kind: "vllm", extraArgs: ["--api-key=abc"] } })), /--api-key is set by Tuna/);
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
    for (const line of ['gpu="A10:2"', "scaledown_window=300", "min_containers=1", "max_containers=4", 'region="us-east",', "max_inputs=8", "startup_timeout=900", `SECRET_NAMES = ["${SECRET}"]`]) {
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

  test("serve() starts vLLM with the key only in its env, SGLang with --api-key from the env, and nothing without a key", { skip: !hasPython() && "python3 not available" }, () => {
    const key = "tuna_up_test-key-value";
    const vllm = planModal(makeTestSpec()).files["app.py"];
    assert.deepEqual(runServe(vllm, key).argv, buildEngineArgs(validateSpec(makeTestSpec())));
    const sglangSpec = makeTestSpec({ engine: { kind: "sglang" } });
    const sglang = runServe(planModal(sglangSpec).files["app.py"], key).argv ?? [];
    assert.deepEqual(sglang, [...buildEngineArgs(validateSpec(sglangSpec)), "--api-key", key]);
    assert.deepEqual(runServe(vllm, null), { error: "VLLM_API_KEY is not set: refusing to serve without the upstream key" });
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
    assert.deepEqual(await modalProvider.preflight(plan, creds, ctx), [{ level: "info", code: "credentials_accepted", message: "Modal accepted the credentials." }]);
    assert.deepEqual((await modalProvider.preflight(plan, { tokenId: fake.tokenId, tokenSecret: fake.tokenSecret }, ctx)).map((f) => f.code), ["credentials_accepted", "missing_secret"]);
  });

  test("deploy → status → destroy with exact CLI args and env; destroy twice succeeds", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const comp = await modalProvider.deploy(plan, creds, ctx);
    const app = "tuna-qwen-small-k3j9-serverless";
    const key = fake.secrets.get(`${app}-secrets`)?.VLLM_API_KEY ?? "";
    assert.match(key, KEY_SHAPE);
    assert.deepEqual(comp, {
      provider: "modal",
      kind: "serverless",
      endpointUrl: `https://tuna-team--${app}-serve.modal.run`,
      upstreamHeaders: { authorization: `Bearer ${key}` },
      externalIds: { app, webUrl: `https://tuna-team--${app}-serve.modal.run` },
    });
    assert.deepEqual(fake.commandLines(), [`modal secret create ${app}-secrets --from-json secret.json --force`, "modal deploy app.py"]);
    for (const c of fake.calls) assert.deepEqual(c.env, { MODAL_TOKEN_ID: fake.tokenId, MODAL_TOKEN_SECRET: fake.tokenSecret });
    assert.equal(fake.calls[1].files["app.py"], plan.files["app.py"]);
    assert.deepEqual(fake.secrets.get(`${app}-secrets`), { HF_TOKEN: HF, VLLM_API_KEY: key });
    assert.equal(fake.apps.get(app)?.env.VLLM_API_KEY, key, "the deployed app's containers hold the key the router got");
    for (const secret of [HF, key]) {
      assert.ok(!fake.calls.some((c) => c.args.join(" ").includes(secret) || Object.values(c.env).join(" ").includes(secret)), "secrets are never CLI arguments or CLI env");
    }
    assert.ok(!fake.calls[1].files["app.py"].includes(key) && !JSON.stringify(plan).includes(key), "the key is in no rendered file or plan");

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

    // Redeploy (a retried step or a relaunch) updates the same app with a new key, and returns that key.
    const again = await modalProvider.deploy(plan, creds, ctx);
    assert.equal(fake.apps.size, 1);
    const newKey = fake.apps.get(app)?.env.VLLM_API_KEY ?? "";
    assert.match(newKey, KEY_SHAPE);
    assert.notEqual(newKey, key);
    assert.deepEqual(again.upstreamHeaders, { authorization: `Bearer ${newKey}` });
    assert.deepEqual(fake.secrets.get(`${app}-secrets`), { HF_TOKEN: HF, VLLM_API_KEY: newKey });

    // Given the key the router holds (the lifecycle passes it on re-runs and relaunches), that key is pushed again.
    const kept = await modalProvider.deploy(plan, creds, { ...ctx, upstreamKey: newKey });
    assert.deepEqual(kept.upstreamHeaders, again.upstreamHeaders);
    assert.equal(fake.apps.get(app)?.env.VLLM_API_KEY, newKey);
    assert.deepEqual(fake.secrets.get(`${app}-secrets`), { HF_TOKEN: HF, VLLM_API_KEY: newKey });

    fake.calls.length = 0;
    await modalProvider.destroy(ref, creds, ctx);
    await modalProvider.destroy(ref, creds, ctx);
    assert.deepEqual(fake.commandLines(), [`modal app stop ${app} --yes`, "modal app list --json", `modal app stop ${app} --yes`, "modal app list --json"]);
    assert.equal((await modalProvider.status(ref, creds, ctx)).state, "gone");
    await modalProvider.cleanupStorage(ref, creds, ctx);
    await modalProvider.cleanupStorage(ref, creds, ctx);
    assert.deepEqual([fake.liveApps().length, fake.secrets.size, fake.volumes.size], [0, 0, 0]);
  });

  test("every deployment gets its own key, even without workload secrets", async () => {
    const a = await modalProvider.deploy(planModal(makeTestSpec()), { tokenId: fake.tokenId, tokenSecret: fake.tokenSecret }, ctx);
    const b = await modalProvider.deploy(planModal(makeTestSpec({ name: "tuna-other-model-x1y2" })), creds, ctx);
    assert.deepEqual(Object.keys(fake.secrets.get(SECRET) ?? {}), ["VLLM_API_KEY"]);
    const keyA = fake.apps.get("tuna-qwen-small-k3j9-serverless")?.env.VLLM_API_KEY ?? "";
    const keyB = fake.apps.get("tuna-other-model-x1y2-serverless")?.env.VLLM_API_KEY ?? "";
    assert.match(keyA, KEY_SHAPE);
    assert.match(keyB, KEY_SHAPE);
    assert.notEqual(keyA, keyB);
    assert.deepEqual([a.upstreamHeaders, b.upstreamHeaders], [{ authorization: `Bearer ${keyA}` }, { authorization: `Bearer ${keyB}` }]);
  });

  test("a failing secret create or deploy that echoes the key reports the error without it", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    const echoed: string[] = [];
    // The CLI prints the secret file it was given: every value in it must be scrubbed.
    fake.fail("secret create", 1, () => {
      const call = fake.calls.at(-1);
      const file = readFileSync(path.join(call?.cwd ?? ".", "secret.json"), "utf8");
      echoed.push((JSON.parse(file) as Record<string, string>).VLLM_API_KEY);
      return `Error: invalid secret payload ${file}`;
    });
    const first = await modalProvider.deploy(plan, creds, ctx).then(() => null, (e: unknown) => e);
    fake.fail("deploy", 1, () => {
      echoed.push(fake.secrets.get(SECRET)?.VLLM_API_KEY ?? "");
      return `Error: container exited: env VLLM_API_KEY=${echoed[1]}`;
    });
    const second = await modalProvider.deploy(plan, creds, ctx).then(() => null, (e: unknown) => e);
    assert.equal(echoed.length, 2);
    for (const k of echoed) assert.match(k, KEY_SHAPE);
    for (const [err, what] of [[first, /modal secret create failed \(exit 1\): Error: invalid secret payload/], [second, /modal deploy failed \(exit 1\): Error: container exited: env VLLM_API_KEY=\[redacted\]/]] as const) {
      assert.ok(err instanceof ProviderError, String(err));
      assert.match(err.message, what);
      for (const secret of [...echoed, HF]) assert.ok(!err.message.includes(secret), `the error leaks a secret: ${err.message}`);
    }
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

  test("destroy: a CLI usage error or a wrong environment is a failure, not \"already gone\", and the app is left running", async () => {
    const plan = planModal(makeTestSpec());
    await modalProvider.deploy(plan, creds, ctx);
    const app = "tuna-qwen-small-k3j9-serverless";
    const ref = refFromPlan(plan, { app });

    // A CLI version whose `app stop` has no --yes answers with click's usage error (exit 2, "No such option").
    fake.removeOption("app stop", "--yes");
    await assertProviderError(modalProvider.destroy(ref, creds, ctx), { code: "failed", message: /modal app stop failed \(exit 2\):.*No such option: --yes/ });
    assert.equal(fake.apps.get(app)?.state, "deployed");
    fake.missingOptions.clear();

    // "not found" about something else (the environment) does not name the app.
    fake.fail("app stop", 1, "Error: Environment 'prod' not found\n");
    await assertProviderError(modalProvider.destroy(ref, creds, ctx), { code: "failed", message: /Environment 'prod' not found/ });
    assert.equal(fake.apps.get(app)?.state, "deployed");
  });

  test("destroy: a stop that claims success while the app still runs is caught by the listing; a truly gone app resolves", async () => {
    const plan = planModal(makeTestSpec());
    await modalProvider.deploy(plan, creds, ctx);
    const app = "tuna-qwen-small-k3j9-serverless";
    const ref = refFromPlan(plan, { app });
    fake.fail("app stop", 1, `Error: Could not find a deployed app named '${app}'\n`);
    await assertProviderError(modalProvider.destroy(ref, creds, ctx), { code: "failed", message: /still shows the app deployed/ });
    await modalProvider.destroy(ref, creds, ctx);
    assert.equal(fake.apps.get(app)?.state, "stopped");
    // Gone: the CLI names this app as not found and the listing agrees.
    await modalProvider.destroy(ref, creds, ctx);
    await modalProvider.destroy(refFromPlan(planModal(makeTestSpec({ name: "tuna-never-deployed-a1b2" }))), creds, ctx);
  });

  test("cleanupStorage: usage errors fail and keep the secret; a false \"not found\" is caught by the listing", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    await modalProvider.deploy(plan, creds, ctx);
    const ref = refFromPlan(plan);
    fake.volumes.add("tuna-qwen-small-k3j9-serverless-hf-cache");

    // A CLI version without `modal secret delete`: click says "No such command 'delete'" (exit 2).
    fake.missingCommands.add("secret delete");
    await assertProviderError(modalProvider.cleanupStorage(ref, creds, ctx), { code: "failed", message: /modal secret delete failed \(exit 2\):.*No such command 'delete'/ });
    assert.deepEqual(fake.secrets.get(SECRET), { HF_TOKEN: HF, VLLM_API_KEY: fake.secrets.get(SECRET)?.VLLM_API_KEY });
    fake.missingCommands.clear();

    fake.removeOption("secret delete", "--yes");
    await assertProviderError(modalProvider.cleanupStorage(ref, creds, ctx), { code: "failed", message: /No such option: --yes/, hides: [HF] });
    assert.ok(fake.secrets.has(SECRET));
    fake.missingOptions.clear();

    // A "not found" for this secret that is not true: the listing still shows it.
    fake.fail("secret delete", 1, `Error: Secret '${SECRET}' not found\n`);
    await assertProviderError(modalProvider.cleanupStorage(ref, creds, ctx), { code: "failed", message: new RegExp(`still shows ${SECRET}`) });
    assert.ok(fake.secrets.has(SECRET));
  });

  test("cleanupStorage: deleting what is there, then again when it is gone, resolves", async () => {
    const plan = planModal(makeTestSpec({ secretNames: ["HF_TOKEN"] }));
    await modalProvider.deploy(plan, creds, ctx);
    const ref = refFromPlan(plan);
    fake.volumes.add("tuna-qwen-small-k3j9-serverless-hf-cache");
    fake.volumes.add("tuna-qwen-small-k3j9-serverless-engine-cache");
    fake.calls.length = 0;
    await modalProvider.cleanupStorage(ref, creds, ctx);
    assert.deepEqual([fake.secrets.size, fake.volumes.size], [0, 0]);
    assert.deepEqual(fake.commandLines(), [
      "modal volume delete tuna-qwen-small-k3j9-serverless-hf-cache --yes",
      "modal volume delete tuna-qwen-small-k3j9-serverless-engine-cache --yes",
      `modal secret delete ${SECRET} --yes`,
      "modal volume list --json",
      "modal secret list --json",
    ]);
    await modalProvider.cleanupStorage(ref, creds, ctx);
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
