import type { AlertChannelKind, Prisma } from "@prisma/client";
import { IncomingWebhook, IncomingWebhookHTTPError } from "@slack/webhook";
import { appendAudit, type AuditActor } from "../audit";
import { db } from "../db";
import { DomainError } from "../lib/errors";
import { checkOutboundUrl, guardedFetch, OUTBOUND_POLICIES, OutboundUrlError } from "../lib/outbound-url";
import { createSecret, deleteSecret, relabelSecret, rotateSecret, secretExists, withSecret } from "../vault";
import { sendEvent } from "../workflows/events";
import { ALERT_EVENTS, alertEventFor, buildSlackMessage, buildWebhookPayload, type AlertContext, type AlertEvent, type AlertEventType } from "./messages";

/**
 * Alert channels (Slack incoming webhooks or generic JSON webhooks) with event subscriptions. Webhook
 * URLs are vault secrets (kind `slack-webhook` / `webhook`) and never leave this module; delivery runs in
 * an Inngest function (`deliverAlert`) around `deliverAlertNow`, which retries 429/5xx with backoff.
 * A webhook URL is a tenant-supplied outbound URL (`server/lib/outbound-url.ts`): checked when stored, and
 * again, DNS included, before every delivery; the POST connects only to the address that was checked and
 * never follows redirects. Private/loopback targets need the operator's TUNA_ALLOW_PRIVATE_URLS.
 */

const ALERTS_ACTOR: AuditActor = { userId: null, label: "alerts" };

/** What a channel whose webhook URL was deleted from the vault says (deliveries, Send test). */
export const WEBHOOK_MISSING =
  "webhook missing: this channel's webhook URL was deleted from the vault, so no alert can be sent. Set a new URL (Edit) to send alerts again";

/** The vault label of a channel's webhook URL. */
function secretLabel(name: string): string {
  return `Alert channel: ${name}`;
}

/** Channel names are unique within a team (case-insensitively), so alerts and the vault label say which one. */
async function checkNameFree(teamId: string, name: string, exceptId?: string): Promise<void> {
  const clash = await db.alertChannel.findFirst({
    where: { teamId, name: { equals: name, mode: "insensitive" }, ...(exceptId ? { id: { not: exceptId } } : {}) },
    select: { name: true },
  });
  if (clash) {
    throw new DomainError("CONFLICT", `There is already a channel named “${clash.name}” in this team. Choose another name.`, { reason: "duplicate_name" });
  }
}

export interface ChannelView {
  id: string;
  name: string;
  kind: AlertChannelKind;
  events: string[];
  enabled: boolean;
  /** Last 4 characters of the webhook URL (the URL itself is a secret). */
  urlLast4: string;
  /** The webhook URL was deleted from the vault: nothing is sent until the channel gets a new URL. */
  webhookMissing: boolean;
  lastDeliveryStatus: string | null;
  lastDeliveryAt: Date | null;
  lastDeliveryError: string | null;
  createdById: string;
  createdAt: Date;
}

function secretKindFor(kind: AlertChannelKind): "slack-webhook" | "webhook" {
  return kind === "slack" ? "slack-webhook" : "webhook";
}

function checkEvents(events: string[]): AlertEventType[] {
  const bad = events.filter((e) => !(ALERT_EVENTS as readonly string[]).includes(e));
  if (bad.length) throw new DomainError("BAD_REQUEST", `Unknown alert events: ${bad.join(", ")}. Known: ${ALERT_EVENTS.join(", ")}.`);
  return [...new Set(events)] as AlertEventType[];
}

async function views(teamId: string, where: Prisma.AlertChannelWhereInput = {}): Promise<ChannelView[]> {
  const rows = await db.alertChannel.findMany({ where: { teamId, ...where }, orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
  const secrets = rows.length
    ? await db.secret.findMany({ where: { teamId, id: { in: rows.map((r) => r.secretId) }, deletedAt: null }, select: { id: true, last4: true } })
    : [];
  const last4 = new Map(secrets.map((s) => [s.id, s.last4]));
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    kind: r.kind,
    events: r.events,
    enabled: r.enabled,
    urlLast4: last4.get(r.secretId) ?? "",
    webhookMissing: !last4.has(r.secretId),
    lastDeliveryStatus: r.lastDeliveryStatus,
    lastDeliveryAt: r.lastDeliveryAt,
    lastDeliveryError: r.lastDeliveryError,
    createdById: r.createdById,
    createdAt: r.createdAt,
  }));
}

export function listChannels(teamId: string): Promise<ChannelView[]> {
  return views(teamId);
}

async function channelOf(teamId: string, channelId: string) {
  const c = await db.alertChannel.findFirst({ where: { id: channelId, teamId } });
  if (!c) throw new DomainError("NOT_FOUND", "Alert channel not found.");
  return c;
}

export async function createChannel(
  teamId: string,
  actor: AuditActor,
  input: { name: string; kind: AlertChannelKind; url: string; events: string[] },
): Promise<ChannelView> {
  const events = checkEvents(input.events);
  const name = input.name.trim();
  if (!name) throw new DomainError("BAD_REQUEST", "Give the channel a name.");
  await checkNameFree(teamId, name);
  // The URL goes to the vault first (validated there, audited as secret.create); the channel points at it.
  const secret = await createSecret(teamId, actor, { kind: secretKindFor(input.kind), label: secretLabel(name), value: input.url });
  try {
    const c = await db.$transaction(async (tx) => {
      const row = await tx.alertChannel.create({ data: { teamId, name, kind: input.kind, secretId: secret.id, events, createdById: actor.userId ?? actor.label } });
      await appendAudit(tx, teamId, actor, { action: "alerts.channel.create", targetType: "alert_channel", targetId: row.id, metadata: { name, kind: input.kind, events } });
      return row;
    });
    return (await views(teamId, { id: c.id }))[0];
  } catch (e) {
    await deleteSecret(teamId, actor, secret.id).catch(() => {});
    throw e;
  }
}

export async function updateChannel(
  teamId: string,
  actor: AuditActor,
  channelId: string,
  patch: { name?: string; events?: string[]; enabled?: boolean; url?: string },
): Promise<ChannelView> {
  const c = await channelOf(teamId, channelId);
  const name = patch.name?.trim();
  if (patch.name !== undefined && !name) throw new DomainError("BAD_REQUEST", "Give the channel a name.");
  const renamed = name !== undefined && name !== c.name;
  if (renamed) await checkNameFree(teamId, name, c.id);
  const events = patch.events !== undefined ? checkEvents(patch.events) : undefined;
  // A webhook URL deleted from the vault cannot be rotated: the new URL becomes a new secret.
  let newSecretId: string | null = null;
  if (patch.url !== undefined) {
    if (await secretExists(teamId, c.secretId)) await rotateSecret(teamId, actor, c.secretId, patch.url);
    else newSecretId = (await createSecret(teamId, actor, { kind: secretKindFor(c.kind), label: secretLabel(name ?? c.name), value: patch.url })).id;
  }
  const data = {
    ...(renamed ? { name } : {}),
    ...(events !== undefined ? { events } : {}),
    ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
    ...(newSecretId ? { secretId: newSecretId } : {}),
  };
  try {
    await db.$transaction(async (tx) => {
      await tx.alertChannel.update({ where: { id: c.id }, data });
      // The vault names the channel its URL belongs to.
      if (renamed && !newSecretId && (await tx.secret.count({ where: { id: c.secretId, teamId, deletedAt: null } }))) {
        await relabelSecret(teamId, actor, c.secretId, secretLabel(name), tx);
      }
      await appendAudit(tx, teamId, actor, {
        action: "alerts.channel.update",
        targetType: "alert_channel",
        targetId: c.id,
        metadata: { changed: [...Object.keys(data).filter((k) => k !== "secretId"), ...(patch.url !== undefined ? ["url"] : [])] },
      });
    });
  } catch (e) {
    if (newSecretId) await deleteSecret(teamId, actor, newSecretId).catch(() => {});
    throw e;
  }
  return (await views(teamId, { id: c.id }))[0];
}

export async function deleteChannel(teamId: string, actor: AuditActor, channelId: string): Promise<{ id: string }> {
  const c = await channelOf(teamId, channelId);
  await db.$transaction(async (tx) => {
    await tx.alertChannel.delete({ where: { id: c.id } });
    await appendAudit(tx, teamId, actor, { action: "alerts.channel.delete", targetType: "alert_channel", targetId: c.id, metadata: { name: c.name } });
  });
  await deleteSecret(teamId, actor, c.secretId).catch(() => {});
  return { id: c.id };
}

export async function listDeliveries(teamId: string, channelId: string, limit = 50) {
  await channelOf(teamId, channelId);
  return db.alertDelivery.findMany({
    where: { channelId, channel: { teamId } },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: Math.min(limit, 200),
    select: { id: true, event: true, status: true, attempts: true, lastError: true, createdAt: true, deliveredAt: true, payload: true },
  });
}

function publicBaseUrl(): string {
  return (process.env.TUNA_PUBLIC_URL ?? process.env.NEXTAUTH_URL ?? "http://localhost:3000").replace(/\/+$/, "");
}

async function contextFor(teamId: string, event: AlertEvent): Promise<AlertContext> {
  const [team, dep] = await Promise.all([
    db.team.findUnique({ where: { id: teamId }, select: { name: true } }),
    event.deploymentId ? db.deployment.findFirst({ where: { id: event.deploymentId, teamId }, select: { slug: true } }) : null,
  ]);
  const base = publicBaseUrl();
  return {
    teamName: team?.name ?? teamId,
    deploymentSlug: dep?.slug ?? null,
    dashboardUrl: event.deploymentId ? `${base}/deployments/${encodeURIComponent(event.deploymentId)}` : `${base}/`,
    at: new Date(),
  };
}

interface StoredPayload {
  event: AlertEvent;
  ctx: Omit<AlertContext, "at"> & { at: string };
}

function toStored(event: AlertEvent, ctx: AlertContext): StoredPayload {
  const clean: AlertEvent = {
    type: event.type,
    title: String(event.title),
    text: String(event.text),
    ...(event.deploymentId ? { deploymentId: event.deploymentId } : {}),
    ...(event.costPerHourMicros !== undefined ? { costPerHourMicros: Math.round(Number(event.costPerHourMicros)) } : {}),
    ...(event.url ? { url: event.url } : {}),
  };
  return { event: clean, ctx: { ...ctx, at: (ctx.at ?? new Date()).toISOString() } };
}

/**
 * Queues the alert for every enabled channel of the team subscribed to its event: one AlertDelivery row
 * each, then `alert/send` per delivery. Unknown event types reach nobody (and say so).
 */
export async function notify(teamId: string, event: AlertEvent): Promise<{ queued: number; event: AlertEventType | null }> {
  const kind = alertEventFor(event.type);
  if (!kind) {
    console.warn(`[alerts] no subscription matches event type "${event.type}"; not delivered`);
    return { queued: 0, event: null };
  }
  const channels = await db.alertChannel.findMany({ where: { teamId, enabled: true, events: { has: kind } }, select: { id: true } });
  if (channels.length === 0) return { queued: 0, event: kind };
  const payload = toStored(event, await contextFor(teamId, event));
  const deliveries = await db.$transaction(
    channels.map((c) =>
      db.alertDelivery.create({ data: { channelId: c.id, event: kind, status: "queued", payload: payload as unknown as Prisma.InputJsonValue }, select: { id: true, channelId: true } }),
    ),
  );
  let queued = 0;
  for (const d of deliveries) {
    try {
      await sendEvent("alert/send", { teamId, type: kind, title: payload.event.title, text: payload.event.text, channelId: d.channelId, deliveryId: d.id, payload });
      queued++;
    } catch (err) {
      await db.alertDelivery.update({ where: { id: d.id }, data: { status: "failed", lastError: `could not be queued: ${(err as Error).message}`.slice(0, 500) } });
    }
  }
  return { queued, event: kind };
}

// ------------------------------------------------------------------------------------------- delivery

export interface DeliveryOptions {
  sleep?: (ms: number) => Promise<void>;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** 0..1, for jitter (tests pass a constant). */
  random?: () => number;
  timeoutMs?: number;
  /** Deliver even if the channel is disabled ("send test" of a channel being fixed). */
  evenIfDisabled?: boolean;
}

export interface DeliveryResult {
  status: "delivered" | "failed" | "skipped";
  attempts: number;
  lastError: string | null;
}

interface Attempt {
  ok: boolean;
  status: number | null;
  /** Slack's plain-text error string or a transport error, without the URL. */
  error: string | null;
  retryAfterMs: number | null;
  /** The URL was refused by the outbound-URL policy: not sent, and not retried. */
  refused?: boolean;
}

/** Sends through this: a fetch that connects only to checked addresses (DNS included) and never follows redirects. */
const webhookFetch = guardedFetch(OUTBOUND_POLICIES.webhook);

/** The policy check before a delivery (null: go ahead); its message names neither the URL nor its host. */
async function refusal(url: string): Promise<Attempt | null> {
  try {
    await checkOutboundUrl(url, OUTBOUND_POLICIES.webhook);
    return null;
  } catch (e) {
    if (!(e instanceof OutboundUrlError)) throw e;
    // A name that does not resolve may be a passing DNS problem: retried like a transport error.
    return { ok: false, status: null, error: e.message, retryAfterMs: null, refused: e.problem !== "unresolvable" };
  }
}

function retryAfterMs(h: string | null): number | null {
  if (!h) return null;
  const s = Number(h);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(h);
  return Number.isNaN(t) ? null : Math.max(0, t - Date.now());
}

function scrub(message: string, url: string): string {
  let out = message.split(url).join("[webhook URL]");
  try {
    const u = new URL(url);
    if (u.pathname.length > 1) out = out.split(u.pathname).join("[webhook path]");
  } catch {
    /* not a URL: nothing more to hide */
  }
  return out.slice(0, 300);
}

async function postSlack(url: string, body: unknown, timeoutMs: number): Promise<Attempt> {
  const refused = await refusal(url);
  if (refused) return refused;
  let retryAfter: string | null = null;
  const capturing: typeof fetch = async (input, init) => {
    const r = await webhookFetch(input, init);
    retryAfter = r.headers.get("retry-after");
    return r;
  };
  const hook = new IncomingWebhook(url, { fetch: capturing, timeout: timeoutMs });
  try {
    await hook.send(body as Parameters<IncomingWebhook["send"]>[0]);
    return { ok: true, status: 200, error: null, retryAfterMs: null };
  } catch (e) {
    if (e instanceof IncomingWebhookHTTPError) {
      return { ok: false, status: e.statusCode, error: errorCode(String(e.body || "")), retryAfterMs: retryAfterMs(retryAfter) };
    }
    return { ok: false, status: null, error: scrub((e as Error).message, url), retryAfterMs: null };
  }
}

async function postJson(url: string, body: unknown, timeoutMs: number): Promise<Attempt> {
  const refused = await refusal(url);
  if (refused) return refused;
  try {
    const r = await webhookFetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "tuna-alerts" },
      body: JSON.stringify(body),
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await r.text().catch(() => "");
    if (r.ok) return { ok: true, status: r.status, error: null, retryAfterMs: null };
    return { ok: false, status: r.status, error: errorCode(text), retryAfterMs: retryAfterMs(r.headers.get("retry-after")) };
  } catch (e) {
    // Connected-to address refused at connect time (the name resolved differently than at the check).
    if (e instanceof OutboundUrlError) return { ok: false, status: null, error: e.message, retryAfterMs: null, refused: true };
    return { ok: false, status: null, error: scrub((e as Error).message, url), retryAfterMs: null };
  }
}

/**
 * What of a failed answer's body is kept and shown: a short error code as Slack sends them ("invalid_token",
 * "no_service", "rollup_error"), nothing else. Echoing bodies would let anyone who can add a channel read
 * the error pages of services the server can reach but they cannot.
 */
function errorCode(body: string): string | null {
  const t = body.trim();
  return /^[a-z][a-z0-9_]{0,63}$/.test(t) ? t : null;
}

function retryable(a: Attempt): boolean {
  if (a.refused) return false;
  return a.status === null || a.status === 429 || a.status >= 500;
}

/** Webhook gone for good (provider-apis.md §8): stop sending until an admin fixes the URL. */
function disablesChannel(a: Attempt): boolean {
  return a.status === 404 || a.status === 410 || (a.status === 403 && a.error === "invalid_token");
}

function describeAttempt(a: Attempt): string {
  return a.status === null ? `request failed: ${a.error ?? "unknown error"}` : `HTTP ${a.status}${a.error ? ` ${a.error}` : ""}`;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Delivers one queued alert: decrypts the channel's webhook URL (audited, purpose "alert"), posts, and
 * retries 429 (honouring Retry-After) and 5xx / transport errors with exponential backoff. Records the
 * outcome on the delivery and on the channel (lastDeliveryStatus/At/Error). Idempotent: a delivered
 * alert is not sent again when the surrounding step is retried.
 */
export async function deliverAlertNow(deliveryId: string, opts: DeliveryOptions = {}): Promise<DeliveryResult> {
  const sleep = opts.sleep ?? realSleep;
  const maxAttempts = opts.maxAttempts ?? 5;
  const base = opts.baseDelayMs ?? 1000;
  const cap = opts.maxDelayMs ?? 60_000;
  const random = opts.random ?? Math.random;
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const d = await db.alertDelivery.findUnique({ where: { id: deliveryId }, include: { channel: true } });
  if (!d) return { status: "skipped", attempts: 0, lastError: "delivery not found (channel deleted?)" };
  if (d.status === "delivered") return { status: "delivered", attempts: d.attempts, lastError: null };
  const channel = d.channel;
  if (!channel.enabled && !opts.evenIfDisabled) {
    await db.alertDelivery.update({ where: { id: d.id }, data: { status: "skipped", lastError: "channel disabled" } });
    return { status: "skipped", attempts: d.attempts, lastError: "channel disabled" };
  }
  const stored = d.payload as unknown as StoredPayload | null;
  if (!stored?.event) {
    await db.alertDelivery.update({ where: { id: d.id }, data: { status: "failed", lastError: "nothing to send (no payload)" } });
    return { status: "failed", attempts: d.attempts, lastError: "nothing to send (no payload)" };
  }
  if (!(await secretExists(channel.teamId, channel.secretId))) {
    // Not retried: nothing changes until an admin gives the channel a new URL.
    await db.$transaction([
      db.alertDelivery.update({ where: { id: d.id }, data: { status: "failed", lastError: WEBHOOK_MISSING } }),
      db.alertChannel.update({ where: { id: channel.id }, data: { lastDeliveryStatus: "failed", lastDeliveryAt: new Date(), lastDeliveryError: WEBHOOK_MISSING } }),
    ]);
    return { status: "failed", attempts: d.attempts, lastError: WEBHOOK_MISSING };
  }
  const ctx: AlertContext = { ...stored.ctx, at: new Date(stored.ctx.at) };
  const body = channel.kind === "slack" ? buildSlackMessage(stored.event, ctx) : buildWebhookPayload(stored.event, ctx);

  let attempts = d.attempts;
  let last: Attempt | null = null;
  await withSecret(channel.teamId, { id: channel.secretId }, "alert", ALERTS_ACTOR, async (url) => {
    for (let n = 1; n <= maxAttempts; n++) {
      attempts++;
      last = channel.kind === "slack" ? await postSlack(url, body, timeoutMs) : await postJson(url, body, timeoutMs);
      if (last.ok || !retryable(last) || n === maxAttempts) break;
      const backoff = Math.min(cap, base * 2 ** (n - 1)) * (0.8 + 0.4 * random());
      const wait = last.retryAfterMs !== null ? Math.min(cap, Math.max(last.retryAfterMs, 0)) : backoff;
      await db.$transaction([
        db.alertDelivery.update({ where: { id: d.id }, data: { status: "retrying", attempts, lastError: describeAttempt(last) } }),
        db.alertChannel.update({ where: { id: channel.id }, data: { lastDeliveryStatus: "retrying", lastDeliveryAt: new Date(), lastDeliveryError: describeAttempt(last) } }),
      ]);
      await sleep(Math.round(wait));
    }
  });
  const final = last as Attempt | null;
  const ok = !!final?.ok;
  const error = ok || !final ? null : final.refused ? `not sent: ${final.error}` : `${describeAttempt(final)} after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
  const disable = !!final && !ok && disablesChannel(final);
  const now = new Date();
  await db.$transaction([
    db.alertDelivery.update({ where: { id: d.id }, data: { status: ok ? "delivered" : "failed", attempts, lastError: error, deliveredAt: ok ? now : null } }),
    db.alertChannel.update({
      where: { id: channel.id },
      data: {
        lastDeliveryStatus: ok ? "delivered" : "failed",
        lastDeliveryAt: now,
        lastDeliveryError: disable ? `${error}; the webhook is gone, so the channel was disabled: update its URL and enable it` : error,
        ...(disable ? { enabled: false } : {}),
      },
    }),
  ]);
  return { status: ok ? "delivered" : "failed", attempts, lastError: error };
}

/** "Send test": a real message through the channel, delivered right away with a short retry budget. */
export async function sendTestAlert(teamId: string, actor: AuditActor, channelId: string, opts: DeliveryOptions = {}): Promise<DeliveryResult> {
  const c = await channelOf(teamId, channelId);
  if (!(await secretExists(teamId, c.secretId))) {
    throw new DomainError(
      "PRECONDITION_FAILED",
      `Nothing was sent: the webhook URL of “${c.name}” was deleted from the vault. Set a new URL (Edit), then send the test again.`,
      { reason: "webhook_missing" },
    );
  }
  const event: AlertEvent = { type: "test", title: "Tuna test alert", text: `This channel (${c.name}) receives Tuna alerts. Sent by ${actor.label}.` };
  const ctx = await contextFor(teamId, event);
  const delivery = await db.$transaction(async (tx) => {
    const row = await tx.alertDelivery.create({ data: { channelId: c.id, event: "test", status: "queued", payload: toStored(event, ctx) as unknown as Prisma.InputJsonValue } });
    await appendAudit(tx, teamId, actor, { action: "alerts.channel.test", targetType: "alert_channel", targetId: c.id });
    return row;
  });
  // A disabled channel is still testable: that is how an admin checks a fixed URL before enabling it.
  return deliverAlertNow(delivery.id, { maxAttempts: 2, maxDelayMs: 2000, ...opts, evenIfDisabled: true });
}
