import NextAuth from "next-auth";
import { authOptions } from "@/server/auth/options";
import { installPeerAddressStamp } from "@/server/lib/client-ip";

// The sign-in limits key on the client's address (server/lib/client-ip.ts): make sure it is stamped.
installPeerAddressStamp();

const handler = (req: Request, ctx: unknown) => NextAuth(req as never, ctx as never, authOptions());
export { handler as GET, handler as POST };
