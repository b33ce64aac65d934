/**
 * Domain errors are values with codes. One table maps each code to a tRPC code and an HTTP status, so
 * services never think about transports and every surface reports the same thing.
 */
export type DomainErrorCode =
  | "BAD_REQUEST"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CONFLICT"
  | "TOO_MANY_REQUESTS"
  | "PRECONDITION_FAILED"
  | "UNAVAILABLE"
  | "INTERNAL";

export const ERROR_MAP: Record<DomainErrorCode, { trpc: "BAD_REQUEST" | "UNAUTHORIZED" | "FORBIDDEN" | "NOT_FOUND" | "CONFLICT" | "TOO_MANY_REQUESTS" | "PRECONDITION_FAILED" | "SERVICE_UNAVAILABLE" | "INTERNAL_SERVER_ERROR"; http: number }> = {
  BAD_REQUEST: { trpc: "BAD_REQUEST", http: 400 },
  UNAUTHENTICATED: { trpc: "UNAUTHORIZED", http: 401 },
  FORBIDDEN: { trpc: "FORBIDDEN", http: 403 },
  NOT_FOUND: { trpc: "NOT_FOUND", http: 404 },
  CONFLICT: { trpc: "CONFLICT", http: 409 },
  TOO_MANY_REQUESTS: { trpc: "TOO_MANY_REQUESTS", http: 429 },
  PRECONDITION_FAILED: { trpc: "PRECONDITION_FAILED", http: 412 },
  UNAVAILABLE: { trpc: "SERVICE_UNAVAILABLE", http: 503 },
  INTERNAL: { trpc: "INTERNAL_SERVER_ERROR", http: 500 },
};

export class DomainError extends Error {
  readonly code: DomainErrorCode;
  /** Machine-readable reason, e.g. "last_admin", "missing_permission". */
  readonly reason?: string;
  readonly details?: Record<string, unknown>;
  constructor(code: DomainErrorCode, message: string, opts: { reason?: string; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = "DomainError";
    this.code = code;
    this.reason = opts.reason;
    this.details = opts.details;
  }
}

export const notFound = (what: string) => new DomainError("NOT_FOUND", `${what} not found`);
