import { TRPCError } from "@trpc/server";
import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/server/trpc";
import type { Context } from "@/server/trpc/init";

const ENDPOINT = "/api/trpc";

/**
 * Refuses a POST (every mutation is one) that a page on another site could have made a browser send with
 * the user's cookies. SameSite=Lax alone is not enough: an HTML form can POST multipart/form-data (which
 * tRPC accepts) or text/plain cross-site without a preflight. So a POST must be JSON (forms cannot send
 * that, and fetch cannot send it cross-origin without a CORS preflight, which this app never grants), must
 * not be marked cross-site by the browser, and, when it names an Origin, must come from the app's own one.
 * The app's client (httpBatchLink) sends application/json, same-origin; scripts and curl send no Origin.
 */
export function crossSiteRefusal(req: Request): TRPCError | null {
  if (req.method !== "POST") return null; // queries over GET only read; tRPC refuses mutations over GET
  const h = req.headers;
  if (h.get("sec-fetch-site") === "cross-site") return forbidden("Cross-site requests are not accepted: call the API from the Tuna app itself, or from a script without an Origin header.");
  const origin = h.get("origin");
  if (origin !== null && !isOwnOrigin(origin, h.get("host"))) {
    return forbidden(`Requests from ${origin.slice(0, 100)} are not accepted: only the Tuna app's own pages may call the API from a browser.`);
  }
  const type = (h.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    return new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: `Send the request body as application/json${type ? `, not ${type.slice(0, 100)}` : ""}.` });
  }
  return null;
}

function forbidden(message: string) {
  return new TRPCError({ code: "FORBIDDEN", message });
}

/** The origin NEXTAUTH_URL names (the app's public address) or, failing that, the Host the request was sent to. */
function isOwnOrigin(origin: string, host: string | null): boolean {
  let o: URL;
  try {
    o = new URL(origin); // "null" (sandboxed frames, privacy redirects) does not parse: refused
  } catch {
    return false;
  }
  if (o.protocol !== "https:" && o.protocol !== "http:") return false;
  const configured = process.env.NEXTAUTH_URL;
  if (configured) {
    try {
      if (new URL(configured).origin === o.origin) return true;
    } catch {
      /* a malformed NEXTAUTH_URL: next-auth reports it; fall back to Host */
    }
  }
  return host !== null && o.host === host.toLowerCase();
}

/** The tRPC HTTP endpoint; `createContext` builds the caller's context once the request passed the checks. */
export function handleTrpcRequest(req: Request, createContext: (req: Request) => Promise<Context>): Promise<Response> {
  const refusal = crossSiteRefusal(req);
  if (refusal) {
    // tRPC itself answers (same envelope, batching and error formatter as for any error), for a stand-in
    // request without the refused one's body: that is never parsed, and no procedure runs.
    const standIn = new Request(req.url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    return fetchRequestHandler({
      endpoint: ENDPOINT,
      req: standIn,
      router: appRouter,
      createContext: () => {
        throw refusal;
      },
    });
  }
  return fetchRequestHandler({ endpoint: ENDPOINT, req, router: appRouter, createContext: () => createContext(req) });
}
