import { basetenCatalog, basetenOffer } from "../../catalog/providers/baseten";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import type { Component, ComponentStatus, Credentials, ExecResult, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import { cliOutputTail, runCli, stripAnsi, withTempFiles } from "../base/cli";
import { BasetenClient, type BasetenCredentials, basetenCredentialsSchema, basetenSecrets, FAILED_DEPLOYMENT_STATUSES, parseBasetenCredentials } from "./client";
import { CONFIG_FILE, PROVIDER, planBaseten } from "./plan";

/**
 * Baseten: the management API (list, status, autoscaling, secrets, delete) is plain REST; creating a model
 * needs a Truss archive, which the `truss` CLI builds and uploads (`truss push`). The CLI gets the API key
 * through a `.trussrc` in a private temporary HOME, so the key never lands in a shared config file, on a
 * command line or in the uploaded archive.
 */

const INSTALL_HINT = "install it with `pip install truss`";
const PUSH_TIMEOUT_MS = 15 * 60_000;
export const BASETEN_REMOTE_URL = "https://app.baseten.co";

/** The OpenAI-compatible base (no `/v1`) of a model's production environment. */
export function inferenceBaseUrl(modelId: string): string {
  return `https://model-${modelId}.api.baseten.co/environments/production/sync`;
}

/** Model and deployment ids from `truss push` output (links and "model id:" lines). */
export function parsePushOutput(stdout: string): { modelId?: string; deploymentId?: string } {
  const clean = stripAnsi(stdout);
  const logs = /app\.baseten\.co\/models\/([A-Za-z0-9]+)\/logs\/([A-Za-z0-9]+)/.exec(clean);
  const modelId =
    logs?.[1] ??
    /app\.baseten\.co\/models\/([A-Za-z0-9]+)/.exec(clean)?.[1] ??
    /model-([A-Za-z0-9]+)\.api\.baseten\.co/.exec(clean)?.[1] ??
    /model id:\s*([A-Za-z0-9]+)/i.exec(clean)?.[1];
  return { modelId, deploymentId: logs?.[2] };
}

function trussrc(apiKey: string): string {
  return `[baseten]\nremote_provider = baseten\napi_key = ${apiKey}\nremote_url = ${BASETEN_REMOTE_URL}\n`;
}

async function truss(ctx: ProviderContext, creds: BasetenCredentials, args: string[], opts: { cwd?: string; home?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return runCli(ctx, {
    provider: PROVIDER,
    installHint: INSTALL_HINT,
    cmd: "truss",
    args,
    env: opts.home ? { HOME: opts.home } : {},
    cwd: opts.cwd,
    timeoutMs: opts.timeoutMs ?? 60_000,
    secrets: basetenSecrets(creds),
  });
}

const STATE: Record<string, ComponentStatus["state"]> = {
  BUILDING: "creating",
  DEPLOYING: "creating",
  LOADING_MODEL: "creating",
  UPDATING: "creating",
  WAKING_UP: "creating",
  ACTIVE: "ready",
  SCALED_TO_ZERO: "scaled_to_zero",
  INACTIVE: "failed",
  DEACTIVATING: "failed",
  UNHEALTHY: "failed",
  BUILD_FAILED: "failed",
  BUILD_STOPPED: "failed",
  DEPLOY_FAILED: "failed",
  FAILED: "failed",
};

async function modelIdOf(client: BasetenClient, ref: ResourceRef): Promise<string | undefined> {
  return ref.externalIds.modelId ?? (await client.findModelByName(ref.resourceName))?.id;
}

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const parsed = basetenCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [{ level: "error", code: "missing_credentials", message: "No Baseten API key: create one (Baseten → Settings → API keys) and add it to the team's vault." }];
  }
  const creds = parsed.data;
  const findings: Finding[] = [];
  try {
    await new BasetenClient(creds, ctx).listModels();
    findings.push(credentialsAcceptedFinding("Baseten"));
  } catch (err) {
    if (err instanceof ProviderError && (err.code === "unauthorized" || err.code === "forbidden")) {
      return [{ level: "error", code: "unauthorized", message: `Baseten rejected the API key (HTTP ${err.status}); create a new workspace API key.` }];
    }
    findings.push({ level: "error", code: "unreachable", message: (err as Error).message });
  }
  try {
    const v = await truss(ctx, creds, ["--version"]);
    if (v.code !== 0) findings.push({ level: "error", code: "cli_missing", message: `\`truss --version\` failed: ${cliOutputTail(v, basetenSecrets(creds))}` });
  } catch (err) {
    if (err instanceof ProviderError && err.code === "cli_missing") findings.push({ level: "error", code: "cli_missing", message: err.message });
    else throw err;
  }
  if (!basetenOffer(plan.gpu.catalogName)) findings.push({ level: "error", code: "gpu_unavailable", message: `Baseten does not offer ${plan.gpu.catalogName}.` });
  for (const name of plan.secretEnv) {
    if (creds.secrets?.[name] === undefined) findings.push({ level: "warning", code: "missing_secret", message: `${name} is not set: gated models will fail to download.` });
  }
  return findings;
}

async function deploy(plan: Plan, credsIn: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const creds = parseBasetenCredentials(credsIn);
  const client = new BasetenClient(creds, ctx);
  const config = plan.files[CONFIG_FILE];
  if (!config) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `plan has no ${CONFIG_FILE}` });

  const secretMap = (plan.request.secrets ?? {}) as Record<string, string>;
  const secretValues: Array<[string, string]> = [];
  for (const name of plan.secretEnv) {
    const value = creds.secrets?.[name];
    if (value === undefined) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `secret ${name} has no value in the vault` });
    secretValues.push([secretMap[name] ?? name, value]);
  }

  // A model of this name may come from an earlier run of this step. Adopt it only when its production
  // deployment exists and has not failed: a push that uploaded the model and then failed (or a build that
  // failed) leaves a model that will never serve, so push again.
  const existing = await client.findModelByName(plan.resourceName);
  let modelId = existing?.id;
  let deploymentId: string | undefined;
  let needsPush = true;
  if (existing) {
    const production = await client.productionDeployment(existing.id);
    if (production && !FAILED_DEPLOYMENT_STATUSES.has(production.status)) {
      needsPush = false;
      deploymentId = production.id;
    }
  }
  // Always: the vault may hold a new value (a rotated HF token) since the model was first pushed.
  for (const [name, value] of secretValues) await client.upsertSecret(name, value);

  if (needsPush) {
    // Onto an existing model a published deployment does not replace production by itself: --promote.
    const args = ["push", ".", "--remote", "baseten", "--publish", ...(existing ? ["--promote"] : [])];
    const res = await withTempFiles({ ".trussrc": trussrc(creds.apiKey) }, (home) =>
      withTempFiles({ [CONFIG_FILE]: config }, (dir) => truss(ctx, creds, args, { cwd: dir, home, timeoutMs: PUSH_TIMEOUT_MS })),
    );
    const text = `${res.stdout}\n${res.stderr}`;
    if (res.code !== 0) {
      const unauthorized = /api key|unauthori[sz]ed|401|authenticat/i.test(text);
      throw new ProviderError({ provider: PROVIDER, code: unauthorized ? "unauthorized" : "failed", message: `truss push failed (exit ${res.code}): ${cliOutputTail(res, basetenSecrets(creds))}` });
    }
    const pushed = parsePushOutput(text);
    deploymentId = pushed.deploymentId;
    // Output format drift: the model is still findable by its (deterministic) name.
    modelId = pushed.modelId ?? modelId ?? (await client.findModelByName(plan.resourceName))?.id;
    if (!modelId) {
      throw new ProviderError({ provider: PROVIDER, code: "failed", message: `truss push succeeded but no model id was found for ${plan.resourceName}: ${cliOutputTail(res, basetenSecrets(creds))}` });
    }
  }
  if (!modelId) throw new ProviderError({ provider: PROVIDER, code: "failed", message: `no Baseten model id for ${plan.resourceName}` });
  // The deployment just pushed (it may not be in production yet when it replaces a failed one), else production.
  const autoscaling = plan.request.autoscaling_settings as Record<string, unknown>;
  await client.updateAutoscaling(modelId, deploymentId ?? "production", autoscaling);

  return {
    provider: PROVIDER,
    kind: "serverless",
    endpointUrl: inferenceBaseUrl(modelId),
    upstreamHeaders: { authorization: `Api-Key ${creds.apiKey}` },
    externalIds: { modelId, ...(deploymentId ? { deploymentId } : {}) },
  };
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const client = new BasetenClient(parseBasetenCredentials(credsIn), ctx);
  const modelId = await modelIdOf(client, ref);
  if (!modelId) return { state: "gone", message: "no such Baseten model" };
  // The deployment this component pushed or adopted: a re-push onto a failed model is promoted only once ready.
  const depId = ref.externalIds.deploymentId;
  const dep = (depId ? await client.deployment(modelId, depId) : undefined) ?? (await client.productionDeployment(modelId));
  if (!dep) return { state: "gone", message: "Baseten model has no production deployment" };
  const state = STATE[dep.status] ?? "creating";
  const replicas = Number(dep.active_replica_count ?? 0) || 0;
  return {
    state,
    message: `Baseten deployment ${dep.status}`,
    replicas: { ready: state === "ready" ? replicas : 0, total: replicas },
    endpointUrl: inferenceBaseUrl(modelId),
  };
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const client = new BasetenClient(parseBasetenCredentials(credsIn), ctx);
  const ids = new Set<string>();
  if (ref.externalIds.modelId) ids.add(ref.externalIds.modelId);
  // Also by name: a push that finished after a failed/aborted deploy leaves a model we have no id for.
  for (const m of await client.listModels()) if (m.name === ref.resourceName) ids.add(m.id);
  for (const id of ids) await client.deleteModel(id);
}

/** Deleting the model deletes its deployments and artifacts; workspace secrets are shared and kept. */
async function cleanupStorage(): Promise<void> {}

export const basetenProvider: Provider = {
  name: PROVIDER,
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: "Baseten",
  kind: "serverless",
  credentialsSchema: basetenCredentialsSchema,
  supportedGpus: () => basetenCatalog.offers.map((o) => o.gpu),
  plan: planBaseten,
  preflight,
  deploy,
  status,
  destroy,
  cleanupStorage,
};

export { planBaseten } from "./plan";
