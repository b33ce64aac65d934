"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { useHydrated } from "@/app/_lib/hydrated";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Badge, ConfirmButton, Field, StatusBadge } from "@/app/_components/controls";
import { formatDate, relativeTime } from "@/app/_components/format";
import type { ChannelView } from "@/server/alerts";
import { useTeam } from "../AppShell";

/** A channel as the alerts router returns it (the URL itself never leaves the server). */
type Channel = ChannelView;

export default function AlertsPage() {
  const trpc = useTRPC();
  const { can } = useTeam();
  const readable = can("alerts.read");
  const manage = can("alerts.manage");
  const qc = useQueryClient();
  const events = useQuery({ ...trpc.alerts.events.queryOptions(), enabled: readable });
  const list = useQuery({ ...trpc.alerts.list.queryOptions(), enabled: readable });
  const refresh = () => qc.invalidateQueries({ queryKey: trpc.alerts.list.queryKey() });

  if (!readable) {
    return (
      <>
        <PageHeader title="Alerts" />
        <Notice>Your role cannot see alert channels (needs “alerts.read”).</Notice>
      </>
    );
  }
  return (
    <>
      <PageHeader title="Alerts" description="Slack or JSON webhooks told about deploys, approvals, preemptions, fallbacks and budgets. Webhook URLs are stored in the vault." />
      {manage ? <ChannelForm events={events.data ?? []} onSaved={refresh} /> : <Notice>Only admins can add, test or change channels (needs “alerts.manage”).</Notice>}
      <section className="mt-6" aria-labelledby="channels-heading">
        <h2 id="channels-heading" className="mb-2 text-sm font-semibold text-gray-900">Channels</h2>
        {list.isPending ? <Loading /> : list.error ? <ErrorBox message={errorMessage(list.error)} onRetry={() => list.refetch()} /> : list.data.length === 0 ? (
          <Empty title="No alert channels yet" />
        ) : (
          <ul className="space-y-3" data-testid="channels-list">
            {list.data.map((c) => <ChannelCard key={c.id} channel={c} manage={manage} events={events.data ?? []} onChanged={refresh} />)}
          </ul>
        )}
      </section>
    </>
  );
}

function EventCheckboxes({ events, selected, idPrefix }: { events: Array<{ type: string; label: string }>; selected: string[]; idPrefix: string }) {
  return (
    <fieldset>
      <legend className="field-label">Subscribed events</legend>
      <div className="mt-1 grid gap-1 text-sm sm:grid-cols-2">
        {events.map((e) => (
          <label key={e.type} htmlFor={`${idPrefix}-${e.type}`} className="inline-flex items-center gap-2">
            <input id={`${idPrefix}-${e.type}`} type="checkbox" name="events" value={e.type} defaultChecked={selected.includes(e.type)} /> {e.label}
          </label>
        ))}
      </div>
    </fieldset>
  );
}

function ChannelForm({ events, onSaved }: { events: Array<{ type: string; label: string }>; onSaved: () => void }) {
  const trpc = useTRPC();
  const create = useMutation(trpc.alerts.create.mutationOptions({ onSuccess: onSaved }));
  const hydrated = useHydrated();
  const fe = create.error ? fieldErrors(create.error) : {};
  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    try {
      await create.mutateAsync({
        name: String(f.get("name") ?? ""),
        kind: String(f.get("kind")) as "slack" | "webhook",
        url: String(f.get("url") ?? ""),
        events: f.getAll("events").map(String) as never,
      });
      form.reset();
    } catch {
      /* shown below */
    }
  }
  return (
    <form method="post" onSubmit={onSubmit} className="card grid gap-3 md:grid-cols-3" aria-label="Add an alert channel" noValidate>
      <h2 className="text-sm font-semibold text-gray-900 md:col-span-3">Add a channel</h2>
      <Field id="channel-name" label="Name" error={fe.name}>
        <input id="channel-name" name="name" className="field-input" required maxLength={80} placeholder="#ops" />
      </Field>
      <Field id="channel-kind" label="Kind" error={fe.kind}>
        <select id="channel-kind" name="kind" className="field-input" defaultValue="slack">
          <option value="slack">Slack incoming webhook</option>
          <option value="webhook">JSON webhook</option>
        </select>
      </Field>
      <Field id="channel-url" label="Webhook URL" error={fe.url} hint="Write-only: stored encrypted, never shown again.">
        <input id="channel-url" name="url" type="url" className="field-input font-mono" required autoComplete="off" placeholder="https://hooks.slack.com/services/…" />
      </Field>
      <div className="md:col-span-3"><EventCheckboxes events={events} selected={events.map((e) => e.type)} idPrefix="new-event" /></div>
      {fe.events ? <p role="alert" className="field-error md:col-span-3">{fe.events}</p> : null}
      {create.error && !Object.keys(fe).length ? <p role="alert" className="field-error md:col-span-3">{errorMessage(create.error)}</p> : null}
      <div className="md:col-span-3"><button type="submit" className="btn-primary" disabled={!hydrated || create.isPending}>{create.isPending ? "Saving…" : "Add channel"}</button></div>
    </form>
  );
}

function ChannelCard({ channel: c, manage, events, onChanged }: { channel: Channel; manage: boolean; events: Array<{ type: string; label: string }>; onChanged: () => void }) {
  const trpc = useTRPC();
  const [editing, setEditing] = useState(false);
  const [showDeliveries, setShowDeliveries] = useState(false);
  const test = useMutation(trpc.alerts.sendTest.mutationOptions({ onSettled: onChanged }));
  const update = useMutation(trpc.alerts.update.mutationOptions({ onSuccess: () => { setEditing(false); onChanged(); } }));
  const remove = useMutation(trpc.alerts.delete.mutationOptions({ onSuccess: onChanged }));
  const deliveries = useQuery({ ...trpc.alerts.deliveries.queryOptions({ channelId: c.id, limit: 20 }), enabled: showDeliveries });
  const label = (t: string) => events.find((e) => e.type === t)?.label ?? t;
  // Field errors of the edit form go next to their field, in plain words (no "name:" prefix).
  const updateFe = update.error ? fieldErrors(update.error) : {};
  const updateFieldError = editing && Object.keys(updateFe).length > 0;
  const error = test.error ?? (updateFieldError ? null : update.error) ?? remove.error;
  return (
    <li className="card" data-testid={`channel-${c.name}`}>
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div>
          <h3 className="text-base font-semibold text-gray-900">
            {c.name} <Badge>{c.kind}</Badge>{" "}
            {c.webhookMissing ? <Badge tone="red">webhook missing</Badge> : c.enabled ? <Badge tone="green">enabled</Badge> : <Badge tone="amber">disabled</Badge>}
          </h3>
          {c.webhookMissing ? (
            <p className="text-sm font-medium text-red-700" data-testid="webhook-missing">
              Webhook missing: its URL was deleted from the vault, so this channel sends nothing. Set a new URL (Edit) to send alerts again.
            </p>
          ) : null}
          <p className="text-sm text-gray-600">{c.webhookMissing ? "No URL" : `URL ••••${c.urlLast4}`} · {c.events.length ? c.events.map(label).join(", ") : "no events"}</p>
          <p className="text-sm text-gray-600" data-testid="last-delivery">
            Last delivery:{" "}
            {c.lastDeliveryStatus ? (
              <>
                <StatusBadge status={c.lastDeliveryStatus} /> {relativeTime(c.lastDeliveryAt)}
                {c.lastDeliveryError ? <span className="text-red-700"> — {c.lastDeliveryError}</span> : null}
              </>
            ) : "none yet"}
          </p>
        </div>
        <div className="flex flex-wrap gap-2">
          <button type="button" className="btn-secondary" aria-expanded={showDeliveries} onClick={() => setShowDeliveries(!showDeliveries)}>Deliveries</button>
          {manage ? (
            <>
              <button type="button" className="btn-secondary" disabled={test.isPending} onClick={() => test.mutate({ channelId: c.id })}>{test.isPending ? "Sending…" : "Send test"}</button>
              <button type="button" className="btn-secondary" onClick={() => update.mutate({ channelId: c.id, enabled: !c.enabled })}>{c.enabled ? "Disable" : "Enable"}</button>
              <button type="button" className="btn-secondary" aria-expanded={editing} onClick={() => setEditing(!editing)}>Edit</button>
              <ConfirmButton label="Delete" className="btn-secondary text-red-700" title={`Delete channel “${c.name}”?`} message="It stops receiving alerts and its webhook URL is deleted from the vault." confirmLabel="Delete channel" danger onConfirm={() => remove.mutate({ channelId: c.id })} />
            </>
          ) : null}
        </div>
      </div>
      {test.data ? (
        <div className="mt-2" data-testid="test-result"><Notice tone={test.data.status === "delivered" ? "success" : "warning"}>Test {test.data.status} after {test.data.attempts} attempt(s){test.data.lastError ? `: ${test.data.lastError}` : "."}</Notice></div>
      ) : null}
      {error ? <p role="alert" className="field-error">{errorMessage(error)}</p> : null}
      {editing ? (
        <form
          method="post"
          className="mt-3 grid gap-3 md:grid-cols-2"
          aria-label={`Edit ${c.name}`}
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            const url = String(f.get("url") ?? "").trim();
            update.mutate({ channelId: c.id, name: String(f.get("name") ?? ""), events: f.getAll("events").map(String) as never, ...(url ? { url } : {}) });
          }}
        >
          <Field id={`edit-name-${c.id}`} label="Name" error={updateFe.name}><input id={`edit-name-${c.id}`} name="name" className="field-input" defaultValue={c.name} /></Field>
          <Field id={`edit-url-${c.id}`} label={c.webhookMissing ? "New webhook URL (required: the old one was deleted)" : "New webhook URL (empty = keep)"} error={updateFe.url}>
            <input id={`edit-url-${c.id}`} name="url" type="url" className="field-input font-mono" autoComplete="off" />
          </Field>
          <div className="md:col-span-2"><EventCheckboxes events={events} selected={c.events} idPrefix={`edit-${c.id}`} /></div>
          {updateFe.events ? <p role="alert" className="field-error md:col-span-2">{updateFe.events}</p> : null}
          {updateFieldError && !updateFe.name && !updateFe.url && !updateFe.events ? <p role="alert" className="field-error md:col-span-2">{errorMessage(update.error)}</p> : null}
          <div className="md:col-span-2"><button type="submit" className="btn-primary" disabled={update.isPending}>Save channel</button></div>
        </form>
      ) : null}
      {showDeliveries ? (
        <div className="mt-3">
          {deliveries.isPending ? <Loading /> : deliveries.error ? <ErrorBox message={errorMessage(deliveries.error)} /> : deliveries.data.length === 0 ? <Empty title="No deliveries yet" /> : (
            <table className="min-w-full text-sm">
              <caption className="sr-only">Recent deliveries of {c.name}</caption>
              <thead className="text-left text-gray-500"><tr><th scope="col" className="py-1 pr-4 font-medium">Event</th><th scope="col" className="py-1 pr-4 font-medium">Status</th><th scope="col" className="py-1 pr-4 font-medium">Attempts</th><th scope="col" className="py-1 pr-4 font-medium">When</th><th scope="col" className="py-1 font-medium">Error</th></tr></thead>
              <tbody className="divide-y">
                {deliveries.data.map((d) => (
                  <tr key={d.id}><td className="py-1 pr-4"><code>{d.event}</code></td><td className="py-1 pr-4"><StatusBadge status={d.status} /></td><td className="py-1 pr-4">{d.attempts}</td><td className="py-1 pr-4">{formatDate(d.deliveredAt ?? d.createdAt)}</td><td className="py-1 text-red-700">{d.lastError ?? ""}</td></tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ) : null}
    </li>
  );
}
