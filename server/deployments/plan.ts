import { z } from "zod";
import {
  CatalogError,
  cheapestServerless,
  cloudPrice,
  estimatePlanCostPerHour,
  resolveGpu,
  type PlanCostEstimate,
  type PlanCostSpotInput,
  type SpotCloud,
} from "../catalog";
import {
  defaultScaling,
  getProvider,
  hasProvider,
  ProviderError,
  ProviderRegistryError,
  validateSpec,
  type DeploymentSpec,
  type Plan,
  type Provider,
} from "../providers";
import { DomainError } from "../lib/errors";

/**
 * What a user submits (form, API). Everything is validated here, against the catalog and the providers'
 * pure `plan`, before anything is written: a request that would fail at `plan` time never becomes a row.
 */
const scalingInt = z.number().int().min(0);

const MODEL_ID_EXAMPLE = "Use a Hugging Face model id such as Qwen/Qwen3-0.6B";
const MODEL_ID_SEGMENT = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const MODEL_NAME_MAX = 96;

/**
 * What is wrong with a model id, or null. Ids follow the Hugging Face Hub's rules for repo ids, which the
 * engines (`vllm serve <id>`, `sglang --model-path <id>`) download: an optional owner, one "/", a name of at
 * most 96 characters; letters, digits, "-", "_" and "."; no "-" or "." at either end of a part; no "--"
 * or ".." (the Hub reserves them) and no ".git" suffix. Local paths are not accepted: the workers run on a
 * provider's machines, where nothing of the requester's disk exists. The slug derived from the id relies
 * on this too (an id of emoji or CJK only would slugify to nothing).
 */
function modelIdProblem(id: string): string | null {
  const parts = id.split("/");
  if (parts.length > 2) return `${MODEL_ID_EXAMPLE}: an owner and a name with one "/" between them, not a path.`;
  if (parts.some((p) => p === "")) return `${MODEL_ID_EXAMPLE}: an owner and a name on either side of the "/".`;
  if (parts.some((p) => !MODEL_ID_SEGMENT.test(p))) {
    return `${MODEL_ID_EXAMPLE}: letters, digits, "-", "_" and "." only, not starting or ending with "-" or ".", and one "/" between owner and name.`;
  }
  if (/--|\.\./.test(id)) return `${MODEL_ID_EXAMPLE}: Hugging Face ids cannot contain "--" or "..".`;
  if (id.endsWith(".git")) return `${MODEL_ID_EXAMPLE}, without ".git".`;
  if (parts[parts.length - 1]!.length > MODEL_NAME_MAX) return `${MODEL_ID_EXAMPLE}: the name after the "/" is at most ${MODEL_NAME_MAX} characters.`;
  return null;
}

export const deploymentInputSchema = z.object({
  model: z
    .string()
    .trim()
    .min(1)
    .max(256)
    .superRefine((id, ctx) => {
      const problem = id ? modelIdProblem(id) : null; // empty: min(1) says so
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  servedModelName: z.string().trim().min(1).max(128).regex(/^[A-Za-z0-9._/:-]+$/, { error: "letters, digits and . _ / : - only" }).optional(),
  slug: z.string().trim().min(2).max(40).regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, { error: "lowercase letters, digits and dashes" }).optional(),
  mode: z.enum(["hybrid", "serverless", "spot"]),
  /** One GPU for both components, or separate ones below. */
  gpu: z.string().min(1).max(40).optional(),
  serverlessGpu: z.string().min(1).max(40).optional(),
  spotGpu: z.string().min(1).max(40).optional(),
  gpuCount: z.number().int().min(1).max(16).default(1),
  /** Serverless provider name, or "cheapest". Spot-only: the spot provider (default skyserve). */
  provider: z.string().min(1).max(40).default("cheapest"),
  /** Spot provider (default: local-spot with the local simulator, skyserve otherwise). */
  spotProvider: z.string().min(1).max(40).optional(),
  spotClouds: z.array(z.enum(["aws", "gcp", "azure"])).max(3).default([]),
  spotRegions: z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)).max(20).optional(),
  region: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  engine: z
    .object({
      kind: z.enum(["vllm", "sglang"]).default("vllm"),
      maxModelLen: z.number().int().positive().optional(),
      dtype: z.enum(["auto", "half", "bfloat16", "float16"]).optional(),
      tensorParallelSize: z.number().int().positive().optional(),
      gpuMemoryUtilization: z.number().positive().max(1).optional(),
      quantization: z.string().max(40).optional(),
      extraArgs: z.array(z.string().max(200)).max(64).optional(),
    })
    .optional(),
  serverlessScaling: z
    .object({ minWorkers: scalingInt, maxWorkers: scalingInt, concurrency: scalingInt, idleTimeoutS: scalingInt, coldStartTimeoutS: scalingInt })
    .partial()
    .optional(),
  spotScaling: z
    .object({
      minReplicas: scalingInt,
      maxReplicas: scalingInt,
      targetQpsPerReplica: z.number().positive(),
      upscaleDelayS: scalingInt,
      downscaleDelayS: scalingInt,
      readinessInitialDelayS: scalingInt,
    })
    .partial()
    .optional(),
  /** Serverless-only: hand out the provider URL too (skips the router's keys, limits and usage). */
  direct: z.boolean().default(false),
});
export type DeploymentInput = z.input<typeof deploymentInputSchema>;
export type ParsedDeploymentInput = z.output<typeof deploymentInputSchema>;

/** The spec fields stored in `Deployment.spec` (everything the workflow needs to rebuild the plans). */
export interface StoredSpec {
  name: string;
  engine: DeploymentSpec["engine"];
  serverlessScaling: DeploymentSpec["serverlessScaling"];
  spotScaling: DeploymentSpec["spotScaling"];
  spotProvider: string | null;
  requestedProvider: string;
  /** Why this serverless provider ("cheapest" explanation or "chosen by the requester"). */
  providerReason: string | null;
  port: number;
  secretNames: string[];
}

export interface ResolvedDeployment {
  slug: string;
  model: string;
  servedModelName: string;
  mode: "hybrid" | "serverless" | "spot";
  serverlessProvider: string | null;
  spotProvider: string | null;
  serverlessGpu: string | null;
  spotGpu: string | null;
  gpuCount: number;
  spotClouds: SpotCloud[];
  spotRegions: string[];
  region: string | null;
  direct: boolean;
  providerReason: string | null;
  spec: StoredSpec;
  /** Cost while serving (≥ 1 warm worker/replica) and at minimum scale (idle). */
  cost: PlanCostEstimate;
  idleCost: PlanCostEstimate;
  estimatedCostPerHourMicros: number;
  plans: { serverless?: Plan; spot?: Plan };
}

export function slugFromModel(model: string): string {
  const base = (model.split("/").pop() ?? model)
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 30)
    .replace(/-+$/, "");
  return base.length >= 2 ? base : `model-${base || "x"}`;
}

/** Deterministic external resource base name: providers derive every resource name from it. */
export function resourceBaseName(slug: string, deploymentId: string): string {
  const suffix = deploymentId.replace(/[^a-z0-9]/g, "").slice(-6) || "x";
  const head = `tuna-${slug}`.slice(0, 40 - suffix.length - 1).replace(/-+$/, "");
  return `${head}-${suffix}`;
}

/** Spot provider for a request: the simulator pairs with the simulator, real clouds use SkyServe. */
export function spotProviderFor(mode: string, provider: string): string {
  if (provider === "local" || provider === "local-spot") return "local-spot";
  if (mode === "spot" && provider !== "cheapest") return provider;
  return "skyserve";
}

const bad = (message: string, reason = "invalid_deployment") => new DomainError("BAD_REQUEST", message, { reason });

function requireProvider(name: string, kind: "serverless" | "spot"): Provider {
  let p: Provider;
  try {
    p = getProvider(name);
  } catch (e) {
    if (e instanceof ProviderRegistryError) throw bad(e.message, "unknown_provider");
    throw e;
  }
  if (p.kind !== kind) throw bad(`provider "${name}" is a ${p.kind} provider, not ${kind}`, "wrong_provider_kind");
  return p;
}

function gpuKey(name: string | undefined, what: string): string {
  if (!name) throw bad(`${what} GPU is required`);
  try {
    return resolveGpu(name).name;
  } catch (e) {
    if (e instanceof CatalogError) throw bad(e.message, "unknown_gpu");
    throw e;
  }
}

/** Rebuilds a provider spec from a stored deployment (same inputs → same plan, so steps are idempotent). */
export function specFor(
  d: { id: string; teamId: string; model: string; servedModelName: string; gpuCount: number; region: string | null; spotClouds: string[]; spotRegions: string[] },
  stored: StoredSpec,
  gpu: string,
): DeploymentSpec {
  return {
    deploymentId: d.id,
    teamId: d.teamId,
    name: stored.name,
    model: d.model,
    servedModelName: d.servedModelName,
    gpu,
    gpuCount: d.gpuCount,
    ...(d.region ? { region: d.region } : {}),
    ...(d.spotClouds.length
      ? { spot: { clouds: d.spotClouds as SpotCloud[], ...(d.spotRegions.length ? { regions: d.spotRegions } : {}) } }
      : {}),
    engine: stored.engine,
    serverlessScaling: stored.serverlessScaling,
    spotScaling: stored.spotScaling,
    port: stored.port,
    secretNames: stored.secretNames,
  };
}

function planOrThrow(p: Provider, spec: DeploymentSpec): Plan {
  try {
    return p.plan(spec);
  } catch (e) {
    if (e instanceof ProviderError) throw bad(`${p.displayName}: ${e.message}`, "plan_failed");
    throw e;
  }
}

/**
 * Validates a request against the catalog and the providers, picks the cheapest serverless provider when
 * asked, builds both plans (pure) and estimates the hourly cost. `deploymentId` is a placeholder for quotes.
 */
export function resolveDeployment(
  teamId: string,
  raw: DeploymentInput,
  deploymentId = "quote",
  opts: { secretNames?: string[] } = {},
): ResolvedDeployment {
  const input = deploymentInputSchema.parse(raw);
  const mode = input.mode;
  const wantsServerless = mode !== "spot";
  const wantsSpot = mode !== "serverless";
  if (input.direct && mode !== "serverless") throw bad("a direct endpoint is only available for serverless-only deployments");
  const serverlessGpu = wantsServerless ? gpuKey(input.serverlessGpu ?? input.gpu, "serverless") : null;
  const spotGpu = wantsSpot ? gpuKey(input.spotGpu ?? input.gpu, "spot") : null;

  let serverlessProvider: string | null = null;
  let providerReason: string | null = null;
  if (wantsServerless) {
    if (input.provider === "cheapest") {
      const pick = cheapestServerless(serverlessGpu!, { providers: undefined });
      const registered = pick.candidates.find((c) => hasProvider(c.provider));
      if (!registered) throw bad(pick.provider ? `no installed serverless provider offers ${serverlessGpu}: ${pick.reason}` : pick.reason, "no_provider");
      serverlessProvider = registered.provider;
      providerReason =
        registered.provider === pick.provider
          ? pick.reason
          : `${registered.provider} is the cheapest installed serverless provider for ${serverlessGpu} (${pick.reason})`;
    } else {
      serverlessProvider = input.provider;
      providerReason = `${input.provider} chosen by the requester`;
    }
    const p = requireProvider(serverlessProvider, "serverless");
    if (!p.supportedGpus().includes(serverlessGpu!)) throw bad(`${p.displayName} does not offer ${serverlessGpu}`, "gpu_not_offered");
  }
  let spotProvider: string | null = null;
  if (wantsSpot) {
    spotProvider = input.spotProvider ?? spotProviderFor(mode, input.provider);
    const p = requireProvider(spotProvider, "spot");
    if (!p.supportedGpus().includes(spotGpu!)) throw bad(`${p.displayName} does not offer ${spotGpu}`, "gpu_not_offered");
    if (spotProvider !== "local-spot" && input.spotClouds.length === 0) throw bad("choose at least one spot cloud (aws, gcp, azure)");
  }

  const slug = input.slug ?? slugFromModel(input.servedModelName ?? input.model);
  const servedModelName = input.servedModelName ?? slug;
  const defaults = defaultScaling();
  const stored: StoredSpec = {
    name: resourceBaseName(slug, deploymentId),
    engine: { kind: "vllm", ...input.engine },
    serverlessScaling: { ...defaults.serverless, ...input.serverlessScaling },
    spotScaling: { ...defaults.spot, ...input.spotScaling },
    spotProvider,
    requestedProvider: input.provider,
    providerReason,
    port: 8000,
    // Names only (values stay in the vault); providers wire them as provider-side secrets.
    secretNames: opts.secretNames ?? [],
  };
  // Scaling ranges the spec check below enforces too, in the form's words (it would name them as code paths).
  const sv = stored.serverlessScaling;
  const sp = stored.spotScaling;
  if (sv.maxWorkers < Math.max(1, sv.minWorkers)) {
    throw bad(sv.maxWorkers < 1 ? "Max workers must be at least 1." : `Max workers (${sv.maxWorkers}) cannot be fewer than the min warm workers (${sv.minWorkers}).`, "max_workers_below_min");
  }
  if (sp.maxReplicas < Math.max(1, sp.minReplicas)) {
    throw bad(sp.maxReplicas < 1 ? "Max replicas must be at least 1." : `Max replicas (${sp.maxReplicas}) cannot be fewer than the min replicas (${sp.minReplicas}).`, "max_replicas_below_min");
  }
  const row = {
    id: deploymentId,
    teamId,
    model: input.model,
    servedModelName,
    gpuCount: input.gpuCount,
    region: input.region ?? null,
    spotClouds: input.spotClouds,
    spotRegions: input.spotRegions ?? [],
  };
  const plans: ResolvedDeployment["plans"] = {};
  try {
    if (serverlessProvider) plans.serverless = planOrThrow(getProvider(serverlessProvider), validateSpec(specFor(row, stored, serverlessGpu!)));
    if (spotProvider) plans.spot = planOrThrow(getProvider(spotProvider), validateSpec(specFor(row, stored, spotGpu!)));
  } catch (e) {
    if (e instanceof ProviderError) throw bad(e.message, "invalid_spec");
    throw e;
  }

  // What will run on the spot side: the local simulator (nothing billed), or a fleet priced on the cloud the cost
  // model charges it at (`cloudPrice`: the cheapest static price over the chosen clouds); when none of them has
  // a price, the first chosen cloud (required above for every spot provider but local-spot, so there is one).
  const spotCloud = spotProvider && spotProvider !== "local-spot" ? (cloudPrice(spotGpu!, input.spotClouds, "spot")?.cloud ?? input.spotClouds[0]!) : null;
  const spotAt = (minReplicas: number): PlanCostSpotInput =>
    spotCloud === null
      ? { simulator: true, clouds: input.spotClouds, gpu: spotGpu!, gpuCount: input.gpuCount, minReplicas }
      : { cloud: spotCloud, gpu: spotGpu!, gpuCount: input.gpuCount, minReplicas };
  const costAt = (warm: boolean) =>
    estimatePlanCostPerHour({
      ...(serverlessProvider
        ? { serverless: { provider: serverlessProvider, gpu: serverlessGpu!, gpuCount: input.gpuCount, minWorkers: warm ? Math.max(1, stored.serverlessScaling.minWorkers) : stored.serverlessScaling.minWorkers } }
        : {}),
      ...(spotProvider ? { spot: spotAt(warm ? Math.max(1, stored.spotScaling.minReplicas) : stored.spotScaling.minReplicas) } : {}),
      routerUsdPerHour: 0,
    });
  const cost = costAt(true);
  return {
    slug,
    model: input.model,
    servedModelName,
    mode,
    serverlessProvider,
    spotProvider,
    serverlessGpu,
    spotGpu,
    gpuCount: input.gpuCount,
    spotClouds: input.spotClouds,
    spotRegions: input.spotRegions ?? [],
    region: input.region ?? null,
    direct: input.direct,
    providerReason,
    spec: stored,
    cost,
    idleCost: costAt(false),
    estimatedCostPerHourMicros: cost.totalMicrosPerHour,
    plans,
  };
}
