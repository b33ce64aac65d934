import { redirect } from "next/navigation";
import { currentUser } from "@/server/auth/session";
import { previewInvite } from "@/server/teams";
import { AcceptInvite } from "./AcceptInvite";

export const dynamic = "force-dynamic";

export default async function InvitePage({ params }: { params: Promise<{ token: string }> }) {
  const { token } = await params;
  const user = await currentUser();
  if (!user) redirect(`/signin?callbackUrl=${encodeURIComponent(`/invite/${token}`)}`);
  const preview = await previewInvite(token);
  return (
    <main className="flex min-h-screen items-center justify-center px-4">
      <div className="card w-full max-w-md">
        <p className="mb-4 text-xl font-semibold">Tuna</p>
        {preview.valid ? (
          <AcceptInvite token={token} teamName={preview.teamName} role={preview.role} email={user.email} />
        ) : (
          <p role="alert" className="text-sm text-red-700">{preview.problem}</p>
        )}
      </div>
    </main>
  );
}
