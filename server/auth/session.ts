import { getServerSession } from "next-auth";
import { authOptions } from "./options";

export interface SessionUserInfo {
  id: string;
  email: string;
  name: string | null;
}

export async function currentUser(): Promise<SessionUserInfo | null> {
  const s = await getServerSession(authOptions());
  const u = s?.user as { id?: string; email?: string | null; name?: string | null } | undefined;
  if (!u?.id || !u.email) return null;
  return { id: u.id, email: u.email, name: u.name ?? null };
}
