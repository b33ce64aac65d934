/**
 * Secret kinds as data: what each kind holds, how its value is checked when stored, which field its
 * "last 4" comes from, which providers consume it and how its stored value becomes provider credentials.
 * Validation messages name fields, never values.
 */
import net from "node:net";
import { bareHost, hostAllowed, isLocalhostName, parseAllowlist } from "@tuna/router-service/address";
import { ALLOW_PRIVATE_URLS_ENV, classifyAddress, OUTBOUND_POLICIES, outboundUrlProblem } from "../lib/outbound-url";

export const SECRET_KINDS = [
  "runpod",
  "gcp-service-account",
  "azure-service-principal",
  "baseten",
  "modal",
  "cerebrium",
  "skypilot",
  "aws",
  "huggingface",
  "slack-webhook",
  "webhook",
] as const;

export type SecretKind = (typeof SECRET_KINDS)[number];

interface KindSpec {
  displayName: string;
  /** "json": value must be a JSON object with these fields; "text": any non-empty string; "url": webhook URL. */
  format: "json" | "text" | "url" | "text-or-json";
  requiredFields?: string[];
  /** Field whose last 4 characters are displayed (JSON kinds); the whole value otherwise. */
  displayField?: string;
  /** Turns the stored value into the provider credential object. */
  toCredentials?: (value: string) => Record<string, unknown>;
  /** What to tell a user who has none. */
  addHint: string;
}

function parseJsonObject(value: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(value) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A plain token becomes `{ apiKey }`; a JSON object is taken as the credential object itself. */
const tokenOrObject = (field: string) => (value: string) => parseJsonObject(value) ?? { [field]: value.trim() };

export const KIND_SPECS: Record<SecretKind, KindSpec> = {
  runpod: { displayName: "RunPod API key", format: "text-or-json", displayField: "apiKey", toCredentials: tokenOrObject("apiKey"), addHint: "Add a RunPod API key in the vault" },
  "gcp-service-account": {
    displayName: "GCP service-account JSON",
    format: "json",
    requiredFields: ["client_email", "private_key"],
    displayField: "private_key_id",
    toCredentials: (value) => {
      const o = parseJsonObject(value) ?? {};
      // Either the key file itself, or an object already in the provider's credential shape.
      if (typeof o.serviceAccountJson === "string") return o;
      return { serviceAccountJson: value, ...(typeof o.project_id === "string" ? { projectId: o.project_id } : {}) };
    },
    addHint: "Add a GCP service-account key (JSON) in the vault",
  },
  "azure-service-principal": {
    displayName: "Azure service principal",
    format: "json",
    requiredFields: ["tenantId", "clientId", "clientSecret", "subscriptionId", "resourceGroup"],
    displayField: "clientSecret",
    toCredentials: (value) => parseJsonObject(value) ?? {},
    addHint: "Add an Azure service principal (tenantId, clientId, clientSecret, subscriptionId, resourceGroup) in the vault",
  },
  baseten: { displayName: "Baseten API key", format: "text-or-json", displayField: "apiKey", toCredentials: tokenOrObject("apiKey"), addHint: "Add a Baseten API key in the vault" },
  modal: {
    displayName: "Modal token",
    format: "json",
    requiredFields: ["tokenId", "tokenSecret"],
    displayField: "tokenSecret",
    toCredentials: (value) => parseJsonObject(value) ?? {},
    addHint: "Add a Modal token (tokenId and tokenSecret) in the vault",
  },
  cerebrium: { displayName: "Cerebrium token", format: "text-or-json", displayField: "apiKey", toCredentials: tokenOrObject("apiKey"), addHint: "Add a Cerebrium token in the vault (JSON with apiKey, projectId and, for routers, inferenceKey)" },
  skypilot: {
    displayName: "SkyPilot API server",
    format: "text-or-json",
    displayField: "token",
    toCredentials: tokenOrObject("apiServerUrl"),
    addHint: "Add the SkyPilot API server URL and token in the vault",
  },
  aws: {
    displayName: "AWS credentials (for SkyPilot)",
    format: "json",
    requiredFields: ["accessKeyId", "secretAccessKey"],
    displayField: "secretAccessKey",
    addHint: "Add AWS credentials in the vault",
  },
  huggingface: { displayName: "Hugging Face token", format: "text", addHint: "Add a Hugging Face token in the vault" },
  "slack-webhook": { displayName: "Slack incoming webhook URL", format: "url", addHint: "Add a Slack incoming webhook URL" },
  webhook: { displayName: "JSON webhook URL", format: "url", addHint: "Add a webhook URL" },
};

/** Provider registry name → the secret kind that holds its credentials (null: needs none). */
export const PROVIDER_SECRET_KIND: Record<string, SecretKind | null> = {
  runpod: "runpod",
  cloudrun: "gcp-service-account",
  azure: "azure-service-principal",
  skyserve: "skypilot",
  modal: "modal",
  baseten: "baseten",
  cerebrium: "cerebrium",
  local: null,
  "local-spot": null,
};

/** Display names used in actionable messages. */
export const PROVIDER_DISPLAY: Record<string, string> = {
  runpod: "RunPod",
  cloudrun: "Cloud Run",
  azure: "Azure Container Apps",
  skyserve: "SkyPilot",
  modal: "Modal",
  baseten: "Baseten",
  cerebrium: "Cerebrium",
};

export function providersForKind(kind: string): string[] {
  return Object.entries(PROVIDER_SECRET_KIND)
    .filter(([, k]) => k === kind)
    .map(([p]) => p);
}

/** An outbound-URL refusal as a clause of "Cannot store this …: <clause>." */
function asClause(message: string): string {
  return `${message.charAt(0).toLowerCase()}${message.slice(1)}`.replace(/\.$/, "");
}

/**
 * Slack's incoming webhooks: https://hooks.slack.com/services/T…/B…/<token> (workspace id, webhook id, secret
 * token). GovSlack runs on its own domain, slack-gov.com (https://api.slack-gov.com/gov-slack/about), with the
 * same shape on hooks.slack-gov.com.
 */
export const SLACK_WEBHOOK_HOSTS = ["hooks.slack.com", "hooks.slack-gov.com"] as const;
const SLACK_WEBHOOK_PATH = /^\/services\/T[A-Z0-9]+\/B[A-Z0-9]+\/[A-Za-z0-9_-]+$/;

/**
 * A local stand-in for Slack the operator allowed (TUNA_ALLOW_PRIVATE_URLS): an internal address or a host name on
 * that list. Only reached after the outbound-URL check passed, so an internal address here is an allowed one.
 */
function operatorStandIn(hostname: string): boolean {
  const host = bareHost(hostname);
  if (net.isIP(host)) return classifyAddress(host) !== null;
  return isLocalhostName(host) || hostAllowed(parseAllowlist(process.env[ALLOW_PRIVATE_URLS_ENV]), host);
}

function slackWebhookProblem(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "it is not a URL";
  }
  const hostOk = (SLACK_WEBHOOK_HOSTS as readonly string[]).includes(url.hostname.toLowerCase()) || operatorStandIn(url.hostname);
  if (hostOk && SLACK_WEBHOOK_PATH.test(url.pathname) && !url.search) return null;
  return "it must look like https://hooks.slack.com/services/T…/B…/… (copy it from Incoming Webhooks in your Slack app's settings)";
}

/** Returns a problem description (never quoting the value) or null when the value fits the kind. */
export function validateSecretValue(kind: SecretKind, value: string): string | null {
  const spec = KIND_SPECS[kind];
  if (!value.trim()) return "the value is empty";
  if (spec.format === "json") {
    const o = parseJsonObject(value);
    if (!o) return `a ${spec.displayName} must be a JSON object`;
    const missing = (spec.requiredFields ?? []).filter((f) => typeof o[f] !== "string" || !(o[f] as string).length);
    if (missing.length) return `the ${spec.displayName} is missing ${missing.join(", ")}`;
  }
  if (spec.format === "url") {
    // https to a public host; plain http and private/loopback hosts only where the operator allowed them
    // (TUNA_ALLOW_PRIVATE_URLS, e.g. a local stand-in). Host names are resolved when the alert is sent.
    const problem = outboundUrlProblem(value.trim(), OUTBOUND_POLICIES.webhook);
    if (problem) return asClause(problem);
    if (kind === "slack-webhook") {
      const notSlack = slackWebhookProblem(value.trim());
      if (notSlack) return notSlack;
    }
  }
  if (kind === "skypilot") {
    // The API server URL is tenant-supplied and the control plane calls it: no private/loopback address (unless
    // allowed), no credentials, "#" or "?" in it. Its host name is resolved and checked again before every use.
    const url = credentialsFromValue(kind, value).apiServerUrl;
    if (typeof url === "string") {
      const problem = outboundUrlProblem(url, OUTBOUND_POLICIES.skypilotApiServer);
      if (problem) return asClause(problem);
    }
  }
  return null;
}

/** Last 4 characters shown in the UI; nothing for values too short to hide the rest. */
export function displayLast4(kind: SecretKind, value: string): string {
  const spec = KIND_SPECS[kind];
  let shown = value.trim();
  if (spec.displayField) {
    const o = parseJsonObject(value);
    if (o) shown = typeof o[spec.displayField] === "string" ? (o[spec.displayField] as string) : "";
  }
  return shown.length >= 12 ? shown.slice(-4) : "";
}

export function credentialsFromValue(kind: SecretKind, value: string): Record<string, unknown> {
  const spec = KIND_SPECS[kind];
  return spec.toCredentials ? spec.toCredentials(value) : (parseJsonObject(value) ?? { value });
}
