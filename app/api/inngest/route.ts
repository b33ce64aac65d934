import { serve } from "inngest/next";
import { inngest } from "@/server/workflows/client";
import { usesInngestServer } from "@/server/workflows/events";
import { functions } from "@/server/workflows/functions";

/**
 * The Inngest serve endpoint, for an Inngest server only: Inngest Cloud or self-hosted Inngest (signed with
 * INNGEST_SIGNING_KEY) or the Inngest dev server (INNGEST_BASE_URL + INNGEST_DEV=1, unsigned: development only).
 *
 * Without an Inngest server the local runner drives the same functions in-process (server/workflows/runner.ts)
 * and nothing may call this route: it answers 404. Served in that mode, it ran any step of any function for
 * anyone, since there is no key a caller's signature could be checked against (a destroy of another team's
 * deployment, a deploy past its approval).
 */
const handlers = serve({ client: inngest, functions });

type Handler = (typeof handlers)["POST"];
const closed = () => Response.json({ error: "Not found" }, { status: 404 });
const onlyWithInngestServer =
  (h: Handler): Handler =>
  (...args) =>
    usesInngestServer() ? h(...args) : Promise.resolve(closed());

export const GET = onlyWithInngestServer(handlers.GET);
export const POST = onlyWithInngestServer(handlers.POST);
export const PUT = onlyWithInngestServer(handlers.PUT);
