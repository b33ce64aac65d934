import { TRPCError } from "@trpc/server";
import { getHTTPStatusCodeFromError } from "@trpc/server/http";
import { z, ZodError } from "zod";
import { plainFieldErrors } from "@/app/_lib/field-messages";
import { createCaller } from "@/server/trpc";
import type { Context } from "@/server/trpc/init";
import { EXPORT_MAX_ROWS_HEADER, EXPORT_ROWS_HEADER, EXPORT_TRUNCATED_HEADER } from "./headers";


function dateParam(v: string | null): Date | undefined {
  return v ? new Date(v) : undefined; // an unparseable date is an Invalid Date, which the procedure's schema refuses
}

function errorResponse(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status, headers: { "cache-control": "no-store" } });
}

/**
 * GET /api/audit/export?actor=&action=&from=&to= (dates as ISO instants): the filtered audit log as a CSV
 * download. It goes through the tRPC procedure `audit.export`, so the team (x-tuna-team header, as for every
 * call of the page, else the cookie), the membership and the permission are checked exactly as for listing
 * the log: a stranger to the team gets 404, a member without audit.read 403 naming it, nobody signed in 401.
 */
export async function handleAuditExport(req: Request, createContext: (req: Request) => Promise<Context>): Promise<Response> {
  const params = new URL(req.url).searchParams;
  const input = {
    actorId: params.get("actor") || undefined,
    action: params.get("action") || undefined,
    from: dateParam(params.get("from")),
    to: dateParam(params.get("to")),
  };
  try {
    const r = await createCaller(await createContext(req)).audit.export(input);
    return new Response(r.csv, {
      headers: {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${r.filename}"`,
        "cache-control": "no-store",
        [EXPORT_ROWS_HEADER]: String(r.rows),
        [EXPORT_TRUNCATED_HEADER]: r.truncated ? "1" : "0",
        [EXPORT_MAX_ROWS_HEADER]: String(r.maxRows),
      },
    });
  } catch (e) {
    if (!(e instanceof TRPCError)) throw e;
    if (e.cause instanceof ZodError) {
      const fields = plainFieldErrors(z.flattenError(e.cause).fieldErrors as Record<string, string[] | undefined>);
      const words = Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ");
      return errorResponse(400, e.code, `These filters cannot be exported (${words || "invalid input"}).`);
    }
    if (e.code === "INTERNAL_SERVER_ERROR") {
      console.error("[audit export] internal error:", e.cause ?? e);
      return errorResponse(500, e.code, "Something went wrong on our side. Try again, and tell us if it persists.");
    }
    return errorResponse(getHTTPStatusCodeFromError(e), e.code, e.message);
  }
}
