/**
 * Errors a provider raises. `retryable` drives workflow retries (429, 5xx, timeouts) vs. permanent failure
 * (validation, auth). Messages keep the provider's status and text, with secrets removed by `redact`.
 */
export type ProviderErrorCode =
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "rate_limited"
  | "quota"
  | "validation"
  | "unavailable"
  | "timeout"
  | "cli_missing"
  | "failed";

export class ProviderError extends Error {
  readonly code: ProviderErrorCode;
  readonly provider: string;
  readonly status?: number;
  readonly retryable: boolean;

  constructor(opts: { provider: string; code: ProviderErrorCode; message: string; status?: number; retryable?: boolean }) {
    super(`${opts.provider}: ${opts.message}`);
    this.name = "ProviderError";
    this.provider = opts.provider;
    this.code = opts.code;
    this.status = opts.status;
    this.retryable = opts.retryable ?? (opts.code === "rate_limited" || opts.code === "unavailable" || opts.code === "timeout");
  }
}

export function codeForStatus(status: number): ProviderErrorCode {
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 429) return "rate_limited";
  if (status === 400 || status === 422) return "validation";
  if (status >= 500) return "unavailable";
  return "failed";
}

/** Replace every occurrence of each secret (and long token-looking strings) in `text`. */
export function redact(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  }
  return out.replace(/\b(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/g, "$1[redacted]");
}
