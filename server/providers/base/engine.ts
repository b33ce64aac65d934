import { z } from "zod";
import { findGpu, gpuNames, needsHalfDtype } from "../../catalog/gpus";
import { ProviderError } from "./errors";
import { renderTemplate } from "./templates";
import type { DeploymentSpec, ServerlessScaling, SpotScaling } from "./types";

/**
 * The inference engine command every provider runs (vLLM or SGLang). One builder for all providers so that
 * Turing GPUs (T4) always get `--dtype half` — the earlier tool forgot it on most providers and T4 then
 * failed to boot (no bfloat16 on Turing).
 *
 * `buildEngineArgs` gives argv (for container `args` / JSON payloads); `engineCommandShell` gives one
 * shell-quoted line rendered from `templates/shared/<engine>-command.txt` (for YAML `run:` blocks, scripts).
 * Both come from the same pieces, so they always agree.
 */

/**
 * Flags Tuna sets itself; extraArgs may not override them. `--api-key` too: upstream auth belongs to Tuna
 * (`upstream-key.ts`); a key in extraArgs would sit in plans and process lists and lock the router out.
 */
const RESERVED_FLAGS = ["--host", "--port", "--served-model-name", "--model", "--model-path", "--api-key"];

/**
 * extraArgs are inserted into shell lines, YAML and JSON; only a conservative alphabet is allowed, so no
 * quoting, globbing, substitution or line break can reach a shell even if a template forgets a filter.
 */
const SAFE_ARG = /^[A-Za-z0-9_.,:/=+@%-]+$/;

/** C0/C1 controls (incl. newline, DEL) and the Unicode line/paragraph separators. */
function isControlChar(c: string): boolean {
  const n = c.codePointAt(0) ?? 0;
  return n < 0x20 || (n >= 0x7f && n <= 0x9f) || n === 0x2028 || n === 0x2029;
}

export function hasControlChars(s: string): boolean {
  return [...s].some(isControlChar);
}

/** Why an extra engine argument is rejected, or null when it is fine. */
export function extraArgProblem(arg: string): string | null {
  if (arg.length === 0) return "empty argument";
  if (arg.length > 256) return "longer than 256 characters";
  if (!SAFE_ARG.test(arg)) {
    const bad = [...arg].find((c) => !SAFE_ARG.test(c)) ?? "";
    const shown = isControlChar(bad) ? `control character U+${bad.charCodeAt(0).toString(16).padStart(4, "0")}` : `"${bad}"`;
    return `contains ${shown}; only letters, digits and _ . , : / = + @ % - are allowed`;
  }
  const flag = arg.split("=")[0];
  if (RESERVED_FLAGS.includes(flag)) return `${flag} is set by Tuna`;
  return null;
}

export function validateExtraArgs(args: readonly string[]): void {
  const problems = args.map((a, i) => [i, extraArgProblem(a)] as const).filter(([, p]) => p !== null);
  if (problems.length) {
    throw new ProviderError({
      provider: "tuna",
      code: "validation",
      message: `invalid engine extraArgs: ${problems.map(([i, p]) => `[${i}] ${p}`).join("; ")}`,
    });
  }
}

interface EngineParts {
  template: string;
  /** Flags after the fixed part of the template (host, port, served name). */
  optional: string[];
  notes: string[];
}

function engineParts(spec: DeploymentSpec): EngineParts {
  const e = spec.engine;
  validateExtraArgs(e.extraArgs ?? []);
  const notes: string[] = [];
  const vllm = e.kind === "vllm";
  const opt: string[] = [];
  if (e.maxModelLen !== undefined) opt.push(vllm ? "--max-model-len" : "--context-length", String(e.maxModelLen));
  // Without an explicit TP size, shard over every GPU of the replica.
  const tp = e.tensorParallelSize ?? (spec.gpuCount > 1 ? spec.gpuCount : undefined);
  if (tp !== undefined) opt.push(vllm ? "--tensor-parallel-size" : "--tp-size", String(tp));
  if (e.gpuMemoryUtilization !== undefined) opt.push(vllm ? "--gpu-memory-utilization" : "--mem-fraction-static", String(e.gpuMemoryUtilization));
  if (e.quantization) opt.push("--quantization", e.quantization);
  if (needsHalfDtype(spec.gpu)) {
    opt.push("--dtype", "half");
    notes.push(
      e.dtype && e.dtype !== "half" && e.dtype !== "float16" && e.dtype !== "auto"
        ? `${spec.gpu} is Turing: --dtype half (requested ${e.dtype} is not supported there)`
        : `${spec.gpu} is Turing: --dtype half`,
    );
  } else if (e.dtype && e.dtype !== "auto") {
    opt.push("--dtype", e.dtype);
  }
  opt.push(...(e.extraArgs ?? []));
  return { template: vllm ? "shared/vllm-command.txt" : "shared/sglang-command.txt", optional: opt, notes };
}

/** argv of the engine server, e.g. `["vllm", "serve", "Qwen/Qwen3-0.6B", "--host", "0.0.0.0", ...]`. */
export function buildEngineArgs(spec: DeploymentSpec): string[] {
  const { optional } = engineParts(spec);
  const served = ["--host", "0.0.0.0", "--port", String(spec.port), "--served-model-name", spec.servedModelName];
  const head = spec.engine.kind === "vllm" ? ["vllm", "serve", spec.model] : ["python3", "-m", "sglang.launch_server", "--model-path", spec.model];
  return [...head, ...served, ...optional];
}

/** Notes for `Plan.notes` explaining engine flags Tuna forced (e.g. T4 → --dtype half). */
export function engineNotes(spec: DeploymentSpec): string[] {
  return engineParts(spec).notes;
}

/** POSIX single-quoted word; bare when it only holds characters no shell treats specially. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_.,:/=+@%-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The engine command as one shell-safe line (no trailing newline). */
export function engineCommandShell(spec: DeploymentSpec): string {
  const { template, optional } = engineParts(spec);
  const rendered = renderTemplate(template, {
    model: spec.model,
    port: spec.port,
    served_model_name: spec.servedModelName,
    // Rendered here, word by word, from validated values: safe to insert raw.
    optional_args: optional.map((a) => ` ${shellQuote(a)}`).join(""),
  });
  return rendered.replace(/\s+$/, "");
}

// ---------------------------------------------------------------------------------------------------------
// Scaling defaults (the knobs of the earlier tool, in Tuna's names).

export function defaultScaling(opts: { scaleToZero?: boolean } = {}): { serverless: ServerlessScaling; spot: SpotScaling } {
  const scaleToZero = opts.scaleToZero ?? true;
  return {
    serverless: {
      minWorkers: scaleToZero ? 0 : 1,
      maxWorkers: 1,
      concurrency: 32,
      idleTimeoutS: scaleToZero ? 60 : 300,
      coldStartTimeoutS: 600,
    },
    spot: {
      minReplicas: scaleToZero ? 0 : 1,
      maxReplicas: 5,
      targetQpsPerReplica: 10,
      upscaleDelayS: 5,
      downscaleDelayS: 60,
      readinessInitialDelayS: 1200,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Spec validation.

const intIn = (min: number, max: number) => z.number().int().min(min).max(max);
const noControl = (s: string) => !hasControlChars(s);
const LINE_BREAKS = { error: "must not contain line breaks or control characters" };

const serverlessScalingSchema = z
  .object({
    minWorkers: intIn(0, 1000),
    maxWorkers: intIn(1, 1000),
    concurrency: intIn(1, 10_000),
    idleTimeoutS: intIn(0, 86_400),
    coldStartTimeoutS: intIn(1, 86_400),
  })
  .refine((s) => s.maxWorkers >= s.minWorkers, { error: "maxWorkers must be ≥ minWorkers", path: ["maxWorkers"] });

const spotScalingSchema = z
  .object({
    minReplicas: intIn(0, 1000),
    maxReplicas: intIn(1, 1000),
    targetQpsPerReplica: z.number().positive(),
    upscaleDelayS: intIn(0, 86_400),
    downscaleDelayS: intIn(0, 86_400),
    readinessInitialDelayS: intIn(0, 86_400),
  })
  .refine((s) => s.maxReplicas >= s.minReplicas, { error: "maxReplicas must be ≥ minReplicas", path: ["maxReplicas"] });

const engineSchema = z.object({
  kind: z.enum(["vllm", "sglang"]),
  maxModelLen: intIn(1, 10_000_000).optional(),
  dtype: z.enum(["auto", "half", "bfloat16", "float16"]).optional(),
  tensorParallelSize: intIn(1, 64).optional(),
  gpuMemoryUtilization: z.number().gt(0).max(1).optional(),
  quantization: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, { error: "must be a quantization method name such as awq or fp8" }).optional(),
  extraArgs: z
    .array(z.string())
    .max(64)
    .superRefine((args, ctx) => {
      args.forEach((a, i) => {
        const p = extraArgProblem(a);
        if (p) ctx.addIssue({ code: "custom", message: p, path: [i] });
      });
    })
    .optional(),
});

export const deploymentSpecSchema = z.object({
  deploymentId: z.string().min(1).max(100).refine(noControl, LINE_BREAKS),
  teamId: z.string().min(1).max(100).refine(noControl, LINE_BREAKS),
  name: z
    .string()
    .max(40)
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, { error: "must be lowercase letters, digits and dashes, not starting or ending with a dash" }),
  // The model id reaches shells and YAML only through escaping filters; still, no line breaks or controls.
  model: z.string().min(1).max(256).refine(noControl, LINE_BREAKS),
  servedModelName: z.string().min(1).max(256).refine(noControl, LINE_BREAKS),
  gpu: z.string().transform((g, ctx) => {
    const info = findGpu(g);
    if (!info) {
      ctx.addIssue({ code: "custom", message: `unknown GPU "${g}" (known: ${gpuNames().join(", ")})` });
      return z.NEVER;
    }
    return info.name;
  }),
  gpuCount: intIn(1, 16),
  region: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: "must be a region name such as us-east-1" }).optional(),
  spot: z
    .object({
      clouds: z.array(z.enum(["aws", "gcp", "azure"])).min(1),
      regions: z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)).optional(),
    })
    .optional(),
  engine: engineSchema,
  serverlessScaling: serverlessScalingSchema,
  spotScaling: spotScalingSchema,
  port: intIn(1, 65_535),
  secretNames: z.array(z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, { error: "must be an env var name like HF_TOKEN" })),
});

export class SpecValidationError extends ProviderError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super({ provider: "tuna", code: "validation", message: `invalid deployment spec: ${issues.join("; ")}` });
    this.name = "SpecValidationError";
    this.issues = issues;
  }
}

/** Validates a spec; returns it with the GPU normalised to its catalog key, or throws `SpecValidationError`. */
export function validateSpec(spec: unknown): DeploymentSpec {
  const r = deploymentSpecSchema.safeParse(spec);
  if (r.success) return r.data as DeploymentSpec;
  throw new SpecValidationError(
    r.error.issues.map((i) => `${i.path.length ? i.path.map(String).join(".") : "(spec)"}: ${i.message}`),
  );
}
