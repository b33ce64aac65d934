/**
 * Plain words for requests that never got a proper answer from Tuna. The browser's own wording ("Failed to
 * fetch", "NetworkError when attempting to fetch resource.", "Load failed") and a JSON parser choking on a
 * proxy's 502 page ("Unexpected token '<'…") mean nothing to a user. Pure (no React, no server imports), so
 * the tRPC client, the sign-in form and the audit export share it, and it is unit-tested in plain Node.
 */

export const CANT_REACH_TUNA = "Can't reach Tuna. Check your connection and try again.";
export const TUNA_UNAVAILABLE = "Tuna is not responding right now. Try again in a moment.";

/** A request that got no usable answer: no connection at all, or a reply that is not Tuna's JSON (a proxy's page). */
export class TransportError extends Error {
  override name = "TransportError";
  constructor(
    message: string,
    /** HTTP status of a reply that was not JSON; absent when nothing came back. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// What fetch throws when nothing came back, by engine: Chromium, Firefox, Safari, React Native, Node (undici).
const NETWORK_FAILURE = /^(Failed to fetch|NetworkError when attempting to fetch resource\.?|Load failed|Network request failed|fetch failed|The network connection was lost\.?|The Internet connection appears to be offline\.?)$/i;
// What parsing a non-JSON body throws (V8, SpiderMonkey, JavaScriptCore), and tRPC's own error for JSON of the wrong shape.
const NOT_TUNAS_REPLY = /is not valid JSON|^Unexpected token|^Unexpected end of JSON input|^JSON\.parse:|^The string did not match the expected pattern\.?$|^Unable to transform response from server$/i;

function isAbort(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === "AbortError";
}

/**
 * `fetch`, except that a request which got no usable answer fails with a TransportError in plain words:
 * nothing came back (offline, server down, connection refused), or the reply is not JSON (a 502/503/504 page
 * of a proxy, an HTML error page). Cancellations (AbortError) pass through unchanged: React Query cancels
 * queries that way and must recognise them.
 */
export function withTransportErrors(
  fetchImpl: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> = (i, init) => globalThis.fetch(i, init),
  /** Content types that are Tuna's own replies (tRPC and the API answer JSON, errors included). */
  accepted: readonly string[] = ["json"],
) {
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    let res: Response;
    try {
      res = await fetchImpl(input, init);
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new TransportError(CANT_REACH_TUNA, undefined, { cause: e });
    }
    const type = (res.headers.get("content-type") ?? "").toLowerCase();
    if (!accepted.some((a) => type.includes(a))) {
      throw new TransportError(res.status >= 500 ? TUNA_UNAVAILABLE : `Tuna sent an unexpected reply (HTTP ${res.status}). Reload the page and try again.`, res.status);
    }
    return res;
  };
}

/**
 * The plain message for an error that is about the connection rather than about the request, or null when
 * the error is Tuna's own answer (which already says what went wrong). Looks through `cause` chains, since
 * tRPC and React Query wrap what fetch threw.
 */
export function transportProblem(e: unknown): string | null {
  for (let cur = e, depth = 0; cur && typeof cur === "object" && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const err = cur as { name?: string; message?: unknown; data?: unknown; shape?: unknown };
    if (err.name === "TransportError" && typeof err.message === "string") return err.message;
    // A tRPC error carrying the server's error shape is Tuna's answer, whatever its words.
    if (err.data || err.shape) return null;
    if (typeof err.message === "string") {
      const m = err.message.trim();
      if (NETWORK_FAILURE.test(m)) return CANT_REACH_TUNA;
      if (NOT_TUNAS_REPLY.test(m)) return TUNA_UNAVAILABLE;
    }
  }
  return null;
}
