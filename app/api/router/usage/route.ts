import { handleUsageRequest } from "@/server/usage";

// Routers post batched usage reports here (DESIGN.md §3.2); a resent batch is counted once.
export const dynamic = "force-dynamic";
export const POST = (req: Request) => handleUsageRequest(req);
