import type { ProviderError } from "./errors";
import type { Finding } from "./types";

/**
 * What a preflight says about the credentials themselves (the vault's "Test"), read from finding codes, never
 * from message text:
 * - `passed`: an authenticated call to the provider's API succeeded — the preflight reports
 *   `CREDENTIALS_ACCEPTED` (info) right after that call;
 * - `failed`: the provider refused the credentials (or they are missing/incomplete) — one of
 *   `CREDENTIAL_REJECTED_CODES`;
 * - `unverified`: neither — the API was not reached (network error, timeout, 5xx), a CLI is missing, or the
 *   provider reports nothing either way. Not a pass: nobody confirmed the key.
 * A refusal wins over an acceptance (e.g. a token that signs in but lacks a role on the subscription).
 */
export type CredentialOutcome = "passed" | "failed" | "unverified";

export const CREDENTIALS_ACCEPTED = "credentials_accepted";

export const CREDENTIAL_REJECTED_CODES: ReadonlySet<string> = new Set([
  "missing_credentials",
  "invalid_credentials",
  "unauthorized",
  "forbidden",
  "project_not_found",
]);

/** The info finding a preflight adds once the provider's API accepted an authenticated call. */
export function credentialsAcceptedFinding(providerDisplayName: string): Finding {
  return { level: "info", code: CREDENTIALS_ACCEPTED, message: `${providerDisplayName} accepted the credentials.` };
}

export interface CredentialVerdict {
  outcome: CredentialOutcome;
  /** The findings that decided the outcome (refusals for `failed`, errors and warnings for `unverified`). */
  reasons: Finding[];
}

export function credentialVerdict(findings: readonly Finding[]): CredentialVerdict {
  const rejected = findings.filter((f) => f.level === "error" && CREDENTIAL_REJECTED_CODES.has(f.code));
  if (rejected.length) return { outcome: "failed", reasons: rejected };
  const accepted = findings.filter((f) => f.code === CREDENTIALS_ACCEPTED);
  if (accepted.length) return { outcome: "passed", reasons: accepted };
  return { outcome: "unverified", reasons: findings.filter((f) => f.level !== "info") };
}

/** A `ProviderError` thrown out of a preflight: a refusal (401/403) fails the credentials, anything else leaves them unverified. */
export function credentialOutcomeOfError(err: ProviderError): CredentialOutcome {
  return err.code === "unauthorized" || err.code === "forbidden" ? "failed" : "unverified";
}
