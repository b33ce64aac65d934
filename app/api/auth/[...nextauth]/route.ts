import NextAuth from "next-auth";
import { authOptions } from "@/server/auth/options";

const handler = (req: Request, ctx: unknown) => NextAuth(req as never, ctx as never, authOptions());
export { handler as GET, handler as POST };
