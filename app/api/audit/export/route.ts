import { createContextFromRequest } from "@/server/trpc/context";
import { handleAuditExport } from "./handler";

export const dynamic = "force-dynamic";
export const GET = (req: Request) => handleAuditExport(req, createContextFromRequest);
