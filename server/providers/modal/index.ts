import { z } from "zod";
import { modalCatalog, modalOffer } from "../../catalog/providers/modal";
import { parseCredentials, sensitiveValues } from "../base/credentials";
import { credentialsAcceptedFinding } from "../base/credential-check";
import { ProviderError, type ProviderErrorCode } from "../base/errors";
import type { Component, ComponentStatus, Credentials, ExecResult, Finding, Plan, Provider, ProviderContext, ResourceRef } from "../base/types";
import { MANAGED_FRONT_END_IDLE_MS } from "../base/types";
import { cliOutputTail, runCli, stripAnsi, withTempFiles } from "../base/cli";
import { mintUpstreamKey, UPSTREAM_KEY_ENV, upstreamKeyHeaders } from "../base/upstream-key";
import { APP_FILE, FUNCTION_NAME, modalNames, PROVIDER, planModal } from "./plan";

/**
 * Modal: functions (and web endpoints) can only be defined in Python and deployed with the `modal` CLI
 * (there is no REST deploy API), so this provider renders `templates/modal/app.py.tpl` and drives the CLI
 * through `ctx.exec`. The token reaches only the subprocess, via `MODAL_TOKEN_ID` / `MODAL_TOKEN_SECRET`.
 *
 * A web endpoint answers anyone with its URL, so every deploy mints an upstream key (`base/upstream-key.ts`),
 * puts it in the app's Modal Secret as `VLLM_API_KEY` and returns it as the router's `authorization` header.
 */
export const modalCredentialsSchema = z.object({
  tokenId: z.string().min(1),
  tokenSecret: z.string().min(1),
  /** Modal environment (`MODAL_ENVIRONMENT`); the workspace default when absent. */
  environment: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  /** Workload secret values (e.g. HF_TOKEN) taken from the vault for `plan.secretEnv`. */
  secrets: z.record(z.string(), z.string()).optional(),
});
export type ModalCredentials = z.infer<typeof modalCredentialsSchema>;

const INSTALL_HINT = "install it with `pip install modal`";
const DEPLOY_TIMEOUT_MS = 15 * 60_000;
const SHORT_TIMEOUT_MS = 60_000;

function parseCreds(creds: Credentials | undefined): ModalCredentials {
  return parseCredentials(modalCredentialsSchema, creds, { provider: PROVIDER, code: "validation", message: "Modal credentials need tokenId and tokenSecret" });
}

/** Values scrubbed from messages; `extra` holds the upstream key while a deploy runs. */
function secretsOf(creds: ModalCredentials, extra: string[] = []): string[] {
  return [...sensitiveValues([creds.tokenId, creds.tokenSecret], creds.secrets), ...extra];
}

function cliEnv(creds: ModalCredentials): Record<string, string> {
  return {
    MODAL_TOKEN_ID: creds.tokenId,
    MODAL_TOKEN_SECRET: creds.tokenSecret,
    ...(creds.environment ? { MODAL_ENVIRONMENT: creds.environment } : {}),
  };
}

async function modal(ctx: ProviderContext, creds: ModalCredentials, args: string[], opts: { cwd?: string; timeoutMs?: number; secrets?: string[] } = {}): Promise<ExecResult> {
  return runCli(ctx, {
    provider: PROVIDER,
    installHint: INSTALL_HINT,
    cmd: "modal",
    args,
    env: cliEnv(creds),
    cwd: opts.cwd,
    timeoutMs: opts.timeoutMs ?? SHORT_TIMEOUT_MS,
    secrets: secretsOf(creds, opts.secrets),
  });
}

const AUTH_FAILURE = /invalid token|token (id|secret)|token is (invalid|expired)|unauthori[sz]ed|not authenticated|authentication failed|AuthError|permission denied|HTTP 401/i;
const NOT_FOUND = /not found|could not find|no such|does not exist|doesn't exist|already stopped/i;
/** Click's exit code for a usage error ("No such option: --yes", "No such command 'delete'"): never "gone". */
const USAGE_ERROR_EXIT = 2;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Whether a failed teardown command says that this exact object is missing: a runtime error (not a usage
 * error, a timeout or an auth problem) with a line that both says "not found" and names `name` as a whole
 * word, so "Environment 'x' not found" or "No such command 'delete'" never count as the app or secret being gone.
 */
export function reportsMissing(res: ExecResult, name: string): boolean {
  if (res.code === 0 || res.code === USAGE_ERROR_EXIT || res.code === 124) return false;
  const text = stripAnsi(`${res.stderr}\n${res.stdout}`);
  if (AUTH_FAILURE.test(text)) return false;
  const named = new RegExp(`(?<![A-Za-z0-9._-])${escapeRegExp(name)}(?![A-Za-z0-9._-])`);
  return text.split("\n").some((line) => NOT_FOUND.test(line) && named.test(line));
}

function cliFailure(what: string, res: ExecResult, creds: ModalCredentials, extraSecrets: string[] = []): ProviderError {
  const text = `${res.stderr}\n${res.stdout}`;
  const code: ProviderErrorCode = AUTH_FAILURE.test(text) ? "unauthorized" : res.code === 124 ? "timeout" : "failed";
  return new ProviderError({ provider: PROVIDER, code, message: `${what} failed (exit ${res.code}): ${cliOutputTail(res, secretsOf(creds, extraSecrets))}` });
}

/**
 * The web URL of the `serve` function: printed by `modal deploy` ("… => https://<ws>--<app>-serve.modal.run").
 * Fallback: built from the dashboard link it prints (`https://modal.com/apps/<ws>/<env>/deployed/<app>`)
 * with Modal's URL scheme (`-<env>` after the workspace outside the default `main` environment).
 */
export function webUrlFromDeployOutput(stdout: string, app: string): string | undefined {
  const clean = stripAnsi(stdout);
  const urls = [...clean.matchAll(/https:\/\/[A-Za-z0-9-]+--[A-Za-z0-9-]+\.modal\.run/g)].map((m) => m[0]);
  const wanted = urls.find((u) => u.includes(`--${app}-${FUNCTION_NAME}.`)) ?? urls[0];
  if (wanted) return wanted;
  const dash = /https:\/\/modal\.com\/apps\/([A-Za-z0-9-]+)\/([A-Za-z0-9_-]+)\/deployed\/([A-Za-z0-9._-]+)/.exec(clean);
  if (!dash) return undefined;
  const [, ws, env] = dash;
  return `https://${ws}${env === "main" ? "" : `-${env}`}--${app}-${FUNCTION_NAME}.modal.run`;
}

interface ModalAppRow {
  id: string;
  name: string;
  state: string;
  tasks: number;
}

/** `modal app list --json` rows use the table's column titles as keys ("App ID", "Description", "State", "Tasks"). */
export function parseAppList(stdout: string): ModalAppRow[] {
  let rows: unknown;
  try {
    rows = JSON.parse(stdout);
  } catch {
    throw new ProviderError({ provider: PROVIDER, code: "failed", message: "`modal app list --json` did not print JSON" });
  }
  if (!Array.isArray(rows)) return [];
  const pick = (o: Record<string, unknown>, ...keys: string[]) => keys.map((k) => o[k]).find((v) => v !== undefined && v !== null);
  return rows.map((r) => {
    const o = r as Record<string, unknown>;
    return {
      id: String(pick(o, "App ID", "app_id", "id") ?? ""),
      name: String(pick(o, "Description", "Name", "name", "description") ?? ""),
      state: String(pick(o, "State", "state") ?? "").toLowerCase(),
      tasks: Number(pick(o, "Tasks", "tasks", "Containers") ?? 0) || 0,
    };
  });
}

async function findApp(ctx: ProviderContext, creds: ModalCredentials, name: string): Promise<ModalAppRow | undefined> {
  const res = await modal(ctx, creds, ["app", "list", "--json"]);
  if (res.code !== 0) throw cliFailure("modal app list", res, creds);
  const rows = parseAppList(res.stdout).filter((r) => r.name === name);
  return rows.find((r) => !r.state.startsWith("stop")) ?? rows[0];
}

async function preflight(plan: Plan, credsIn: Credentials | undefined, ctx: ProviderContext = {}): Promise<Finding[]> {
  const parsed = modalCredentialsSchema.safeParse(credsIn ?? {});
  if (!parsed.success) {
    return [{ level: "error", code: "missing_credentials", message: "No Modal token: create one (modal.com → Settings → API Tokens) and add its id and secret to the team's vault." }];
  }
  const creds = parsed.data;
  const findings: Finding[] = [];
  try {
    const version = await modal(ctx, creds, ["--version"]);
    if (version.code !== 0) return [{ level: "error", code: "cli_missing", message: `\`modal --version\` failed: ${cliOutputTail(version, secretsOf(creds))}` }];
    const list = await modal(ctx, creds, ["app", "list", "--json"]);
    if (list.code !== 0) {
      const e = cliFailure("modal app list", list, creds);
      return [{ level: "error", code: e.code === "unauthorized" ? "unauthorized" : "cli_error", message: e.code === "unauthorized" ? `Modal rejected the token: ${e.message}` : e.message }];
    }
    findings.push(credentialsAcceptedFinding("Modal"));
  } catch (err) {
    if (err instanceof ProviderError && err.code === "cli_missing") return [{ level: "error", code: "cli_missing", message: err.message }];
    throw err;
  }
  if (!modalOffer(plan.gpu.catalogName)) {
    findings.push({ level: "error", code: "gpu_unavailable", message: `Modal does not offer ${plan.gpu.catalogName}.` });
  }
  for (const name of plan.secretEnv) {
    if (creds.secrets?.[name] === undefined) findings.push({ level: "warning", code: "missing_secret", message: `${name} is not set: gated models will fail to download.` });
  }
  if (plan.region !== "auto") findings.push({ level: "warning", code: "region_pinned", message: `Region ${plan.region} is pinned: Modal accepts this only on Team/Enterprise plans, at a higher price.` });
  return findings;
}

async function deploy(plan: Plan, credsIn: Credentials, ctx: ProviderContext = {}): Promise<Component> {
  const creds = parseCreds(credsIn);
  const names = modalNames(plan.resourceName);
  const file = plan.files[APP_FILE];
  if (!file) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `plan has no ${APP_FILE}` });

  const values: Record<string, string> = {};
  for (const n of plan.secretEnv) {
    const v = creds.secrets?.[n];
    if (v === undefined) throw new ProviderError({ provider: PROVIDER, code: "validation", message: `secret ${n} has no value in the vault` });
    values[n] = v;
  }
  // The secret is overwritten on every run and `modal deploy` restarts the containers with it, so the key
  // returned is always the one the app holds. A re-run or relaunch pushes the key the router already has
  // (containers still on the old version keep accepting it); a first deploy mints one.
  const key = ctx.upstreamKey ?? mintUpstreamKey();
  values[UPSTREAM_KEY_ENV] = key;
  const hidden = [key];
  // From a 0600 file, so values never show up in a process listing; --force makes re-runs idempotent.
  const secret = await withTempFiles({ "secret.json": JSON.stringify(values) }, (dir) =>
    modal(ctx, creds, ["secret", "create", names.secret, "--from-json", "secret.json", "--force"], { cwd: dir, secrets: hidden }),
  );
  if (secret.code !== 0) throw cliFailure("modal secret create", secret, creds, hidden);

  // `modal deploy` creates or updates the app of that name: re-running it is idempotent.
  const res = await withTempFiles({ [APP_FILE]: file }, (dir) => modal(ctx, creds, ["deploy", APP_FILE], { cwd: dir, timeoutMs: DEPLOY_TIMEOUT_MS, secrets: hidden }));
  if (res.code !== 0) throw cliFailure("modal deploy", res, creds, hidden);
  const url = webUrlFromDeployOutput(res.stdout, names.app);
  if (!url) {
    throw new ProviderError({ provider: PROVIDER, code: "failed", message: `modal deploy succeeded but printed no web URL for ${names.app}: ${cliOutputTail(res, secretsOf(creds, hidden))}` });
  }
  return { provider: PROVIDER, kind: "serverless", endpointUrl: url, upstreamHeaders: upstreamKeyHeaders(key), externalIds: { app: names.app, webUrl: url } };
}

async function status(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
  const creds = parseCreds(credsIn);
  const name = ref.externalIds.app ?? ref.resourceName;
  const app = await findApp(ctx, creds, name);
  const endpoint = ref.externalIds.webUrl ? { endpointUrl: ref.externalIds.webUrl } : {};
  if (!app || app.state.startsWith("stop")) return { state: "gone", message: app ? `Modal app ${app.state}` : "no such Modal app" };
  if (app.state === "deployed") {
    return app.tasks > 0
      ? { state: "ready", message: `Modal app deployed, ${app.tasks} container(s)`, replicas: { ready: app.tasks, total: app.tasks }, ...endpoint }
      : { state: "scaled_to_zero", message: "Modal app deployed, no container running", replicas: { ready: 0, total: 0 }, ...endpoint };
  }
  return { state: "creating", message: `Modal app ${app.state}`, ...endpoint };
}

/**
 * Teardown: a command either succeeded or reported exactly this object missing (`reportsMissing`); anything
 * else (usage errors of another CLI version, a wrong environment, auth) fails with the CLI's message.
 */
function assertRemovedOrMissing(what: string, res: ExecResult, name: string, creds: ModalCredentials): void {
  if (res.code === 0 || reportsMissing(res, name)) return;
  throw cliFailure(what, res, creds);
}

/** Names in `modal secret list --json` / `modal volume list --json` (rows keyed by the table's "Name" column). */
export function parseNameList(stdout: string, what: string): string[] {
  let rows: unknown;
  try {
    rows = JSON.parse(stdout);
  } catch {
    throw new ProviderError({ provider: PROVIDER, code: "failed", message: `\`${what}\` did not print JSON` });
  }
  if (!Array.isArray(rows)) throw new ProviderError({ provider: PROVIDER, code: "failed", message: `\`${what}\` did not print a JSON list` });
  return rows.map((r) => {
    const o = (r ?? {}) as Record<string, unknown>;
    return String(o.Name ?? o.name ?? "");
  });
}

async function listNames(ctx: ProviderContext, creds: ModalCredentials, kind: "secret" | "volume"): Promise<string[]> {
  const what = `modal ${kind} list --json`;
  const res = await modal(ctx, creds, [kind, "list", "--json"]);
  if (res.code !== 0) throw cliFailure(`modal ${kind} list`, res, creds);
  return parseNameList(res.stdout, what);
}

function stillThere(message: string): ProviderError {
  return new ProviderError({ provider: PROVIDER, code: "failed", message });
}

async function destroy(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const creds = parseCreds(credsIn);
  const name = ref.externalIds.app ?? ref.resourceName;
  const res = await modal(ctx, creds, ["app", "stop", name, "--yes"]);
  assertRemovedOrMissing("modal app stop", res, name, creds);
  // Teardown reports success only when the listing agrees: a running GPU app left behind costs money.
  const app = await findApp(ctx, creds, name);
  if (app && !app.state.startsWith("stop")) throw stillThere(`modal app stop ${name} exited ${res.code} but \`modal app list\` still shows the app ${app.state}`);
}

async function cleanupStorage(ref: ResourceRef, credsIn: Credentials, ctx: ProviderContext = {}): Promise<void> {
  const creds = parseCreds(credsIn);
  const names = modalNames(ref.resourceName);
  const steps: Array<[string, "secret" | "volume", string]> = [
    ["modal volume delete", "volume", names.hfCacheVolume],
    ["modal volume delete", "volume", names.engineCacheVolume],
    ["modal secret delete", "secret", names.secret],
  ];
  for (const [what, kind, name] of steps) {
    const res = await modal(ctx, creds, [kind, "delete", name, "--yes"]);
    assertRemovedOrMissing(what, res, name, creds);
  }
  // The secret holds the HF token and the upstream key: confirm with the listings that nothing is left.
  for (const kind of ["volume", "secret"] as const) {
    const left = new Set(await listNames(ctx, creds, kind));
    const kept = steps.filter(([, k, name]) => k === kind && left.has(name)).map(([, , name]) => name);
    if (kept.length) throw stillThere(`modal ${kind} delete reported success but \`modal ${kind} list\` still shows ${kept.join(", ")}`);
  }
}

export const modalProvider: Provider = {
  name: PROVIDER,
  routerConnectionIdleMs: MANAGED_FRONT_END_IDLE_MS,
  displayName: "Modal",
  mintsUpstreamKey: true,
  kind: "serverless",
  credentialsSchema: modalCredentialsSchema,
  supportedGpus: () => modalCatalog.offers.map((o) => o.gpu),
  plan: planModal,
  preflight,
  deploy,
  status,
  destroy,
  cleanupStorage,
};

export { modalNames, planModal } from "./plan";
