import type { z } from "zod";
import { ProviderError, type ProviderErrorCode } from "./errors";
import type { Credentials } from "./types";

/**
 * Decrypted vault credentials checked against a provider's `credentialsSchema`. What a refusal says (and
 * whether it is `unauthorized` or `validation`) is the provider's call, so it is passed in.
 */
export function parseCredentials<T>(
  schema: z.ZodType<T>,
  creds: Credentials | undefined,
  onInvalid: { provider: string; code: ProviderErrorCode; message: string | ((error: z.ZodError) => string) },
): T {
  const r = schema.safeParse(creds ?? {});
  if (!r.success) {
    const message = typeof onInvalid.message === "function" ? onInvalid.message(r.error) : onInvalid.message;
    throw new ProviderError({ provider: onInvalid.provider, code: onInvalid.code, message });
  }
  return r.data;
}

/** The values to scrub from messages: the provider's own keys plus the workload secrets (e.g. HF_TOKEN). */
export function sensitiveValues(keys: string[], workloadSecrets: Record<string, string> | undefined): string[] {
  return [...keys, ...Object.values(workloadSecrets ?? {})];
}
