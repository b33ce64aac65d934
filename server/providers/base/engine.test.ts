import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  buildEngineArgs,
  defaultScaling,
  engineCommandShell,
  engineNotes,
  extraArgProblem,
  SpecValidationError,
  validateSpec,
} from "./engine";
import { ProviderError } from "./errors";
import { renderTemplate, renderTemplateString, TemplateError } from "./templates";
import { makeTestSpec } from "./testing";

/**
 * Splits a line the way a POSIX shell would for the quoting we emit (bare words, '…', \x), and fails on
 * any unquoted character a shell would interpret — so a passing parse proves nothing can be injected.
 */
function shellSplit(line: string): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === " ") {
      if (cur !== null) words.push(cur);
      cur = null;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated quote at ${i}`);
      cur = (cur ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === "\\") {
      cur = (cur ?? "") + line[++i];
    } else if (/[A-Za-z0-9_.,:/=+@%-]/.test(c)) {
      cur = (cur ?? "") + c;
    } else {
      throw new Error(`unquoted shell metacharacter ${JSON.stringify(c)} at ${i} in ${line}`);
    }
  }
  if (cur !== null) words.push(cur);
  return words;
}

const EVIL = [`x"; rm -rf / #`, "a\nb: c\n- d", "it's $(whoami) `id`", "{{ port | int }}", "a\\b\t\u2028c"];

describe("buildEngineArgs / engineCommandShell", () => {
  test("vLLM argv for a plain L4 spec, without --dtype", () => {
    const spec = makeTestSpec();
    assert.deepEqual(buildEngineArgs(spec), [
      "vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", "--port", "8000", "--served-model-name", "qwen-small",
      "--max-model-len", "4096",
    ]);
    assert.ok(!buildEngineArgs(spec).includes("--dtype"));
    assert.equal(
      engineCommandShell(spec),
      "vllm serve 'Qwen/Qwen3-0.6B' --host 0.0.0.0 --port 8000 --served-model-name 'qwen-small' --max-model-len 4096",
    );
    assert.deepEqual(engineNotes(spec), []);
  });

  test("T4 always gets --dtype half, for both engines, even if another dtype was asked for", () => {
    for (const kind of ["vllm", "sglang"] as const) {
      for (const dtype of [undefined, "auto", "bfloat16"] as const) {
        const spec = makeTestSpec({ gpu: "T4", engine: { kind, dtype } });
        const argv = buildEngineArgs(spec);
        const i = argv.indexOf("--dtype");
        assert.ok(i > 0, `${kind}/${dtype}`);
        assert.equal(argv[i + 1], "half");
        assert.equal(argv.filter((a) => a === "--dtype").length, 1);
        assert.match(engineCommandShell(spec), / --dtype half/);
        assert.match(engineNotes(spec)[0], /T4 is Turing: --dtype half/);
      }
    }
    // L4 keeps an explicit non-auto dtype, and has none by default.
    assert.ok(buildEngineArgs(makeTestSpec({ engine: { kind: "vllm", dtype: "bfloat16" } })).join(" ").endsWith("--dtype bfloat16"));
    assert.ok(!engineCommandShell(makeTestSpec({ engine: { kind: "sglang" } })).includes("--dtype"));
  });

  test("all optional vLLM flags, multi-GPU TP default, extra args last", () => {
    const spec = makeTestSpec({
      gpu: "A100-80GB",
      gpuCount: 4,
      engine: { kind: "vllm", maxModelLen: 8192, gpuMemoryUtilization: 0.9, quantization: "awq", extraArgs: ["--enforce-eager", "--max-num-seqs=64"] },
    });
    assert.deepEqual(buildEngineArgs(spec).slice(9), [
      "--max-model-len", "8192", "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.9", "--quantization", "awq",
      "--enforce-eager", "--max-num-seqs=64",
    ]);
  });

  test("SGLang equivalent flags", () => {
    const spec = makeTestSpec({ engine: { kind: "sglang", maxModelLen: 2048, tensorParallelSize: 2, gpuMemoryUtilization: 0.8 } });
    assert.deepEqual(buildEngineArgs(spec), [
      "python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", "--port", "8000",
      "--served-model-name", "qwen-small", "--context-length", "2048", "--tp-size", "2", "--mem-fraction-static", "0.8",
    ]);
  });

  test("the shell line always splits back into exactly the argv, whatever the model name", () => {
    for (const model of EVIL) {
      for (const kind of ["vllm", "sglang"] as const) {
        const spec = makeTestSpec({ model, servedModelName: model, gpu: "T4", engine: { kind, extraArgs: ["--seed=1"] } });
        const line = engineCommandShell(spec);
        assert.ok(!line.includes("\n") || line.includes("'"), "a newline may only appear inside quotes");
        assert.deepEqual(shellSplit(line), buildEngineArgs(spec), JSON.stringify(model));
      }
    }
    assert.equal(
      engineCommandShell(makeTestSpec({ model: `x"; rm -rf / #`, servedModelName: "it's" })),
      `vllm serve 'x"; rm -rf / #' --host 0.0.0.0 --port 8000 --served-model-name 'it'\\''s' --max-model-len 4096`,
    );
  });

  test("extraArgs with shell metacharacters, newlines or reserved flags are rejected", () => {
    for (const bad of ["--x;rm", "--a\n--b", "$(id)", "`id`", "--x='y'", "a b", "--x|y", "--x>f", "", "--port=1", "--served-model-name"]) {
      assert.throws(
        () => buildEngineArgs(makeTestSpec({ engine: { kind: "vllm", extraArgs: ["--ok", bad] } })),
        (e: unknown) => e instanceof ProviderError && e.code === "validation" && /invalid engine extraArgs: \[1\]/.test(e.message),
        JSON.stringify(bad),
      );
    }
    assert.match(extraArgProblem("--a\n--b") ?? "", /control character U\+000a/);
    assert.match(extraArgProblem("--port=9") ?? "", /--port is set by Tuna/);
    assert.match(extraArgProblem("--api-key=k") ?? "", /--api-key is set by Tuna/, "upstream auth is Tuna's: a key here would lock the router out");
    assert.equal(extraArgProblem("--kv-cache-dtype=fp8_e5m2"), null);
  });
});

describe("template filters keep hostile values inert", () => {
  const model = `x"; rm -rf / #`;
  test("yaml", () => {
    assert.equal(renderTemplateString("model: {{ m | yaml }}\n", { m: model }), `model: "x\\"; rm -rf / #"\n`);
    assert.equal(renderTemplateString("model: {{ m | yaml }}", { m: "a\nb: c\n- d" }), `model: "a\\nb: c\\n- d"`);
    assert.equal(renderTemplateString("m: {{ m | yaml }}", { m: "{{ port | int }}" }), `m: "{{ port | int }}"`);
    // YAML 1.1 (PyYAML) treats U+2028/U+2029/NEL as line breaks and DEL as non-printable: all escaped.
    assert.equal(renderTemplateString("m: {{ m | yaml }}", { m: "a\u2028b\u0085c\u007fd" }), `m: "a\\u2028b\\u0085c\\u007Fd"`);
  });
  test("shell", () => {
    assert.equal(renderTemplateString("echo {{ m | shell }}", { m: model }), `echo 'x"; rm -rf / #'`);
    assert.equal(renderTemplateString("echo {{ m | shell }}", { m: "it's" }), `echo 'it'\\''s'`);
    assert.deepEqual(shellSplit(renderTemplateString("echo {{ m | shell }}", { m: "a\nb'c" })), ["echo", "a\nb'c"]);
  });
  test("py, toml, json", () => {
    assert.equal(renderTemplateString("MODEL = {{ m | py }}", { m: `x"; import os #\n'''` }), `MODEL = "x\\"; import os #\\n'''"`);
    // TOML forbids a raw DEL; it must come out escaped.
    assert.equal(renderTemplateString("model = {{ m | toml }}", { m: "a\"\nb\u007f" }), `model = "a\\"\\nb\\u007F"`);
    assert.equal(renderTemplateString("{{ v | json }}", { v: ["a\"", "}}"] }), `["a\\"","}}"]`);
  });
  test("int rejects anything but an integer", () => {
    assert.equal(renderTemplateString("port: {{ p | int }}", { p: 8000 }), "port: 8000");
    assert.throws(() => renderTemplateString("port: {{ p | int }}", { p: "8000; rm -rf /" }), /p must be an integer/);
  });
});

describe("renderTemplateString is strict", () => {
  test("missing variables", () => {
    assert.throws(() => renderTemplateString("{{ a | yaml }} {{ b | int }}", { a: "x" }, "t.yaml"), (e: unknown) => e instanceof TemplateError && e.message === "t.yaml: missing variable(s) b");
  });
  test("unknown variables", () => {
    assert.throws(() => renderTemplateString("{{ a | yaml }}", { a: "x", extra: "y" }, "t.yaml"), /t\.yaml: unknown variable\(s\) extra/);
  });
  test("unknown filter and malformed placeholders", () => {
    assert.throws(() => renderTemplateString("{{ a | html }}", { a: "x" }), /unknown filter "html"/);
    assert.throws(() => renderTemplateString("{{ a }}", {}), /malformed placeholder \{\{ a \}\}/);
  });
  test("the shared engine templates render with exactly the documented variables", () => {
    const vars = { model: "m", port: 1, served_model_name: "s", optional_args: "" };
    assert.equal(renderTemplate("shared/vllm-command.txt", vars), "vllm serve 'm' --host 0.0.0.0 --port 1 --served-model-name 's'\n");
    assert.throws(() => renderTemplate("shared/sglang-command.txt", { ...vars, gpu: "T4" }), /unknown variable\(s\) gpu/);
  });
});

describe("defaultScaling and validateSpec", () => {
  test("defaults are the knobs of the earlier tool", () => {
    assert.deepEqual(defaultScaling(), {
      serverless: { minWorkers: 0, maxWorkers: 1, concurrency: 32, idleTimeoutS: 60, coldStartTimeoutS: 600 },
      spot: { minReplicas: 0, maxReplicas: 5, targetQpsPerReplica: 10, upscaleDelayS: 5, downscaleDelayS: 60, readinessInitialDelayS: 1200 },
    });
    const warm = defaultScaling({ scaleToZero: false });
    assert.equal(warm.serverless.minWorkers, 1);
    assert.equal(warm.serverless.idleTimeoutS, 300);
    assert.equal(warm.spot.minReplicas, 1);
  });

  test("a valid spec passes, with the GPU alias normalised", () => {
    const spec = validateSpec(makeTestSpec({ gpu: "a100" }));
    assert.equal(spec.gpu, "A100-80GB");
    assert.equal(validateSpec(makeTestSpec({ model: `x"; rm -rf / #` })).model, `x"; rm -rf / #`);
  });

  test("errors name every bad field in plain words", () => {
    const bad = {
      ...makeTestSpec({ name: "Bad_Name", gpu: "V100", model: "a\nb", port: 70000 }),
      engine: { kind: "vllm", extraArgs: ["--ok", "--x;y"] },
      serverlessScaling: { ...defaultScaling().serverless, minWorkers: 3, maxWorkers: 2 },
    };
    try {
      validateSpec(bad);
      assert.fail("should throw");
    } catch (e) {
      assert.ok(e instanceof SpecValidationError);
      assert.equal(e.code, "validation");
      const text = e.issues.join("\n");
      assert.match(text, /^name: must be lowercase letters, digits and dashes/m);
      assert.match(text, /^model: must not contain line breaks or control characters$/m);
      assert.match(text, /^gpu: unknown GPU "V100" \(known: T4,/m);
      assert.match(text, /^port: /m);
      assert.match(text, /^engine\.extraArgs\.1: contains ";"/m);
      assert.match(text, /^serverlessScaling\.maxWorkers: maxWorkers must be ≥ minWorkers$/m);
      assert.match(e.message, /^tuna: invalid deployment spec: /);
    }
    assert.throws(() => validateSpec({}), /deploymentId: /);
  });
});
