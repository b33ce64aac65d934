import { randomBytes } from "node:crypto";
import { ProviderError } from "./errors";
import type { DeploymentSpec } from "./types";

/**
 * Upstream keys, for providers whose endpoint would otherwise answer anyone who learns its URL (Modal web
 * endpoints, SkyServe load balancers; `Provider.mintsUpstreamKey`). The lifecycle mints the key per deployment and
 * stores it before the first deploy call (so overlapping runs of a deploy step push the same one); `deploy` mints
 * one only when called without (`ctx.upstreamKey`), hands it to the engine through the provider's secret store
 * (never a command line, never a rendered file) and returns it as `Component.upstreamHeaders`, which the lifecycle
 * seals in the vault; only the router ever sends it.
 *
 * vLLM reads the key from `VLLM_API_KEY` and then requires `Authorization: Bearer <key>` on `/v1/*`, while
 * `/health` stays open for platform health checks. SGLang has no such variable: it gets `--api-key` with the
 * value read from the same variable inside the container at start (`engineKeyArgShell`, or the Modal app); its
 * key middleware (`add_api_key_middleware` in sglang/srt/utils.py) likewise leaves `/health` and `/metrics` open
 * and requires `Authorization: Bearer <key>` everywhere else.
 */
export const UPSTREAM_KEY_ENV = "VLLM_API_KEY";

/** A fresh 256-bit key; the prefix makes a leaked one recognisable. */
export function mintUpstreamKey(): string {
  return `tuna_up_${randomBytes(32).toString("base64url")}`;
}

/** What the router sends upstream with every request and readiness probe. */
export function upstreamKeyHeaders(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

/** The engine flag that takes the key on its command line, for engines that do not read `UPSTREAM_KEY_ENV`. */
export function engineKeyFlag(spec: Pick<DeploymentSpec, "engine">): string | null {
  return spec.engine.kind === "sglang" ? "--api-key" : null;
}

/** Shell words to append to `engineCommandShell(spec)`: the variable is expanded in the container, so the key is never in the file. */
export function engineKeyArgShell(spec: Pick<DeploymentSpec, "engine">): string {
  const flag = engineKeyFlag(spec);
  return flag ? ` ${flag} "$${UPSTREAM_KEY_ENV}"` : "";
}

/** A workload secret of the same name would replace the key (or be replaced by it): refused at plan time. */
export function assertNoUpstreamKeyClash(spec: Pick<DeploymentSpec, "secretNames">, provider: string): void {
  if (spec.secretNames.includes(UPSTREAM_KEY_ENV)) {
    throw new ProviderError({
      provider,
      code: "validation",
      message: `secret name ${UPSTREAM_KEY_ENV} is reserved: Tuna sets it to the endpoint's upstream key`,
    });
  }
}
