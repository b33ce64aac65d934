// OpenAI-shaped error bodies. Status + type + code are chosen so the official `openai` client raises
// the matching APIError subclass (401 AuthenticationError, 404 NotFoundError, 429 RateLimitError, …).
import type { RouterResponse } from "./http1.js";

export interface RouterErrorSpec {
  status: number;
  type: string;
  code: string | null;
  message: string;
  param?: string | null;
  headers?: Record<string, string>;
}

export const errors = {
  invalidJson: (): RouterErrorSpec => ({
    status: 400, type: "invalid_request_error", code: "invalid_json",
    message: "We could not parse the JSON body of your request.",
  }),
  badRequest: (message: string, param: string | null = null): RouterErrorSpec => ({
    status: 400, type: "invalid_request_error", code: null, message, param,
  }),
  missingKey: (): RouterErrorSpec => ({
    status: 401, type: "invalid_request_error", code: "invalid_api_key",
    message: "You didn't provide an API key. Send it as `Authorization: Bearer tuna_sk_...` or `x-api-key`.",
  }),
  invalidKey: (): RouterErrorSpec => ({
    status: 401, type: "invalid_request_error", code: "invalid_api_key",
    message: "Incorrect, revoked or expired API key.",
  }),
  /** An operator endpoint (/metrics, /_tuna/backends) without its bearer token. */
  wrongToken: (): RouterErrorSpec => ({
    status: 401, type: "invalid_request_error", code: "invalid_token",
    message: "This endpoint needs the operator's bearer token (Authorization: Bearer ...).",
  }),
  modelNotFound: (model: string): RouterErrorSpec => ({
    status: 404, type: "invalid_request_error", code: "model_not_found", param: "model",
    message: `The model \`${model}\` does not exist or you do not have access to it.`,
  }),
  notFound: (path: string): RouterErrorSpec => ({
    status: 404, type: "invalid_request_error", code: "not_found", message: `Unknown route ${path}.`,
  }),
  methodNotAllowed: (): RouterErrorSpec => ({
    status: 405, type: "invalid_request_error", code: "method_not_allowed", message: "Method not allowed.",
  }),
  bodyTooLarge: (limit: number): RouterErrorSpec => ({
    status: 413, type: "invalid_request_error", code: "request_too_large",
    message: `Request body exceeds ${limit} bytes.`,
  }),
  rateLimited: (what: string, retryAfterS: number): RouterErrorSpec => ({
    status: 429, type: what === "maxConcurrent" ? "requests" : what.endsWith("tpm") ? "tokens" : "requests",
    code: "rate_limit_exceeded",
    message: `Rate limit reached for ${what}. Retry after ${retryAfterS}s.`,
    headers: { "retry-after": String(retryAfterS) },
  }),
  /**
   * The request's own token reservation is above the TPM limit, so no wait can admit it. Shaped like OpenAI's
   * "Request too large" (429, type tokens); `x-should-retry: false` stops the official clients' retries.
   */
  requestTooLarge: (tpm: number, requested: number, scope: "key" | "deployment" = "key"): RouterErrorSpec => ({
    status: 429, type: "tokens", code: "rate_limit_exceeded",
    message: `Request too large for ${scope} tpm: limit ${tpm}, requested ${requested} (prompt estimate plus max_tokens). Lower max_tokens or shorten the input.`,
    headers: { "x-should-retry": "false" },
  }),
  quota: (message: string): RouterErrorSpec => ({
    status: 429, type: "insufficient_quota", code: "insufficient_quota", message,
  }),
  overloaded: (scope: string, retryAfterS = 1): RouterErrorSpec => ({
    status: 503, type: "server_error", code: "overloaded",
    message: `The ${scope} is at capacity; retry shortly.`,
    headers: { "retry-after": String(retryAfterS) },
  }),
  limiterUnavailable: (): RouterErrorSpec => ({
    status: 503, type: "server_error", code: "rate_limiter_unavailable",
    message: "Rate limiting is temporarily unavailable; retry shortly.", headers: { "retry-after": "1" },
  }),
  noBackend: (retryAfterS = 5): RouterErrorSpec => ({
    status: 503, type: "server_error", code: "no_backend_available",
    message: "No backend is available for this deployment right now.",
    headers: { "retry-after": String(retryAfterS) },
  }),
  upstream: (status: number, reason: string): RouterErrorSpec => ({
    status, type: "server_error", code: "upstream_error",
    message: `The model backend failed (${reason}).`,
  }),
  shuttingDown: (): RouterErrorSpec => ({
    status: 503, type: "server_error", code: "shutting_down", message: "The router is shutting down.",
    headers: { "retry-after": "1", connection: "close" },
  }),
};

export function sendError(res: RouterResponse, spec: RouterErrorSpec, extraHeaders?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({
    error: { message: spec.message, type: spec.type, param: spec.param ?? null, code: spec.code },
  });
  res.writeHead(spec.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...spec.headers,
    ...extraHeaders,
  });
  res.end(body);
}
