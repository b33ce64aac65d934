import { Prisma } from "@prisma/client";
import { db } from "../db";

/** What an audit row says about its target. */
export interface TargetRef {
  action: string;
  targetType: string | null;
  targetId: string | null;
  metadata: unknown;
}

export interface TargetName {
  /** Readable name (deployment slug, key label, member email…), or null when none is known: show the id. */
  targetName: string | null;
  /** The object no longer exists (deleted, or the user is no longer a member): its name comes from the log. */
  targetGone: boolean;
}

const NONE: TargetName = { targetName: null, targetGone: false };

type Found = Map<string, { name: string; gone: boolean }>;

/**
 * How each target type is looked up: one query for all the ids of that type on the page, always scoped by
 * `teamId` in its `where`, so an id of another team's object (which no row of this team should carry, but a
 * forged or buggy one might) resolves to nothing rather than to that team's name.
 */
const LOOKUPS: Record<string, (teamId: string, ids: string[]) => Promise<Array<[string, string, boolean]>>> = {
  deployment: async (teamId, ids) =>
    (await db.deployment.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, slug: true } })).map((d) => [d.id, d.slug, false]),
  apikey: async (teamId, ids) =>
    (await db.apiKey.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, label: true, prefix: true } })).map((k) => [k.id, keyName(k.label, k.prefix), false]),
  secret: async (teamId, ids) =>
    (await db.secret.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, label: true, deletedAt: true } })).map((s) => [s.id, s.label, s.deletedAt !== null]),
  alert_channel: async (teamId, ids) =>
    (await db.alertChannel.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, name: true } })).map((c) => [c.id, c.name, false]),
  // Members of this team only: a user's email is not this team's to show once they have left (the log then
  // names them by what it recorded itself, see fromLog).
  user: async (teamId, ids) =>
    (await db.membership.findMany({ where: { teamId, userId: { in: ids } }, select: { userId: true, user: { select: { email: true, name: true } } } }))
      .flatMap((m): Array<[string, string, boolean]> => {
        const name = m.user.email ?? m.user.name;
        return name ? [[m.userId, name, false]] : [];
      }),
  // Team targets are the team itself (renames, policy, team budgets): never another team.
  team: async (teamId, ids) => {
    if (!ids.includes(teamId)) return [];
    const t = await db.team.findUnique({ where: { id: teamId }, select: { name: true } });
    return t ? [[teamId, t.name, false]] : [];
  },
  invitation: async (teamId, ids) =>
    (await db.invitation.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, email: true, role: true } })).map((i) => [i.id, inviteName(i.email, i.role), false]),
  approval: async (teamId, ids) =>
    (await db.approvalRequest.findMany({ where: { teamId, id: { in: ids } }, select: { id: true, deployment: { select: { slug: true } } } })).map((a) => [a.id, `approval for ${a.deployment.slug}`, false]),
};

/** Actions whose metadata records the target's name at the time (see nameInMetadata). */
const NAMING_ACTIONS = [
  "team.create", "team.rename", "member.invite", "apikey.create", "secret.create", "secret.relabel",
  "alerts.channel.create", "alerts.channel.delete", "deployment.request",
];

function keyName(label: string, prefix: string | null | undefined): string {
  return prefix ? `${label} (${prefix}…)` : label;
}

function inviteName(email: string | null | undefined, role: string | null | undefined): string {
  return email ? `invite for ${email}` : `${role ?? "member"} invite link`;
}

function str(v: unknown): string | null {
  return typeof v === "string" && v.trim() ? v : null;
}

/** The name an audit row's own metadata gives its target, when the action recorded one. */
function nameInMetadata(r: TargetRef): string | null {
  const m = (r.metadata && typeof r.metadata === "object" ? r.metadata : {}) as Record<string, unknown>;
  switch (r.targetType) {
    case "alert_channel":
      return str(m.name);
    case "secret":
      return str(m.label);
    case "apikey":
      return str(m.label) ? keyName(str(m.label)!, str(m.prefix)) : null;
    case "deployment":
      return str(m.slug);
    case "team":
      return str(m.to) ?? (r.action === "team.create" ? str(m.name) : null);
    case "invitation":
      return r.action === "member.invite" ? inviteName(str(m.email), str(m.role)) : null;
    default:
      return null;
  }
}

const keyOf = (type: string, id: string) => `${type}\u0000${id}`;

/**
 * Names for targets that are gone from the database, from this team's own log: the newest row that named
 * the target (a deleted alert channel's create/delete rows), and for a former member the label the log
 * recorded when they acted here. At most two queries, and only when something is missing.
 */
async function fromLog(teamId: string, missing: Array<{ type: string; id: string }>): Promise<Found> {
  const found: Found = new Map();
  if (!missing.length) return found;
  const users = missing.filter((m) => m.type === "user").map((m) => m.id);
  const others = missing.filter((m) => m.type !== "user").map((m) => m.id);
  const [named, actors] = await Promise.all([
    others.length
      ? db.auditLog.findMany({
          where: { teamId, targetId: { in: others }, action: { in: NAMING_ACTIONS } },
          orderBy: { seq: "desc" },
          take: 1000,
          select: { action: true, targetType: true, targetId: true, metadata: true },
        })
      : [],
    // The newest label per former member (Prisma's `distinct` would read all their rows; DISTINCT ON walks
    // the (teamId, actorId, seq) index).
    users.length
      ? db.$queryRaw<Array<{ actorId: string; actorLabel: string }>>(Prisma.sql`
          SELECT DISTINCT ON ("actorId") "actorId", "actorLabel" FROM "AuditLog"
          WHERE "teamId" = ${teamId} AND "actorId" IN (${Prisma.join(users)})
          ORDER BY "actorId", seq DESC`)
      : [],
  ]);
  for (const r of named) {
    const k = keyOf(r.targetType ?? "", r.targetId ?? "");
    const name = nameInMetadata(r);
    if (name && !found.has(k)) found.set(k, { name, gone: true });
  }
  for (const a of actors) found.set(keyOf("user", a.actorId), { name: a.actorLabel, gone: true });
  return found;
}

/**
 * Readable names for the targets of audit rows of `teamId`, in the rows' order: the object's current name
 * when it still exists in this team; else the name the row itself recorded; else the newest name this team's
 * log recorded for it; else none (the page shows the id). One query per target type present, plus at most
 * two for objects that are gone, however many rows.
 */
export async function resolveTargetNames(teamId: string, rows: TargetRef[]): Promise<TargetName[]> {
  const idsByType = new Map<string, Set<string>>();
  for (const r of rows) {
    if (!r.targetType || !r.targetId || !LOOKUPS[r.targetType]) continue;
    const set = idsByType.get(r.targetType) ?? new Set<string>();
    set.add(r.targetId);
    idsByType.set(r.targetType, set);
  }
  const live: Found = new Map();
  const results = await Promise.all([...idsByType].map(async ([type, ids]) => [type, await LOOKUPS[type](teamId, [...ids])] as const));
  for (const [type, list] of results) for (const [id, name, gone] of list) live.set(keyOf(type, id), { name, gone });

  const missing: Array<{ type: string; id: string }> = [];
  const seen = new Set<string>();
  for (const r of rows) {
    if (!r.targetType || !r.targetId) continue;
    const k = keyOf(r.targetType, r.targetId);
    if (live.has(k) || seen.has(k) || nameInMetadata(r)) continue;
    seen.add(k);
    missing.push({ type: r.targetType, id: r.targetId });
  }
  const logged = await fromLog(teamId, missing);

  return rows.map((r) => {
    if (!r.targetType || !r.targetId) return NONE;
    const k = keyOf(r.targetType, r.targetId);
    const hit = live.get(k);
    if (hit) return { targetName: hit.name, targetGone: hit.gone };
    const own = nameInMetadata(r);
    if (own) return { targetName: own, targetGone: LOOKUPS[r.targetType] !== undefined };
    const old = logged.get(k);
    return old ? { targetName: old.name, targetGone: true } : NONE;
  });
}
