import { z } from "zod";
import { cerebriumCatalog, cerebriumOffer } from "../../catalog/providers/cerebrium";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError } from "../base/errors";
import { requestJson, restError, undefinedIfNotFound } from "../base/http";
import type { Component, ComponentStatus, Credentials, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import { cliOutputTail, runCli, stripAnsi, withTempFiles } from "../base/cli";
import { CONFIG_FILE, cerebriumAppId, DEFAULT_REGION, PROVIDER, planCerebrium } from "./plan";

/**
 * Cerebrium (provider-apis.md §7): `cerebrium deploy` builds and deploys the app from `cerebrium.toml`; the
 * REST API (`https://rest.cerebrium.ai`, Bearer service-account token) reads and deletes apps. The CLI gets
 * the token and project the way Cerebrium's CI/CD guide sets them (`CEREBRIUM_SERVICE_ACCOUNT_TOKEN`,
 * `CEREBRIUM_PROJECT_ID`), in the subprocess only, with a private HOME so no shared CLI profile is used.
 */
export const CEREBRIUM_REST_BASE = "https://rest.cerebrium.ai";

export const cerebriumCredentialsSchema = z.object({
  /** Service-account token (dashboard → API Keys → Create Service Account). */
  apiKey: z.string().min(1),
  projectId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
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
  return sensitiveValues([creds.apiKey], creds.secrets);
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

async function rest<T>(creds: CerebriumCredentials, ctx: ProviderContext, method: string, path: string, opts: { allow404?: boolean } = {}): Promise<T | undefined> {
  const base = (ctx.baseUrls?.cerebrium ?? CEREBRIUM_REST_BASE).replace(/\/+$/, "");
  const call = requestJson<T>({
    provider: PROVIDER,
    ctx,
    what: `${method} ${path}`,
    secrets: secretsOf(creds),
    method,
    url: `${base}${path}`,
    headers: { Authorization: `Bearer ${creds.apiKey}` },
    toError: (f) => restError(PROVIDER, method, path, f, ["message", "error", "detail"], secretsOf(creds)),
  });
  return (opts.allow404 ? await undefinedIfNotFound(call) : await call)?.body;
}

const appPath = (creds: CerebriumCredentials, appName: string) =>
  `/v2/projects/${encodeURIComponent(creds.projectId)}/apps/${encodeURIComponent(cerebriumAppId(creds.projectId, appName))}`;

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

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const parsed = cerebriumCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [{ level: "error", code: "missing_credentials", message: "No Cerebrium service-account token and project id: create a service account (dashboard → API Keys) and add both to the team's vault." }];
  }
  const creds = parsed.data;
  const findings: Finding[] = [];
  try {
    await rest(creds, ctx, "GET", `/v2/projects/${encodeURIComponent(creds.projectId)}/apps`);
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
    upstreamHeaders: { authorization: `Bearer ${creds.apiKey}` },
    externalIds: { appId: cerebriumAppId(creds.projectId, plan.resourceName), projectId: creds.projectId },
  };
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const creds = parseCreds(credsIn);
  const app = await rest<Record<string, unknown>>(creds, ctx, "GET", appPath(creds, ref.resourceName), { allow404: true });
  const st = mapAppStatus(app);
  return st.state === "gone" ? st : { ...st, endpointUrl: inferenceBaseUrl(ref.region, creds.projectId, ref.resourceName) };
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const creds = parseCreds(credsIn);
  await rest(creds, ctx, "DELETE", appPath(creds, ref.resourceName), { allow404: true });
}

/** Deleting the app removes its builds and images; Cerebrium persistent storage is project-wide and kept. */
async function cleanupStorage(): Promise<void> {}

export const cerebriumProvider: Provider = {
  name: PROVIDER,
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: "Cerebrium",
  kind: "serverless",
  credentialsSchema: cerebriumCredentialsSchema,
  supportedGpus: () => cerebriumCatalog.offers.map((o) => o.gpu),
  plan: planCerebrium,
  preflight,
  deploy,
  status,
  destroy,
  cleanupStorage,
};

export { cerebriumAppId, planCerebrium } from "./plan";
