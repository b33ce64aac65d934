import { type NextRequest, NextResponse } from "next/server";
import { PATH_HEADER } from "@/app/_lib/path-header";


/**
 * Hands the requested path to server components, which cannot read the URL themselves: a signed-out visitor
 * of /deployments/abc is sent to /signin?callbackUrl=/deployments/abc and comes back there after signing in.
 * Always overwritten, so a client cannot supply its own (the sign-in page also checks it is a local path).
 */
export function proxy(req: NextRequest) {
  const headers = new Headers(req.headers);
  headers.set(PATH_HEADER, `${req.nextUrl.pathname}${req.nextUrl.search}`);
  return NextResponse.next({ request: { headers } });
}

// Pages only: not the API, Next's assets or the sign-in pages.
export const config = { matcher: ["/((?!api/|_next/|favicon\\.ico|signin|signup).*)"] };
