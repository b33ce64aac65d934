import { handleRouterConfigRequest } from "@/server/routerconfig";

// Routers poll this with their token and If-None-Match (DESIGN.md §3.1).
export const dynamic = "force-dynamic";
export const GET = (req: Request) => handleRouterConfigRequest(req);
