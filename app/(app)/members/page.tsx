"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { ColumnDef } from "@tanstack/react-table";
import { useMemo, useState, type FormEvent } from "react";
import { errorMessage, useTRPC } from "@/app/_lib/trpc";
import { useHydrated } from "@/app/_lib/hydrated";
import { DataTable } from "@/app/_components/DataTable";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { ConfirmButton } from "@/app/_components/controls";
import { CLEAR_TEAM_COOKIE } from "@/server/teams/cookie";
import { useTeam } from "../AppShell";

const ROLES = ["admin", "developer", "viewer"] as const;
type Role = (typeof ROLES)[number];

interface Member {
  userId: string;
  name: string | null;
  email: string | null;
  role: Role;
  since: Date;
}

/** "Ada Admin (ada@example.test)", or just the email when the member has no name. */
function memberLabel(m: Member): string {
  return m.name ? `${m.name} (${m.email})` : (m.email ?? "this member");
}

export default function MembersPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can, teamName } = useTeam();
  const manage = can("member.manage");
  const me = useQuery(trpc.me.get.queryOptions());
  const members = useQuery(trpc.team.members.queryOptions());
  const invites = useQuery({ ...trpc.team.invites.queryOptions(), enabled: manage });
  const table = useQuery(trpc.team.permissionTable.queryOptions());
  const [actionError, setActionError] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries();
  const onError = (e: unknown) => setActionError(errorMessage(e));
  const changeRole = useMutation(trpc.team.changeRole.mutationOptions({ onSuccess: refresh, onError }));
  const remove = useMutation(trpc.team.removeMember.mutationOptions({ onSuccess: refresh, onError }));
  const leave = useMutation(
    trpc.team.leave.mutationOptions({
      onSuccess: () => {
        // The team left is the selected one: drop the selection so "/" opens the user's first remaining team.
        document.cookie = CLEAR_TEAM_COOKIE;
        window.location.assign("/");
      },
      onError,
    }),
  );
  const revoke = useMutation(trpc.team.revokeInvite.mutationOptions({ onSuccess: refresh, onError }));
  // `mutate` is stable across renders (the mutation object is not): the columns, and so the cells' state (a
  // role picked but not yet confirmed, an open dialog), survive re-renders, e.g. a refetch.
  const { mutate: changeRoleMutate } = changeRole;
  const { mutate: leaveMutate } = leave;
  const { mutate: removeMutate } = remove;

  const columns = useMemo<ColumnDef<Member>[]>(
    () => [
      { header: "Name", cell: ({ row }) => row.original.name ?? "—" },
      { header: "Email", cell: ({ row }) => row.original.email },
      {
        header: "Role",
        cell: ({ row }) =>
          manage ? (
            // Keyed by the saved role: once a change lands (or the list refreshes), the picker starts from it again.
            <RoleCell
              key={`${row.original.userId}:${row.original.role}`}
              member={row.original}
              isMe={row.original.userId === me.data?.id}
              onChange={(role, failed) => {
                setActionError(null);
                changeRoleMutate({ userId: row.original.userId, role }, { onError: failed });
              }}
            />
          ) : (
            <span className="capitalize">{row.original.role}</span>
          ),
      },
      { header: "Member since", cell: ({ row }) => new Date(row.original.since).toLocaleDateString() },
      {
        header: "",
        id: "actions",
        cell: ({ row }) =>
          row.original.userId === me.data?.id ? (
            <ConfirmButton
              label="Leave"
              title={`Leave ${teamName ?? "this team"}?`}
              message="You lose access to its deployments, keys and settings at once. To come back, you need a new invitation."
              confirmLabel="Leave team"
              danger
              className="btn-secondary"
              onConfirm={() => {
                setActionError(null);
                leaveMutate();
              }}
            />
          ) : manage ? (
            <ConfirmButton
              label="Remove"
              className="btn-secondary text-red-700"
              title={`Remove ${memberLabel(row.original)} from ${teamName ?? "this team"}?`}
              message="They lose access to the team at once. To come back, they need a new invitation."
              confirmLabel="Remove member"
              danger
              onConfirm={() => {
                setActionError(null);
                removeMutate({ userId: row.original.userId });
              }}
            />
          ) : null,
      },
    ],
    [manage, me.data?.id, teamName, changeRoleMutate, leaveMutate, removeMutate],
  );

  return (
    <>
      <PageHeader title="Members" description="Who is in this team and what each role may do." />
      {actionError ? <div className="mb-4"><ErrorBox message={actionError} /></div> : null}
      {manage ? <InviteForm onCreated={refresh} /> : <Notice>Only admins can invite members or change roles.</Notice>}
      <section className="mt-6">
        <h2 className="mb-2 text-sm font-semibold text-gray-900">Members</h2>
        {members.isPending ? <Loading /> : members.error ? <ErrorBox message={errorMessage(members.error)} onRetry={() => members.refetch()} /> : (
          <DataTable testId="members-table" caption="Team members" data={members.data as Member[]} columns={columns} />
        )}
      </section>
      {manage ? (
        <section className="mt-6">
          <h2 className="mb-2 text-sm font-semibold text-gray-900">Pending invitations</h2>
          {invites.isPending ? <Loading /> : invites.error ? <ErrorBox message={errorMessage(invites.error)} /> : invites.data.length === 0 ? (
            <Empty title="No pending invitations" />
          ) : (
            <ul className="divide-y rounded-lg bg-white ring-1 ring-gray-200">
              {invites.data.map((i) => (
                <li key={i.id} className="flex items-center justify-between px-4 py-2 text-sm">
                  <span>{i.email ?? "Anyone with the link"} · <span className="capitalize">{i.role}</span> · expires {new Date(i.expiresAt).toLocaleString()}</span>
                  <ConfirmButton
                    label="Revoke"
                    className="btn-secondary text-red-700"
                    title={`Revoke the invitation${i.email ? ` for ${i.email}` : ""}?`}
                    message="Its link stops working at once; anyone who has not joined yet needs a new invitation."
                    confirmLabel="Revoke invitation"
                    danger
                    onConfirm={() => {
                      setActionError(null);
                      revoke.mutate({ inviteId: i.id });
                    }}
                  />
                </li>
              ))}
            </ul>
          )}
        </section>
      ) : null}
      <section className="mt-6">
        <h2 className="mb-2 text-sm font-semibold text-gray-900">What each role may do</h2>
        {table.isPending ? <Loading /> : table.error ? <ErrorBox message={errorMessage(table.error)} onRetry={() => table.refetch()} /> : (
          <div className="relative overflow-x-auto rounded-lg bg-white ring-1 ring-gray-200">
            <table className="min-w-full text-sm" data-testid="permission-table">
              <caption className="sr-only">Permissions by role</caption>
              <thead className="bg-gray-50"><tr><th scope="col" className="px-4 py-2 text-left">Permission</th>{ROLES.map((r) => <th scope="col" key={r} className="px-4 py-2 capitalize">{r}</th>)}</tr></thead>
              <tbody className="divide-y">
                {table.data.map((p) => (
                  <tr key={p.permission}>
                    <td className="px-4 py-1.5"><code>{p.permission}</code><div className="text-xs text-gray-500">{p.description}</div></td>
                    {ROLES.map((r) => <td key={r} className="px-4 py-1.5 text-center">{p.roles.includes(r) ? "✓" : ""}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

/** "a viewer", "an admin". */
function withArticle(role: Role): string {
  return `${/^[aeiou]/.test(role) ? "an" : "a"} ${role}`;
}

/**
 * A member's role: picking one in the list changes nothing by itself (arrow keys on a focused select step
 * through the options), "Change role" then asks, naming the member and the new role, and only its
 * confirmation sends the change. A refused change (the last admin) puts the picker back on the saved role.
 */
function RoleCell({ member, isMe, onChange }: { member: Member; isMe: boolean; onChange: (role: Role, failed: () => void) => void }) {
  const [picked, setPicked] = useState<Role>(member.role);
  const who = member.name ?? member.email ?? "this member";
  const changed = picked !== member.role;
  return (
    <span className="inline-flex items-center gap-2">
      <select
        aria-label={`Role of ${member.email}`}
        data-testid={`role-${member.email}`}
        className="rounded-md border-gray-300 py-1 text-sm"
        value={picked}
        onChange={(e) => setPicked(e.target.value as Role)}
      >
        {ROLES.map((r) => (
          <option key={r} value={r}>{r}</option>
        ))}
      </select>
      {changed ? (
        <>
          <ConfirmButton
            label="Change role"
            testId={`change-role-${member.email}`}
            className="btn-secondary px-2 py-1 text-xs"
            title={isMe ? `Make yourself ${withArticle(picked)}?` : `Make ${who} ${withArticle(picked)}?`}
            message={
              <>
                {isMe ? "You" : memberLabel(member)} {isMe ? "are" : "is"} {withArticle(member.role)} now. The new role applies at once;
                “What each role may do” below lists what {withArticle(picked)} may do.
              </>
            }
            confirmLabel="Change role"
            onConfirm={() => onChange(picked, () => setPicked(member.role))}
          />
          <button type="button" className="px-1 text-xs text-gray-600 underline" onClick={() => setPicked(member.role)}>
            Keep {member.role}
          </button>
        </>
      ) : null}
    </span>
  );
}

function InviteForm({ onCreated }: { onCreated: () => void }) {
  const trpc = useTRPC();
  const invite = useMutation(trpc.team.invite.mutationOptions({ onSuccess: onCreated }));
  const [link, setLink] = useState<string | null>(null);
  const hydrated = useHydrated();

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const email = String(form.get("email") || "").trim();
    const r = await invite.mutateAsync({ role: form.get("role") as Role, email: email || undefined });
    setLink(`${window.location.origin}${r.path}`);
  }

  return (
    <form method="post" onSubmit={(e) => onSubmit(e).catch(() => {})} className="card flex flex-wrap items-end gap-3" aria-label="Invite a member">
      <div>
        <label htmlFor="invite-role" className="field-label">Role</label>
        <select id="invite-role" name="role" defaultValue="developer" className="field-input">
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
      </div>
      <div className="min-w-[16rem] flex-1">
        <label htmlFor="invite-email" className="field-label">Email (optional, for your records)</label>
        <input id="invite-email" name="email" type="email" className="field-input" />
      </div>
      <button type="submit" className="btn-primary" disabled={!hydrated || invite.isPending}>{invite.isPending ? "Creating…" : "Create invite link"}</button>
      {invite.error ? <p role="alert" className="field-error w-full">{errorMessage(invite.error)}</p> : null}
      {link ? (
        <div className="w-full rounded-md bg-green-50 p-3 text-sm ring-1 ring-green-200">
          <p className="mb-1 font-medium text-green-900">Invite link (shown once, valid 72 hours, single use):</p>
          <div className="flex gap-2">
            <input readOnly aria-label="Invite link" data-testid="invite-link" value={link} className="field-input mt-0 font-mono" onFocus={(e) => e.currentTarget.select()} />
            <button type="button" className="btn-secondary" onClick={() => navigator.clipboard?.writeText(link)}>Copy</button>
          </div>
        </div>
      ) : null}
    </form>
  );
}
