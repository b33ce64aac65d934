import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/server/trpc";
import { createContextFromRequest } from "@/server/trpc/context";

const handler = (req: Request) =>
  fetchRequestHandler({ endpoint: "/api/trpc", req, router: appRouter, createContext: () => createContextFromRequest(req) });

export { handler as GET, handler as POST };
export const dynamic = "force-dynamic";
