"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { keepPreviousData, useMutation, useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Badge, Field } from "@/app/_components/controls";
import { formatUsd } from "@/app/_components/format";
import { cloudPrice } from "@/server/catalog/spot";
import { rolesWith } from "@/server/rbac/permissions";
import { useTeam } from "../../AppShell";
import { budgetMicrosOf } from "./budget";

type Mode = "hybrid" | "serverless" | "spot";
type Cloud = "aws" | "gcp" | "azure";

interface FormState {
  model: string;
  slug: string;
  servedModelName: string;
  mode: Mode;
  separateGpus: boolean;
  gpu: string;
  serverlessGpu: string;
  spotGpu: string;
  gpuCount: string;
  provider: string;
  spotClouds: Cloud[];
  spotRegions: string;
  region: string;
  engineKind: "vllm" | "sglang";
  maxModelLen: string;
  dtype: "" | "auto" | "half" | "bfloat16" | "float16";
  tensorParallelSize: string;
  gpuMemoryUtilization: string;
  quantization: string;
  scaling: Record<string, string>;
  budgetUsd: string;
}

const SERVERLESS_KNOBS = [
  ["minWorkers", "Min warm workers"],
  ["maxWorkers", "Max workers"],
  ["concurrency", "Requests per worker"],
  ["idleTimeoutS", "Idle timeout (s)"],
  ["coldStartTimeoutS", "Cold-start timeout (s)"],
] as const;
const SPOT_KNOBS = [
  ["minReplicas", "Min replicas"],
  ["maxReplicas", "Max replicas"],
  ["targetQpsPerReplica", "Target QPS per replica"],
  ["upscaleDelayS", "Upscale delay (s)"],
  ["downscaleDelayS", "Downscale delay (s)"],
  ["readinessInitialDelayS", "Readiness initial delay (s)"],
] as const;

const INITIAL: FormState = {
  model: "",
  slug: "",
  servedModelName: "",
  mode: "hybrid",
  separateGpus: false,
  gpu: "L4",
  serverlessGpu: "L4",
  spotGpu: "L4",
  gpuCount: "1",
  provider: "cheapest",
  spotClouds: ["aws"],
  spotRegions: "",
  region: "",
  engineKind: "vllm",
  maxModelLen: "",
  dtype: "",
  tensorParallelSize: "",
  gpuMemoryUtilization: "",
  quantization: "",
  scaling: {},
  budgetUsd: "",
};

const num = (s: string) => (s.trim() === "" ? undefined : Number(s));

/** The form as the API's DeploymentInput (empty fields left out so the server applies its defaults). */
function toInput(f: FormState) {
  const wantsServerless = f.mode !== "spot";
  const wantsSpot = f.mode !== "serverless";
  const pick = (keys: ReadonlyArray<readonly [string, string]>) => {
    const o: Record<string, number> = {};
    for (const [k] of keys) {
      const v = num(f.scaling[k] ?? "");
      if (v !== undefined) o[k] = v;
    }
    return Object.keys(o).length ? o : undefined;
  };
  const engine = {
    kind: f.engineKind,
    ...(num(f.maxModelLen) !== undefined ? { maxModelLen: num(f.maxModelLen) } : {}),
    ...(f.dtype ? { dtype: f.dtype } : {}),
    ...(num(f.tensorParallelSize) !== undefined ? { tensorParallelSize: num(f.tensorParallelSize) } : {}),
    ...(num(f.gpuMemoryUtilization) !== undefined ? { gpuMemoryUtilization: num(f.gpuMemoryUtilization) } : {}),
    ...(f.quantization.trim() ? { quantization: f.quantization.trim() } : {}),
  };
  const regions = f.spotRegions.split(",").map((s) => s.trim()).filter(Boolean);
  const localSpot = f.provider === "local" || f.provider === "local-spot";
  return {
    model: f.model.trim(),
    ...(f.slug.trim() ? { slug: f.slug.trim() } : {}),
    ...(f.servedModelName.trim() ? { servedModelName: f.servedModelName.trim() } : {}),
    mode: f.mode,
    ...(f.separateGpus && f.mode === "hybrid" ? { serverlessGpu: f.serverlessGpu, spotGpu: f.spotGpu } : { gpu: f.gpu }),
    gpuCount: num(f.gpuCount) ?? 1,
    provider: f.provider,
    // The simulator pairs `local` with `local-spot` on loopback: no cloud to choose.
    spotClouds: wantsSpot && !localSpot ? f.spotClouds : [],
    ...(wantsSpot && !localSpot && regions.length ? { spotRegions: regions } : {}),
    ...(wantsServerless && f.region.trim() ? { region: f.region.trim() } : {}),
    engine,
    ...(wantsServerless && pick(SERVERLESS_KNOBS) ? { serverlessScaling: pick(SERVERLESS_KNOBS) } : {}),
    ...(wantsSpot && pick(SPOT_KNOBS) ? { spotScaling: pick(SPOT_KNOBS) } : {}),
  };
}

/**
 * The provider for `mode`: kept when the mode offers it, else the same simulator on the mode's side (`local`
 * ↔ `local-spot`), else the mode's default. The select shows only the mode's providers, so a value it does not
 * offer would be shown as the default while the quote and the deployment used it.
 */
function providerForMode(provider: string, mode: Mode, offered: { serverless: string[]; spot: string[] }): string {
  const names = mode === "spot" ? offered.spot : offered.serverless;
  if (provider === "cheapest" || names.includes(provider)) return provider;
  const twin = mode === "spot" ? (provider === "local" ? "local-spot" : null) : provider === "local-spot" ? "local" : null;
  return twin && names.includes(twin) ? twin : "cheapest";
}

/** Which field a domain error belongs to, from its reason code (the message is shown there). */
function fieldOfReason(reason: string | null | undefined, message: string, servedModelName: string): string {
  if (reason === "slug_taken") return "slug";
  // A name another deployment answers to: the served model name when that is the one quoted, else the slug.
  if (reason === "name_taken") return servedModelName && message.startsWith(`"${servedModelName}"`) ? "servedModelName" : "slug";
  // No known price where a budget applies: another GPU (or cloud, which the message names) fixes it.
  if (reason === "unknown_gpu" || reason === "gpu_not_offered" || reason === "price_unknown") return "gpu";
  if (reason === "unknown_provider" || reason === "wrong_provider_kind" || reason === "no_provider") return "provider";
  if (reason === "max_workers_below_min") return "maxWorkers";
  if (reason === "max_replicas_below_min") return "maxReplicas";
  if (/spot cloud/i.test(message)) return "spotClouds";
  return "form";
}

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** Field errors of a quote or create error; taken names are reported by the live quote, before submit. */
function errorsOf(e: unknown, servedModelName: string): Record<string, string | undefined> {
  if (!e) return {};
  const fe = fieldErrors(e);
  if (Object.keys(fe).length) {
    // zod paths are flattened to their first segment; "gpu"-ish fields share one place in the form.
    return { ...fe, gpu: fe.gpu ?? fe.serverlessGpu ?? fe.spotGpu };
  }
  const reason = (e as { data?: { reason?: string | null } })?.data?.reason;
  const message = errorMessage(e);
  return { [fieldOfReason(reason, message, servedModelName)]: message };
}

export default function NewDeploymentPage() {
  const trpc = useTRPC();
  const router = useRouter();
  const { can } = useTeam();
  const canCreate = can("deployment.create");
  const canBudget = can("budget.manage");
  const [f, setF] = useState<FormState>(INITIAL);
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((s) => ({ ...s, [k]: v }));
  const catalog = useQuery(trpc.catalog.table.queryOptions());
  const providers = useQuery(trpc.catalog.providers.queryOptions());
  const defaults = useQuery(trpc.catalog.defaults.queryOptions());
  // Who else could approve this request (nobody approves their own): shown before submit when nobody can.
  const me = useQuery(trpc.me.get.queryOptions());
  const members = useQuery(trpc.team.members.queryOptions());
  const input = useMemo(() => toInput(f), [f]);
  const debounced = useDebounced(input, 350);
  const quote = useQuery({
    ...trpc.deployments.quote.queryOptions(debounced as never),
    enabled: debounced.model.length > 0,
    placeholderData: keepPreviousData,
    retry: false,
  });
  const create = useMutation(trpc.deployments.create.mutationOptions());
  const setBudget = useMutation(trpc.usage.budgets.set.mutationOptions());
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [budgetError, setBudgetError] = useState<string | null>(null);
  // The deployment was created but its budget was not set: the form stays put to say so.
  const [budgetNotSet, setBudgetNotSet] = useState<{ id: string; slug: string | null; message: string } | null>(null);
  // Set synchronously: create.isPending disables the button only after a re-render, too late for a double click.
  const submitting = useRef(false);
  const budgetInput = useRef<HTMLInputElement>(null);

  const wantsServerless = f.mode !== "spot";
  const wantsSpot = f.mode !== "serverless";
  const svlGpu = f.separateGpus && f.mode === "hybrid" ? f.serverlessGpu : f.gpu;
  const spotGpu = f.separateGpus && f.mode === "hybrid" ? f.spotGpu : f.gpu;
  // Submit errors win over live-quote errors; a stale quote error hides once the quote succeeds.
  const errs = submitError ? errorsOf(submitError, input.servedModelName ?? "") : quote.error && !quote.isFetching ? errorsOf(quote.error, debounced.servedModelName ?? "") : {};

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (submitting.current || budgetNotSet) return;
    setSubmitError(null);
    const budget = canBudget ? budgetMicrosOf(f.budgetUsd, budgetInput.current?.validity.badInput) : {};
    // A budget of a deployment whose price is unknown could not limit it (the server refuses to set it).
    const unknown = budget.micros !== undefined ? (quote.data?.unknownPrices ?? []) : [];
    const other = unknown.every((u) => u.startsWith("No known spot price")) ? "another GPU or cloud" : "another GPU, provider or cloud";
    const error = budget.error ?? (unknown.length ? `${unknown.join("; ")}, so this deployment's budget could not be enforced; choose ${other}, or leave the budget empty.` : null);
    setBudgetError(error);
    if (error) {
      budgetInput.current?.focus();
      return;
    }
    submitting.current = true;
    try {
      const r = await create.mutateAsync(input as never);
      if (budget.micros !== undefined) {
        try {
          await setBudget.mutateAsync({ scope: "deployment", targetId: r.id, monthlyLimitMicros: budget.micros });
        } catch (err) {
          setBudgetNotSet({ id: r.id, slug: f.slug.trim() || quote.data?.slug || null, message: errorMessage(err) });
          return;
        }
      }
      router.push(`/deployments/${r.id}`);
    } catch (err) {
      setSubmitError(err);
    } finally {
      submitting.current = false;
    }
  }

  if (!canCreate) {
    return (
      <>
        <PageHeader title="New deployment" />
        <Notice>Your role cannot request deployments (needs “deployment.create”).</Notice>
      </>
    );
  }
  if (catalog.isPending || providers.isPending || defaults.isPending) return <Loading />;
  if (catalog.error || providers.error || defaults.error) {
    const err = catalog.error ?? providers.error ?? defaults.error;
    return <ErrorBox message={errorMessage(err)} onRetry={() => { catalog.refetch(); providers.refetch(); defaults.refetch(); }} />;
  }
  const serverlessProviders = providers.data.filter((p) => p.kind === "serverless");
  const spotProviders = providers.data.filter((p) => p.kind === "spot");
  const offered = { serverless: serverlessProviders.map((p) => p.name), spot: spotProviders.map((p) => p.name) };
  const setMode = (mode: Mode) => setF((s) => ({ ...s, mode, provider: providerForMode(s.provider, mode, offered) }));
  // The cloud the estimate prices spot on, as the server does (plan.ts): the cheapest of the clouds sent (all of
  // them for the local simulator), else the first one.
  const pricedCloud = wantsSpot ? (cloudPrice(spotGpu, input.spotClouds, "spot")?.cloud ?? input.spotClouds[0] ?? null) : null;
  const approverRoles: string[] = rolesWith("deployment.approve");
  const nobodyElseApproves =
    !!me.data && !!members.data && !members.data.some((m) => approverRoles.includes(m.role) && m.userId !== me.data.id);
  const gpuOptions = catalog.data.gpus.map((g) => g.gpu);
  const d = defaults.data.scaling;
  const knobDefaults: Record<string, number> = { ...d.serverless, ...d.spot };
  const dflt = (k: string) => String(knobDefaults[k] ?? "");
  const gpuSelect = (id: string, value: string, onChange: (v: string) => void, describedBy?: string) => (
    <select id={id} className="field-input" value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={!!errs.gpu} aria-describedby={describedBy}>
      {gpuOptions.map((g) => {
        const info = catalog.data.gpus.find((x) => x.gpu === g);
        return <option key={g} value={g}>{g} ({info?.vramGb} GB)</option>;
      })}
    </select>
  );

  return (
    <>
      <PageHeader title="New deployment" description="One OpenAI-compatible endpoint: serverless GPUs answer while spot GPUs boot or after a preemption, spot serves at steady state." />
      <form method="post" onSubmit={onSubmit} noValidate aria-label="New deployment" className="grid gap-6 xl:grid-cols-[minmax(0,1fr)_26rem]">
        <div className="space-y-6">
          <Section title="Model">
            <div className="grid gap-4 md:grid-cols-3">
              <Field id="d-model" label="Model id (Hugging Face)" error={errs.model} className="md:col-span-3">
                <input id="d-model" className="field-input font-mono" required value={f.model} onChange={(e) => set("model", e.target.value)} placeholder="Qwen/Qwen3-0.6B" aria-invalid={!!errs.model} />
              </Field>
              <Field id="d-slug" label="Name (optional)" error={errs.slug} hint="Lowercase letters, digits and dashes; from the model id when empty.">
                <input id="d-slug" className="field-input" value={f.slug} onChange={(e) => set("slug", e.target.value)} placeholder={quote.data?.slug ?? ""} aria-invalid={!!errs.slug} />
              </Field>
              <Field id="d-served" label="Served model name (optional)" error={errs.servedModelName} hint="What clients pass as `model`.">
                <input id="d-served" className="field-input" value={f.servedModelName} onChange={(e) => set("servedModelName", e.target.value)} aria-invalid={!!errs.servedModelName} />
              </Field>
              <Field id="d-engine" label="Engine" error={errs.engine}>
                <select id="d-engine" className="field-input" value={f.engineKind} onChange={(e) => set("engineKind", e.target.value as FormState["engineKind"])}>
                  <option value="vllm">vLLM</option>
                  <option value="sglang">SGLang</option>
                </select>
              </Field>
            </div>
            <details className="mt-4">
              <summary className="cursor-pointer text-sm font-medium text-gray-700">Engine options</summary>
              <div className="mt-3 grid gap-4 md:grid-cols-3">
                <Field id="d-maxlen" label="Max model length (tokens)"><input id="d-maxlen" type="number" min={1} className="field-input" value={f.maxModelLen} onChange={(e) => set("maxModelLen", e.target.value)} /></Field>
                <Field id="d-dtype" label="dtype" hint="T4 runs with half automatically.">
                  <select id="d-dtype" className="field-input" value={f.dtype} onChange={(e) => set("dtype", e.target.value as FormState["dtype"])}>
                    <option value="">default</option>
                    <option value="auto">auto</option>
                    <option value="half">half</option>
                    <option value="bfloat16">bfloat16</option>
                    <option value="float16">float16</option>
                  </select>
                </Field>
                <Field id="d-tp" label="Tensor parallel size"><input id="d-tp" type="number" min={1} className="field-input" value={f.tensorParallelSize} onChange={(e) => set("tensorParallelSize", e.target.value)} /></Field>
                <Field id="d-gmu" label="GPU memory utilisation (0–1)"><input id="d-gmu" type="number" min={0.05} max={1} step={0.01} className="field-input" value={f.gpuMemoryUtilization} onChange={(e) => set("gpuMemoryUtilization", e.target.value)} /></Field>
                <Field id="d-quant" label="Quantisation"><input id="d-quant" className="field-input" value={f.quantization} onChange={(e) => set("quantization", e.target.value)} placeholder="awq, gptq, fp8…" /></Field>
              </div>
            </details>
          </Section>

          <Section title="Where it runs">
            <fieldset>
              <legend className="field-label">Mode</legend>
              <div className="mt-1 grid gap-2 sm:grid-cols-3">
                {([
                  ["hybrid", "Hybrid", "Serverless while spot boots or is preempted; spot at steady state."],
                  ["serverless", "Serverless only", "Scales to zero; no spot."],
                  ["spot", "Spot only", "Cheapest; no fallback while spot boots."],
                ] as const).map(([value, label, hint]) => (
                  <label key={value} className={`flex cursor-pointer gap-2 rounded-md p-3 text-sm ring-1 ${f.mode === value ? "bg-blue-50 ring-blue-300" : "ring-gray-200"}`}>
                    <input type="radio" name="mode" value={value} checked={f.mode === value} onChange={() => setMode(value)} />
                    <span><span className="block font-medium text-gray-900">{label}</span><span className="text-gray-600">{hint}</span></span>
                  </label>
                ))}
              </div>
            </fieldset>
            <div className="mt-4 grid gap-4 md:grid-cols-3">
              {f.mode === "hybrid" ? (
                <label className="inline-flex items-center gap-2 text-sm md:col-span-3">
                  <input type="checkbox" checked={f.separateGpus} onChange={(e) => set("separateGpus", e.target.checked)} /> Use different GPUs for serverless and spot
                </label>
              ) : null}
              {f.separateGpus && f.mode === "hybrid" ? (
                <>
                  <Field id="d-svl-gpu" label="Serverless GPU" error={errs.gpu}>{gpuSelect("d-svl-gpu", f.serverlessGpu, (v) => set("serverlessGpu", v))}</Field>
                  <Field id="d-spot-gpu" label="Spot GPU">{gpuSelect("d-spot-gpu", f.spotGpu, (v) => set("spotGpu", v))}</Field>
                </>
              ) : (
                <Field id="d-gpu" label="GPU" error={errs.gpu}>{gpuSelect("d-gpu", f.gpu, (v) => set("gpu", v))}</Field>
              )}
              <Field id="d-gpucount" label="GPUs per worker" error={errs.gpuCount}>
                <input id="d-gpucount" type="number" min={1} max={16} className="field-input" value={f.gpuCount} onChange={(e) => set("gpuCount", e.target.value)} aria-invalid={!!errs.gpuCount} />
              </Field>
              <Field
                id="d-provider"
                label={f.mode === "spot" ? "Spot provider" : "Serverless provider"}
                error={errs.provider}
                hint={quote.data?.providerReason && f.provider === "cheapest" ? <span data-testid="provider-reason">{quote.data.providerReason}</span> : undefined}
              >
                <select id="d-provider" className="field-input" value={f.provider} onChange={(e) => set("provider", e.target.value)} aria-invalid={!!errs.provider}>
                  <option value="cheapest">{f.mode === "spot" ? "Default (SkyPilot)" : "Cheapest for this GPU"}</option>
                  {(f.mode === "spot" ? spotProviders : serverlessProviders).map((p) => <option key={p.name} value={p.name}>{p.displayName}</option>)}
                </select>
              </Field>
              {wantsServerless ? (
                <Field id="d-region" label="Serverless region (optional)" error={errs.region}>
                  <input id="d-region" className="field-input" value={f.region} onChange={(e) => set("region", e.target.value)} placeholder="provider default" />
                </Field>
              ) : null}
            </div>
            {wantsSpot && (f.provider === "local" || f.provider === "local-spot") ? (
              <p className="mt-4 text-sm text-gray-600">Spot runs on the local simulator (loopback), so there is no cloud or region to choose.</p>
            ) : wantsSpot ? (
              <div className="mt-4 grid gap-4 md:grid-cols-3">
                <fieldset className="md:col-span-1" aria-describedby={errs.spotClouds ? "d-clouds-error" : undefined}>
                  <legend className="field-label">Spot clouds</legend>
                  <div className="mt-1 flex gap-4 text-sm">
                    {defaults.data.spotClouds.map((c) => (
                      <label key={c} className="inline-flex items-center gap-1 uppercase">
                        <input
                          type="checkbox"
                          checked={f.spotClouds.includes(c as Cloud)}
                          onChange={(e) => set("spotClouds", e.target.checked ? [...f.spotClouds, c as Cloud] : f.spotClouds.filter((x) => x !== c))}
                        />{" "}
                        {c}
                      </label>
                    ))}
                  </div>
                  {errs.spotClouds ? <p id="d-clouds-error" className="field-error" role="alert">{errs.spotClouds}</p> : null}
                </fieldset>
                <Field id="d-spot-regions" label="Spot regions (optional, comma-separated)" error={errs.spotRegions} className="md:col-span-2">
                  <input id="d-spot-regions" className="field-input" value={f.spotRegions} onChange={(e) => set("spotRegions", e.target.value)} placeholder="us-east-1, us-central1" />
                </Field>
              </div>
            ) : null}
          </Section>

          <Section title="Scaling" description="Empty fields use the defaults shown.">
            {wantsServerless ? (
              <fieldset className="mb-4">
                <legend className="text-sm font-medium text-gray-900">Serverless</legend>
                <div className="mt-2 grid gap-4 sm:grid-cols-3 lg:grid-cols-5">
                  {SERVERLESS_KNOBS.map(([k, label]) => (
                    <Field key={k} id={`d-${k}`} label={label} error={errs[k] ?? (errs.serverlessScaling && k === "minWorkers" ? errs.serverlessScaling : undefined)}>
                      <input id={`d-${k}`} type="number" min={0} className="field-input" placeholder={dflt(k)} value={f.scaling[k] ?? ""} onChange={(e) => set("scaling", { ...f.scaling, [k]: e.target.value })} aria-invalid={!!errs[k]} aria-describedby={errs[k] ? `d-${k}-error` : undefined} />
                    </Field>
                  ))}
                </div>
              </fieldset>
            ) : null}
            {wantsSpot ? (
              <fieldset>
                <legend className="text-sm font-medium text-gray-900">Spot</legend>
                <div className="mt-2 grid gap-4 sm:grid-cols-3">
                  {SPOT_KNOBS.map(([k, label]) => (
                    <Field key={k} id={`d-${k}`} label={label} error={errs[k] ?? (errs.spotScaling && k === "minReplicas" ? errs.spotScaling : undefined)}>
                      <input id={`d-${k}`} type="number" min={0} step={k === "targetQpsPerReplica" ? "0.1" : "1"} className="field-input" placeholder={dflt(k)} value={f.scaling[k] ?? ""} onChange={(e) => set("scaling", { ...f.scaling, [k]: e.target.value })} aria-invalid={!!errs[k]} aria-describedby={errs[k] ? `d-${k}-error` : undefined} />
                    </Field>
                  ))}
                </div>
              </fieldset>
            ) : null}
          </Section>

          <Section title="Budget">
            {canBudget ? (
              <Field id="d-budget" label="Monthly budget for this deployment, USD (optional)" error={budgetError ?? undefined} hint="Alerts at 80%, 90% and 100%; at 100% the router stops serving it.">
                <input
                  id="d-budget"
                  ref={budgetInput}
                  type="number"
                  min={0.01}
                  step="0.01"
                  className="field-input max-w-xs"
                  value={f.budgetUsd}
                  onChange={(e) => {
                    set("budgetUsd", e.target.value);
                    setBudgetError(null);
                  }}
                  aria-invalid={!!budgetError}
                  aria-describedby={budgetError ? "d-budget-error" : "d-budget-hint"}
                />
              </Field>
            ) : (
              <p className="text-sm text-gray-600">Only admins can set budgets (needs “budget.manage”); the team budget still applies.</p>
            )}
          </Section>
        </div>

        <aside className="space-y-4 xl:sticky xl:top-4 xl:self-start" aria-label="Cost and approval">
          <Comparison catalog={catalog.data} serverlessGpu={wantsServerless ? svlGpu : null} spotGpu={wantsSpot ? spotGpu : null} gpuCount={num(f.gpuCount) ?? 1} chosen={quote.data?.serverlessProvider ?? null} clouds={input.spotClouds} pricedCloud={pricedCloud} />
          <div className="card" data-testid="plan-estimate">
            <h2 className="mb-2 text-sm font-semibold text-gray-900">Estimated cost of this plan</h2>
            {!f.model.trim() ? <p className="text-sm text-gray-600">Enter a model id to get a quote.</p> : quote.isPending ? <Loading label="Pricing…" /> : quote.data ? (
              <>
                <p className="text-2xl font-semibold tabular-nums" data-testid="plan-cost">{formatUsd(quote.data.cost.totalMicrosPerHour, { perHour: true })}</p>
                <p className="text-xs text-gray-500">while serving (one warm worker/replica); {formatUsd(quote.data.idleCost.totalMicrosPerHour, { perHour: true })} when idle at minimum scale</p>
                <ul className="mt-2 space-y-1 text-xs text-gray-700">
                  {quote.data.cost.items.map((i) => <li key={i.component}><span className="font-medium capitalize">{i.component}</span>: {i.description} — {i.display}</li>)}
                </ul>
                {quote.data.cost.warnings.map((w) => <p key={w} className="mt-1 text-xs text-amber-700">{w}</p>)}
                {quote.data.unknownPrices.length ? (
                  <p className="mt-2 text-xs text-amber-800" data-testid="unknown-prices">
                    {quote.data.unknownPrices.join("; ")}: its spend cannot be counted, so no budget can limit it (a team with a budget cannot deploy it).
                  </p>
                ) : null}
                {quote.data.notes.length ? <ul className="mt-2 list-inside list-disc text-xs text-gray-500">{quote.data.notes.map((n) => <li key={n}>{n}</li>)}</ul> : null}
              </>
            ) : <p className="text-sm text-gray-600">Fix the highlighted fields to get a quote.</p>}
          </div>
          {quote.data?.approval.required ? (
            <div role="status" data-testid="approval-notice" className="rounded-md bg-amber-50 p-4 text-sm text-amber-900 ring-1 ring-amber-200">
              <p className="font-medium">This deployment will need an admin’s approval before it starts.</p>
              <ul className="mt-1 list-inside list-disc">{quote.data.approval.reasons.map((r) => <li key={r}>{r}</li>)}</ul>
              {nobodyElseApproves ? (
                <p className="mt-2 font-medium" data-testid="no-other-approver">
                  Another admin must approve it (nobody approves their own request), and this team has no other admin, so it would wait until it expires.{" "}
                  <Link className="text-blue-700 underline" href="/members">Invite an admin in Members</Link> first.
                </p>
              ) : null}
            </div>
          ) : quote.data ? <Notice tone="success">No approval needed: it starts right away.</Notice> : null}
          {errs.form ? <ErrorBox message={errs.form} /> : null}
          {budgetNotSet ? (
            <div role="alert" data-testid="budget-not-set" className="rounded-md bg-amber-50 p-4 text-sm text-amber-900 ring-1 ring-amber-200">
              <p className="font-medium">{budgetNotSet.slug ? `Deployment “${budgetNotSet.slug}”` : "The deployment"} was created, but its monthly budget was not set.</p>
              <p className="mt-1 [overflow-wrap:anywhere]">{budgetNotSet.message}</p>
              <p className="mt-1">It has no budget of its own until you set one (the team budget still applies).</p>
              <p className="mt-2 flex flex-wrap gap-x-4 gap-y-1 font-medium">
                <Link className="text-blue-700 underline" href="/settings#budgets-heading">Set the budget in Settings</Link>
                <Link className="text-blue-700 underline" href={`/deployments/${budgetNotSet.id}`}>Open the deployment</Link>
              </p>
            </div>
          ) : null}
          <button type="submit" className="btn-primary w-full" disabled={create.isPending || !f.model.trim() || !!budgetNotSet}>
            {create.isPending ? "Requesting…" : quote.data?.approval.required ? "Request approval and deploy" : "Deploy"}
          </button>
        </aside>
      </form>
    </>
  );
}

function Section({ title, description, children }: { title: string; description?: string; children: ReactNode }) {
  return (
    <section className="card">
      <h2 className="text-base font-semibold text-gray-900">{title}</h2>
      {description ? <p className="mb-3 text-sm text-gray-600">{description}</p> : <div className="mb-3" />}
      {children}
    </section>
  );
}

interface CatalogData {
  providers: Array<{ provider: string; displayName: string; installed: boolean }>;
  gpus: Array<{
    gpu: string;
    offers: Array<{ provider: string; priceMicros: number | null }>;
    cheapest: { provider: string | null };
    spot: Array<{ cloud: string; priceMicros: number | null; instanceType: string | null; region: string | null }>;
  }>;
}

/** Providers' price per hour for the chosen GPU(s) × GPU count, cheapest and chosen marked. */
function Comparison(props: { catalog: CatalogData; serverlessGpu: string | null; spotGpu: string | null; gpuCount: number; chosen: string | null; clouds: string[]; pricedCloud: string | null }) {
  const svl = props.serverlessGpu ? props.catalog.gpus.find((g) => g.gpu === props.serverlessGpu) : null;
  const spot = props.spotGpu ? props.catalog.gpus.find((g) => g.gpu === props.spotGpu) : null;
  const n = Math.max(1, props.gpuCount || 1);
  const name = (p: string) => props.catalog.providers.find((x) => x.provider === p)?.displayName ?? p;
  const rows = (svl?.offers ?? []).filter((o) => o.priceMicros !== null).sort((a, b) => (a.priceMicros ?? 0) - (b.priceMicros ?? 0));
  return (
    <div className="card" data-testid="provider-comparison">
      <h2 className="mb-2 text-sm font-semibold text-gray-900">Providers{props.serverlessGpu ? ` for ${props.serverlessGpu}` : ""}{n > 1 ? ` × ${n}` : ""}</h2>
      {svl ? (
        rows.length === 0 ? <p className="text-sm text-gray-600">No serverless provider publishes a price for {svl.gpu}.</p> : (
          <table className="w-full text-sm">
            <caption className="sr-only">Serverless price per hour by provider</caption>
            <thead className="text-left text-xs text-gray-500"><tr><th scope="col" className="py-1 font-medium">Serverless provider</th><th scope="col" className="py-1 text-right font-medium">Price / hour</th></tr></thead>
            <tbody className="divide-y">
              {rows.map((o) => (
                <tr key={o.provider} className={o.provider === props.chosen ? "bg-blue-50" : ""}>
                  <td className="py-1">
                    {name(o.provider)} {o.provider === svl.cheapest.provider ? <Badge tone="green">cheapest</Badge> : null} {o.provider === props.chosen ? <Badge tone="blue">chosen</Badge> : null}
                  </td>
                  <td className="py-1 text-right tabular-nums">{formatUsd((o.priceMicros ?? 0) * n, { perHour: true })}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      {spot ? (
        <table className="mt-3 w-full text-sm">
          <caption className="sr-only">Spot price per hour by cloud</caption>
          <thead className="text-left text-xs text-gray-500"><tr><th scope="col" className="py-1 font-medium">Spot ({spot.gpu})</th><th scope="col" className="py-1 text-right font-medium">Price / hour</th></tr></thead>
          <tbody className="divide-y">
            {spot.spot.map((s) => (
              // Highlighted: the cloud the estimate prices spot on; the other clouds chosen may also run it.
              <tr key={s.cloud} className={s.cloud === props.pricedCloud ? "bg-blue-50" : ""} aria-current={s.cloud === props.pricedCloud ? "true" : undefined}>
                <td className="py-1">
                  <span className="uppercase">{s.cloud}</span>
                  {s.instanceType ? <span className="ml-1 text-xs text-gray-500">{s.instanceType}, {s.region}</span> : null}{" "}
                  {s.cloud === props.pricedCloud ? <Badge tone="blue">in estimate</Badge> : props.clouds.includes(s.cloud) ? <Badge>chosen</Badge> : null}
                </td>
                <td className="py-1 text-right tabular-nums">{s.priceMicros === null ? "not offered" : formatUsd(s.priceMicros * n, { perHour: true })}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
