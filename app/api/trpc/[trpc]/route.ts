import { installPeerAddressStamp } from "@/server/lib/client-ip";
import { createContextFromRequest } from "@/server/trpc/context";
import { handleTrpcRequest } from "./handler";

// Best installed from instrumentation at startup; here too, so X-Forwarded-For is stamped in any case.
installPeerAddressStamp();

const handler = (req: Request) => handleTrpcRequest(req, createContextFromRequest);

export { handler as GET, handler as POST };
export const dynamic = "force-dynamic";
