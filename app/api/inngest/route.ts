import { serve } from "inngest/next";
import { inngest } from "@/server/workflows/client";
import { functions } from "@/server/workflows/functions";

/**
 * The Inngest serve endpoint. Inngest Cloud / self-hosted Inngest / the dev server call it (signed with
 * INNGEST_SIGNING_KEY, or unsigned with INNGEST_DEV=1). Without an Inngest server the local runner drives
 * the same functions in-process (server/workflows/runner.ts), signing with a key only it holds.
 */
export const { GET, POST, PUT } = serve({ client: inngest, functions });
