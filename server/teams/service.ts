import { createHash, randomBytes } from "node:crypto";
import type { Role } from "@prisma/client";
import { db, type Tx } from "../db";
import { appendAudit, type AuditActor } from "../audit";
import { DomainError, notFound } from "../lib/errors";
import { slugify, uniqueTeamSlug } from "./slug";

export const INVITE_TTL_HOURS_DEFAULT = 72;

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export async function listMyTeams(userId: string) {
  const rows = await db.membership.findMany({
    where: { userId },
    select: { role: true, team: { select: { id: true, name: true, slug: true, personal: true } } },
    orderBy: { createdAt: "asc" },
  });
  return rows.map((r) => ({ ...r.team, role: r.role }));
}

export async function createTeam(actor: AuditActor & { userId: string }, name: string) {
  return db.$transaction(async (tx) => {
    const team = await tx.team.create({ data: { name, slug: await uniqueTeamSlug(tx, slugify(name)) } });
    await tx.membership.create({ data: { teamId: team.id, userId: actor.userId, role: "admin" } });
    await appendAudit(tx, team.id, actor, { action: "team.create", targetType: "team", targetId: team.id, metadata: { name } });
    return { id: team.id, name: team.name, slug: team.slug };
  });
}

export async function renameTeam(teamId: string, actor: AuditActor, name: string) {
  return db.$transaction(async (tx) => {
    const before = await tx.team.findUnique({ where: { id: teamId }, select: { name: true } });
    if (!before) throw notFound("Team");
    await tx.team.update({ where: { id: teamId }, data: { name } });
    await appendAudit(tx, teamId, actor, { action: "team.rename", targetType: "team", targetId: teamId, metadata: { from: before.name, to: name } });
    return { id: teamId, name };
  });
}

export async function getTeam(teamId: string) {
  const team = await db.team.findUnique({ where: { id: teamId }, select: { id: true, name: true, slug: true, personal: true, createdAt: true } });
  if (!team) throw notFound("Team");
  return team;
}

export async function listMembers(teamId: string) {
  const rows = await db.membership.findMany({
    where: { teamId },
    select: { id: true, role: true, createdAt: true, user: { select: { id: true, name: true, email: true } } },
    orderBy: { createdAt: "asc" },
  });
  return rows.map((m) => ({ membershipId: m.id, userId: m.user.id, name: m.user.name, email: m.user.email, role: m.role, since: m.createdAt }));
}

export async function createInvite(
  teamId: string,
  actor: AuditActor & { userId: string },
  input: { role: Role; email?: string; ttlHours?: number },
) {
  const token = `inv_${randomBytes(24).toString("base64url")}`;
  const expiresAt = new Date(Date.now() + (input.ttlHours ?? INVITE_TTL_HOURS_DEFAULT) * 3600_000);
  return db.$transaction(async (tx) => {
    const inv = await tx.invitation.create({
      data: { teamId, role: input.role, email: input.email ?? null, tokenHash: hashToken(token), createdById: actor.userId, expiresAt },
    });
    await appendAudit(tx, teamId, actor, {
      action: "member.invite", targetType: "invitation", targetId: inv.id, metadata: { role: input.role, email: input.email ?? null, expiresAt: expiresAt.toISOString() },
    });
    // The token is returned once; only its hash is stored.
    return { id: inv.id, token, path: `/invite/${token}`, role: inv.role, expiresAt };
  });
}

export async function listInvites(teamId: string) {
  return db.invitation.findMany({
    where: { teamId, acceptedAt: null, revokedAt: null, expiresAt: { gt: new Date() } },
    select: { id: true, role: true, email: true, createdAt: true, expiresAt: true },
    orderBy: { createdAt: "desc" },
  });
}

export async function revokeInvite(teamId: string, actor: AuditActor, inviteId: string) {
  return db.$transaction(async (tx) => {
    const r = await tx.invitation.updateMany({ where: { id: inviteId, teamId, acceptedAt: null, revokedAt: null }, data: { revokedAt: new Date() } });
    if (r.count === 0) throw notFound("Invitation");
    await appendAudit(tx, teamId, actor, { action: "member.invite.revoke", targetType: "invitation", targetId: inviteId });
  });
}

function inviteProblem(inv: { acceptedAt: Date | null; revokedAt: Date | null; expiresAt: Date } | null): string | null {
  if (!inv) return "This invitation link is not valid.";
  if (inv.acceptedAt) return "This invitation has already been used.";
  if (inv.revokedAt) return "This invitation was revoked.";
  if (inv.expiresAt <= new Date()) return "This invitation has expired. Ask for a new link.";
  return null;
}

/** What the accept page shows before the user accepts. */
export async function previewInvite(token: string) {
  const inv = await db.invitation.findUnique({
    where: { tokenHash: hashToken(token) },
    select: { role: true, acceptedAt: true, revokedAt: true, expiresAt: true, team: { select: { name: true } } },
  });
  const problem = inviteProblem(inv);
  if (problem || !inv) return { valid: false as const, problem: problem ?? "invalid" };
  return { valid: true as const, teamName: inv.team.name, role: inv.role, expiresAt: inv.expiresAt };
}

export async function acceptInvite(actor: AuditActor & { userId: string }, token: string) {
  return db.$transaction(async (tx) => {
    const inv = await tx.invitation.findUnique({ where: { tokenHash: hashToken(token) } });
    const problem = inviteProblem(inv);
    if (problem || !inv) throw new DomainError("PRECONDITION_FAILED", problem ?? "invalid", { reason: "invite_invalid" });
    const already = await tx.membership.findUnique({ where: { teamId_userId: { teamId: inv.teamId, userId: actor.userId } } });
    if (already) throw new DomainError("CONFLICT", "You are already a member of this team.", { reason: "already_member" });
    // Single use even under concurrent accepts: only one conditional update can win.
    const won = await tx.invitation.updateMany({
      where: { id: inv.id, acceptedAt: null, revokedAt: null },
      data: { acceptedAt: new Date(), acceptedById: actor.userId },
    });
    if (won.count !== 1) throw new DomainError("PRECONDITION_FAILED", "This invitation has already been used.", { reason: "invite_invalid" });
    await tx.membership.create({ data: { teamId: inv.teamId, userId: actor.userId, role: inv.role } });
    await appendAudit(tx, inv.teamId, actor, {
      action: "member.join", targetType: "user", targetId: actor.userId, metadata: { role: inv.role, invitationId: inv.id },
    });
    return { teamId: inv.teamId, role: inv.role };
  });
}

async function lockMembers(tx: Tx, teamId: string) {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`members:${teamId}`}, 0))`;
}

async function assertNotLastAdmin(tx: Tx, teamId: string, userId: string, what: string) {
  const admins = await tx.membership.count({ where: { teamId, role: "admin", userId: { not: userId } } });
  if (admins === 0) {
    throw new DomainError("PRECONDITION_FAILED", `The last admin cannot ${what}. Make another member an admin first.`, { reason: "last_admin" });
  }
}

export async function changeRole(teamId: string, actor: AuditActor, userId: string, role: Role) {
  return db.$transaction(async (tx) => {
    await lockMembers(tx, teamId);
    const m = await tx.membership.findUnique({ where: { teamId_userId: { teamId, userId } } });
    if (!m) throw notFound("Member");
    if (m.role === role) return { userId, role };
    if (m.role === "admin") await assertNotLastAdmin(tx, teamId, userId, "be demoted");
    await tx.membership.update({ where: { id: m.id }, data: { role } });
    await appendAudit(tx, teamId, actor, { action: "member.role.change", targetType: "user", targetId: userId, metadata: { from: m.role, to: role } });
    return { userId, role };
  });
}

export async function removeMember(teamId: string, actor: AuditActor, userId: string, action = "member.remove") {
  return db.$transaction(async (tx) => {
    await lockMembers(tx, teamId);
    const m = await tx.membership.findUnique({ where: { teamId_userId: { teamId, userId } } });
    if (!m) throw notFound("Member");
    if (m.role === "admin") await assertNotLastAdmin(tx, teamId, userId, action === "member.leave" ? "leave the team" : "be removed");
    await tx.membership.delete({ where: { id: m.id } });
    await appendAudit(tx, teamId, actor, { action, targetType: "user", targetId: userId, metadata: { role: m.role } });
  });
}

export function leaveTeam(teamId: string, actor: AuditActor & { userId: string }) {
  return removeMember(teamId, actor, actor.userId, "member.leave");
}
