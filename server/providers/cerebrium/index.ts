import { z } from "zod";
import { cerebriumCatalog, cerebriumOffer } from "../../catalog/providers/cerebrium";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import { DEFAULT_REQUEST_TIMEOUT_MS, requestJson, restError } from "../base/http";
import type { Component, ComponentStatus, Credentials, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import { cliOutputTail, runCli, stripAnsi, withTempFiles } from "../base/cli";
import { CONFIG_FILE, cerebriumAppId, DEFAULT_REGION, PROVIDER, planCerebrium } from "./plan";

/**
 * Cerebrium (provider-apis.md §7): `cerebrium deploy` builds and deploys the app from `cerebrium.toml`; the
 * REST API (`https://rest.cerebrium.ai`, Bearer service-account token) reads and deletes apps, each call bounded
 * by a per-request timeout. The CLI gets the token and project the way Cerebrium's CI/CD guide sets them
 * (`CEREBRIUM_SERVICE_ACCOUNT_TOKEN`, `CEREBRIUM_PROJECT_ID`), in the subprocess only, with a private HOME so no
 * shared CLI profile is used.
 */
export const CEREBRIUM_REST_BASE = "https://rest.cerebrium.ai";

export const cerebriumCredentialsSchema = z.object({
  /** Service-account token (dashboard → API Keys → Create Service Account): management REST API and CLI only. */
  apiKey: z.string().min(1),
  projectId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /**
   * Inference key: the JWT from the dashboard's API Keys page that the inference URL takes (provider-apis.md §7).
   * The router sends it upstream. Optional so vault entries stored before it existed keep deploying; without it
   * the router is given the service-account token, which can manage the whole project and expires (preflight
   * warns). Stored in the same `cerebrium` vault secret as a JSON field.
   */
  inferenceKey: z.string().min(1).optional(),
  /** Not used: Cerebrium secrets are project-wide and set in its dashboard (no documented API). */
  secrets: z.record(z.string(), z.string()).optional(),
});
export type CerebriumCredentials = z.infer<typeof cerebriumCredentialsSchema>;

const INSTALL_HINT = "install it with `pip install cerebrium`";
const DEPLOY_TIMEOUT_MS = 20 * 60_000;

function parseCreds(creds: Credentials | undefined): CerebriumCredentials {
  return parseCredentials(cerebriumCredentialsSchema, creds, { provider: PROVIDER, code: "validation", message: "Cerebrium credentials need apiKey and projectId" });
}

function secretsOf(creds: CerebriumCredentials): string[] {
  return sensitiveValues([creds.apiKey, ...(creds.inferenceKey ? [creds.inferenceKey] : [])], creds.secrets);
}

/** The app's public base URL (the OpenAI server is under `/v1`). */
export function inferenceBaseUrl(region: string, projectId: string, appName: string): string {
  return `https://api.aws.${region}.cerebrium.ai/v4/${projectId}/${appName}`;
}

/** The endpoint `cerebrium deploy` prints, trimmed to the app's base URL. */
export function endpointFromDeployOutput(stdout: string, projectId: string, appName: string): string | undefined {
  const clean = stripAnsi(stdout);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`https://api\\.[a-z0-9.-]+\\.cerebrium\\.ai/v4/${esc(projectId)}/${esc(appName)}(?=[/\\s]|$)`).exec(clean);
  return m?.[0];
}

/**
 * Management API version segment. provider-apis.md §7 confirms only `POST /v3/projects/{project}/apps/{app}/run`;
 * the app CRUD paths are documented as `/v2|v3/projects/{project}/apps[/{appId}]` with the version segment, the
 * response fields and the app-id format (`{project}-{app}`, see `cerebriumAppId`) unverified. We use the confirmed
 * version and never take a 404 on its own as "the app is gone" (see `confirmAppAbsent`).
 */
const API_VERSION = "v3";

/** What one provider instance is built with; tests shorten the per-request timeout. */
export interface CerebriumProviderOptions {
  /** Upper bound for one REST call (connect, headers and body). */
  requestTimeoutMs?: number;
}

type Rest = <T>(method: string, path: string) => Promise<T | undefined>;

function restClient(creds: CerebriumCredentials, ctx: ProviderContext, requestTimeoutMs: number): Rest {
  const base = (ctx.baseUrls?.cerebrium ?? CEREBRIUM_REST_BASE).replace(/\/+$/, "");
  return async <T>(method: string, path: string) =>
    (
      await requestJson<T>({
        provider: PROVIDER,
        ctx,
        what: `${method} ${path}`,
        secrets: secretsOf(creds),
        timeoutMs: requestTimeoutMs,
        method,
        url: `${base}${path}`,
        headers: { Authorization: `Bearer ${creds.apiKey}` },
        toError: (f) => restError(PROVIDER, method, path, f, ["message", "error", "detail"], secretsOf(creds)),
      })
    ).body;
}

const appsPath = (creds: CerebriumCredentials) => `/${API_VERSION}/projects/${encodeURIComponent(creds.projectId)}/apps`;
const appPath = (creds: CerebriumCredentials, appName: string) => `${appsPath(creds)}/${encodeURIComponent(cerebriumAppId(creds.projectId, appName))}`;

/** The app records of a List Apps answer: a bare array, or one under `apps`/`items`/`data` (shape unverified). */
function appRecords(body: unknown): Array<Record<string, unknown>> | undefined {
  const list = Array.isArray(body) ? body : ["apps", "items", "data"].map((k) => (body as Record<string, unknown> | undefined)?.[k]).find(Array.isArray);
  return list?.filter((a): a is Record<string, unknown> => !!a && typeof a === "object");
}

/**
 * After the app's own path answered 404: list the project's apps to tell "no such app" from "no such route".
 * A wrong path (version segment, project) answers 404 for the list too, and then nothing is confirmed: we throw
 * instead of reporting the app gone while it keeps running and billing. Resolves only when the list is readable
 * and the app is not in it.
 */
async function confirmAppAbsent(rest: Rest, creds: CerebriumCredentials, appName: string, first: ProviderError): Promise<void> {
  const listPath = appsPath(creds);
  const appId = cerebriumAppId(creds.projectId, appName);
  const unconfirmed = (why: string) =>
    new ProviderError({ provider: PROVIDER, code: "failed", message: `${first.message.replace(/^cerebrium: /, "")}; ${why}, so the app cannot be confirmed gone` });
  let body: unknown;
  try {
    body = await rest("GET", listPath);
  } catch (err) {
    if (err instanceof ProviderError && err.status === 404) throw unconfirmed(`GET ${listPath} answered 404 too (wrong API path or project, not a missing app)`);
    throw err;
  }
  const apps = appRecords(body);
  if (!apps) throw unconfirmed(`GET ${listPath} returned no app list Tuna can read`);
  if (apps.some((a) => [a.id, a.appId, a.name, a.appName].some((v) => v === appId || v === appName))) {
    throw unconfirmed(`GET ${listPath} still lists ${appId} (app path or app-id format wrong)`);
  }
}

/** `call()`, with a 404 confirmed as "no such app" by the project's app list: then `undefined`. */
async function unlessAppAbsent<T>(rest: Rest, creds: CerebriumCredentials, appName: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 404)) throw err;
    await confirmAppAbsent(rest, creds, appName, err);
    return undefined;
  }
}

/** Cerebrium app status strings are not documented; classify them by their wording. */
export function mapAppStatus(app: Record<string, unknown> | undefined): ComponentStatus {
  if (!app) return { state: "gone", message: "no such Cerebrium app" };
  const raw = String(app.status ?? app.appStatus ?? app.state ?? "unknown");
  const s = raw.toLowerCase();
  const replicas = Number(app.replicas ?? app.activeReplicas ?? app.runningReplicas ?? 0) || 0;
  let state: ComponentStatus["state"];
  if (/fail|error|crash/.test(s)) state = "failed";
  else if (/delet|terminat/.test(s)) state = "gone";
  else if (/ready|active|running|live|success|deployed/.test(s)) state = replicas > 0 ? "ready" : "scaled_to_zero";
  else if (/cold|idle|scaled/.test(s)) state = "scaled_to_zero";
  else state = "creating";
  return { state, message: `Cerebrium app ${raw}`, replicas: { ready: state === "ready" ? replicas : 0, total: replicas } };
}

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext, requestTimeoutMs: number): Promise<Finding[]> {
  const parsed = cerebriumCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [{ level: "error", code: "missing_credentials", message: "No Cerebrium service-account token and project id: create a service account (dashboard → API Keys) and add both to the team's vault." }];
  }
  const creds = parsed.data;
  const findings: Finding[] = [];
  try {
    await restClient(creds, ctx, requestTimeoutMs)("GET", appsPath(creds));
    findings.push(credentialsAcceptedFinding("Cerebrium"));
  } catch (err) {
    const e = err as ProviderError;
    if (e.code === "unauthorized" || e.code === "forbidden") return [{ level: "error", code: "unauthorized", message: `Cerebrium rejected the service-account token (HTTP ${e.status}); create a new one.` }];
    if (e.code === "not_found") return [{ level: "error", code: "project_not_found", message: `Cerebrium project ${creds.projectId} does not exist or the token cannot see it.` }];
    findings.push({ level: "error", code: "unreachable", message: e.message });
  }
  try {
    const v = await runCli(ctx, { provider: PROVIDER, installHint: INSTALL_HINT, cmd: "cerebrium", args: ["--version"], timeoutMs: 60_000, secrets: secretsOf(creds) });
    if (v.code !== 0) findings.push({ level: "error", code: "cli_missing", message: `\`cerebrium --version\` failed: ${cliOutputTail(v, secretsOf(creds))}` });
  } catch (err) {
    if (err instanceof ProviderError && err.code === "cli_missing") findings.push({ level: "error", code: "cli_missing", message: err.message });
    else throw err;
  }
  if (!creds.inferenceKey) {
    findings.push({
      level: "warning",
      code: "inference_key_missing",
      message: "No Cerebrium inference key (inferenceKey, the JWT on the dashboard's API Keys page): the router would call the app with the service-account token, which can manage the whole project and expires. Add inferenceKey to the team's Cerebrium secret.",
    });
  }
  const offer = cerebriumOffer(plan.gpu.catalogName);
  if (!offer) findings.push({ level: "error", code: "gpu_unavailable", message: `Cerebrium does not offer ${plan.gpu.catalogName}.` });
  else if (offer.note) findings.push({ level: "warning", code: "plan_required", message: `${plan.gpu.catalogName} ${offer.note}.` });
  if (plan.region !== DEFAULT_REGION) {
    findings.push({ level: "warning", code: "gpu_unavailable_in_region", message: `Cerebrium's GPU capacity outside ${DEFAULT_REGION} varies by plan; ${plan.gpu.catalogName} in ${plan.region} could not be checked.` });
  }
  for (const name of plan.secretEnv) {
    findings.push({ level: "warning", code: "secret_manual", message: `${name} must exist as a project secret in the Cerebrium dashboard; Tuna cannot set it (no documented API).` });
  }
  return findings;
}

async function deploy(plan: Plan, credsIn: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const creds = parseCreds(credsIn);
  if (!plan.files[CONFIG_FILE]) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `plan has no ${CONFIG_FILE}` });
  // `cerebrium deploy` creates or updates the app of that name: re-running it is idempotent.
  const res = await withTempFiles({}, (home) =>
    withTempFiles(plan.files, (dir) =>
      runCli(ctx, {
        provider: PROVIDER,
        installHint: INSTALL_HINT,
        cmd: "cerebrium",
        args: ["deploy", "-y", "--no-color"],
        cwd: dir,
        env: { HOME: home, CEREBRIUM_SERVICE_ACCOUNT_TOKEN: creds.apiKey, CEREBRIUM_PROJECT_ID: creds.projectId },
        timeoutMs: DEPLOY_TIMEOUT_MS,
        secrets: secretsOf(creds),
      }),
    ),
  );
  if (res.code !== 0) {
    const text = `${res.stdout}\n${res.stderr}`;
    const unauthorized = /unauthori[sz]ed|401|invalid token|expired token|not logged in|authenticat/i.test(text);
    throw new ProviderError({ provider: PROVIDER, code: unauthorized ? "unauthorized" : "failed", message: `cerebrium deploy failed (exit ${res.code}): ${cliOutputTail(res, secretsOf(creds))}` });
  }
  const endpoint = endpointFromDeployOutput(res.stdout, creds.projectId, plan.resourceName) ?? inferenceBaseUrl(plan.region, creds.projectId, plan.resourceName);
  return {
    provider: PROVIDER,
    kind: "serverless",
    endpointUrl: endpoint,
    upstreamHeaders: { authorization: `Bearer ${creds.inferenceKey ?? creds.apiKey}` },
    externalIds: { appId: cerebriumAppId(creds.projectId, plan.resourceName), projectId: creds.projectId },
  };
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext, requestTimeoutMs: number): Promise<ComponentStatus> {
  const creds = parseCreds(credsIn);
  const rest = restClient(creds, ctx, requestTimeoutMs);
  const app = await unlessAppAbsent(rest, creds, ref.resourceName, () => rest<Record<string, unknown>>("GET", appPath(creds, ref.resourceName)));
  const st = mapAppStatus(app);
  return st.state === "gone" ? st : { ...st, endpointUrl: inferenceBaseUrl(ref.region, creds.projectId, ref.resourceName) };
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext, requestTimeoutMs: number): Promise<void> {
  const creds = parseCreds(credsIn);
  const rest = restClient(creds, ctx, requestTimeoutMs);
  await unlessAppAbsent(rest, creds, ref.resourceName, () => rest("DELETE", appPath(creds, ref.resourceName)));
}

/** Deleting the app removes its builds and images; Cerebrium persistent storage is project-wide and kept. */
async function cleanupStorage(): Promise<void> {}

export function createCerebriumProvider(opts: CerebriumProviderOptions = {}): Provider {
  const requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  return {
    name: PROVIDER,
    routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
    displayName: "Cerebrium",
    kind: "serverless",
    credentialsSchema: cerebriumCredentialsSchema,
    supportedGpus: () => cerebriumCatalog.offers.map((o) => o.gpu),
    plan: planCerebrium,
    preflight: (plan, creds, ctx = {}) => preflight(plan, creds, ctx, requestTimeoutMs),
    deploy,
    status: (ref, creds, ctx = {}) => status(ref, creds, ctx, requestTimeoutMs),
    destroy: (ref, creds, ctx = {}) => destroy(ref, creds, ctx, requestTimeoutMs),
    cleanupStorage,
  };
}

export const cerebriumProvider: Provider = createCerebriumProvider();

export { cerebriumAppId, planCerebrium } from "./plan";
