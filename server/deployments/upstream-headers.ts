import { Prisma, type ComponentStatus as DbComponentStatus, type DeploymentStatus } from "@prisma/client";
import { db, type Db, type Tx } from "../db";
import { getProvider, hasProvider, listProviders, ProviderError, redact, upstreamHeadersRefreshAfterMs, type Credentials } from "../providers";
import { bumpRouterConfigVersion } from "../routerconfig";
import { errorMessage, refOf, sealUpstreamHeaders, withCredentials } from "./lifecycle";

/**
 * Upstream auth headers that expire (Cloud Run ID tokens live 1 h) are re-minted before they do. The
 * `refresh-upstream-headers` cron lists serving components whose provider implements
 * `refreshUpstreamHeaders` and whose headers are half their `upstreamHeadersTtlMs` old, and refreshes each
 * with the credentials of the team that owns it. A new router config version makes routers fetch the new
 * headers on their next poll.
 */

/** What the router serves (routerconfig: live components of active/degraded deployments). */
const SERVING_DEPLOYMENT: DeploymentStatus[] = ["active", "degraded"];
const LIVE_COMPONENT: DbComponentStatus[] = ["creating", "ready", "scaled_to_zero", "draining"];

export interface HeaderRefreshTarget {
  componentId: string;
  deploymentId: string;
  teamId: string;
  kind: "serverless" | "spot";
  provider: string;
}

export type HeaderRefreshOutcome =
  | { status: "refreshed" }
  | { status: "skipped"; reason: string }
  /** `alert`: first failure worth telling the team about in this run of failures (one alert per streak). */
  | { status: "failed"; error: string; alert: boolean; expiresAt: string | null };

const timelineStep = (kind: string) => `refresh-headers-${kind}`;

/** Failures recorded since the headers were last minted: a run of failures starts at the last success. */
function failuresSinceMint(client: Db | Tx, c: { deploymentId: string; kind: string; upstreamHeadersAt: Date | null }): Promise<number> {
  return client.deploymentEvent.count({
    where: { deploymentId: c.deploymentId, step: timelineStep(c.kind), status: "failed", ...(c.upstreamHeadersAt ? { at: { gt: c.upstreamHeadersAt } } : {}) },
  });
}

/** Serving components whose headers are due, oldest first (the most urgent go first when over `limit`). */
export async function listComponentsDueForHeaderRefresh(now: Date = new Date(), limit = 200): Promise<HeaderRefreshTarget[]> {
  const due = listProviders().flatMap((p) => {
    const after = upstreamHeadersRefreshAfterMs(p);
    return typeof p.refreshUpstreamHeaders === "function" && after !== null
      ? [{ provider: p.name, upstreamHeadersAt: { lte: new Date(now.getTime() - after) } }]
      : [];
  });
  if (due.length === 0) return [];
  const rows = await db.deploymentComponent.findMany({
    where: {
      kind: { in: ["serverless", "spot"] },
      status: { in: LIVE_COMPONENT },
      endpointUrl: { not: null },
      upstreamHeadersCipher: { not: Prisma.AnyNull },
      deployment: { status: { in: SERVING_DEPLOYMENT } },
      // A null time means no headers were minted: nothing expires.
      OR: due,
    },
    select: { id: true, deploymentId: true, kind: true, provider: true, deployment: { select: { teamId: true } } },
    orderBy: [{ upstreamHeadersAt: "asc" }, { id: "asc" }],
    take: limit,
  });
  return rows.map((r) => ({
    componentId: r.id,
    deploymentId: r.deploymentId,
    teamId: r.deployment.teamId,
    kind: r.kind as "serverless" | "spot",
    provider: r.provider,
  }));
}

/**
 * Every string in the credentials (also inside JSON text, and each line of a PEM key), so a provider message
 * that echoes one is scrubbed even if the provider forgot to. Values under 12 characters are left alone: too
 * short to be a key, and scrubbing them would garble messages.
 */
function credentialStrings(v: unknown, out: string[] = []): string[] {
  if (typeof v === "string") {
    if (v.length >= 12) out.push(v);
    for (const line of v.split(/\r?\n/)) if (line.length >= 16 && line !== v) out.push(line);
    if (/^\s*[{[]/.test(v)) {
      try {
        credentialStrings(JSON.parse(v), out);
      } catch {
        /* not JSON */
      }
    }
  } else if (v && typeof v === "object") {
    for (const x of Object.values(v)) credentialStrings(x, out);
  }
  return out;
}

type RefreshCall = { ok: true; headers: Record<string, string> } | { ok: false; error: string; transient: boolean };

/**
 * Re-mints one component's upstream headers with its own team's credentials and stores them (sealed) with a
 * router config bump, unless the component changed meanwhile (redeployed, relaunched, destroyed). Never
 * throws for a provider or vault failure: the outcome says what happened, without secrets.
 */
export async function refreshComponentHeaders(componentId: string, now: Date = new Date()): Promise<HeaderRefreshOutcome> {
  const c = await db.deploymentComponent.findUnique({
    where: { id: componentId },
    include: { deployment: { select: { teamId: true, status: true } } },
  });
  if (!c || (c.kind !== "serverless" && c.kind !== "spot")) return { status: "skipped", reason: "component not found" };
  if (!LIVE_COMPONENT.includes(c.status) || !SERVING_DEPLOYMENT.includes(c.deployment.status) || !c.endpointUrl) {
    return { status: "skipped", reason: "not serving" };
  }
  const provider = hasProvider(c.provider) ? getProvider(c.provider) : null;
  const ttlMs = provider?.upstreamHeadersTtlMs ?? null;
  const refresh = provider?.refreshUpstreamHeaders?.bind(provider);
  if (!refresh) return { status: "skipped", reason: `${c.provider} does not refresh upstream headers` };
  const kind = c.kind;
  const teamId = c.deployment.teamId;
  const ref = refOf(c);

  const mintedAt = new Date();
  let call: RefreshCall;
  try {
    // The owning team's credentials, decrypted (and audited as `secret.use`, purpose "refresh") for this call only.
    call = await withCredentials(teamId, c.provider, "refresh", async (creds: Credentials): Promise<RefreshCall> => {
      try {
        const headers = await refresh(ref, creds);
        return { ok: true, headers: Object.fromEntries(Object.entries(headers ?? {}).filter(([, v]) => typeof v === "string")) };
      } catch (err) {
        return { ok: false, error: redact(errorMessage(err), credentialStrings(creds)), transient: err instanceof ProviderError && err.retryable };
      }
    });
  } catch (err) {
    // The vault's own refusals (no key, a key that does not fit) name fields, never values.
    call = { ok: false, error: redact(errorMessage(err), []), transient: false };
  }

  if (call.ok) {
    const sealed = sealUpstreamHeaders(teamId, c.deploymentId, kind, call.headers, mintedAt);
    return db.$transaction(async (tx): Promise<HeaderRefreshOutcome> => {
      // Only over what was read: a redeploy or relaunch wrote newer headers, a destroy removed them.
      const moved = await tx.deploymentComponent.updateMany({
        where: {
          id: c.id,
          endpointUrl: c.endpointUrl,
          upstreamHeadersAt: c.upstreamHeadersAt,
          status: { in: LIVE_COMPONENT },
          deployment: { status: { in: SERVING_DEPLOYMENT } },
        },
        data: sealed,
      });
      if (moved.count === 0) return { status: "skipped", reason: "component changed meanwhile" };
      await bumpRouterConfigVersion(tx);
      if ((await failuresSinceMint(tx, c)) > 0) {
        await tx.deploymentEvent.create({
          data: { deploymentId: c.deploymentId, step: timelineStep(kind), status: "ok", message: `${c.provider} upstream auth refreshed again` },
        });
      }
      return { status: "refreshed" };
    });
  }

  console.warn(`[refresh-headers] ${c.provider} ${kind} component of deployment ${c.deploymentId} (team ${teamId}): ${call.error}`);
  const ageMs = c.upstreamHeadersAt ? now.getTime() - c.upstreamHeadersAt.getTime() : Number.POSITIVE_INFINITY;
  const expiresAt = c.upstreamHeadersAt && ttlMs ? new Date(c.upstreamHeadersAt.getTime() + ttlMs).toISOString() : null;
  // A transient error gets the next runs to succeed, until a quarter of the lifetime is left.
  const worthTelling = !call.transient || ttlMs === null || ageMs >= (ttlMs * 3) / 4;
  if (!worthTelling) return { status: "failed", error: call.error, alert: false, expiresAt };
  // One timeline row and one alert per run of failures.
  const told = await failuresSinceMint(db, c);
  if (told === 0) {
    await db.deploymentEvent.create({
      data: {
        deploymentId: c.deploymentId,
        step: timelineStep(kind),
        status: "failed",
        message: `${c.provider} upstream auth could not be refreshed${expiresAt ? ` (current headers expire at ${expiresAt})` : ""}: ${call.error}`.slice(0, 2000),
      },
    });
  }
  return { status: "failed", error: call.error, alert: told === 0, expiresAt };
}
