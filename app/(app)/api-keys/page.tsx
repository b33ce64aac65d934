"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, useRef, useState, type FormEvent } from "react";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { useHydrated } from "@/app/_lib/hydrated";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { ConfirmButton, CopyButton, Field, StatusBadge } from "@/app/_components/controls";
import { formatDate, relativeTime } from "@/app/_components/format";
import { useTeam } from "../AppShell";
import { dateInputValueOfExpiry, expiryFromDateInput, INVALID_EXPIRY, isInvalidExpiry } from "./expiry";

export default function ApiKeysPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useTeam();
  const manage = can("apikey.manage");
  const keys = useQuery(trpc.apiKeys.list.queryOptions());
  const deployments = useQuery({ ...trpc.deployments.list.queryOptions({ limit: 200, status: ["pending_approval", "queued", "deploying", "active", "degraded"] }), enabled: manage });
  const [actionError, setActionError] = useState<string | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: trpc.apiKeys.list.queryKey() });
  const revoke = useMutation(trpc.apiKeys.revoke.mutationOptions({ onSuccess: refresh, onError: (e) => setActionError(errorMessage(e)) }));

  return (
    <>
      <PageHeader title="API keys" description="Keys for the OpenAI-compatible endpoint. A key is shown once when created; Tuna stores only its SHA-256 hash." />
      {actionError ? <div className="mb-4"><ErrorBox message={actionError} /></div> : null}
      {manage ? (
        <CreateKeyForm deployments={deployments.data?.items.map((d) => ({ id: d.id, slug: d.slug })) ?? []} onCreated={refresh} />
      ) : (
        <Notice>Your role can see keys but not create or revoke them (needs “apikey.manage”).</Notice>
      )}
      <section className="mt-6" aria-labelledby="keys-heading">
        <h2 id="keys-heading" className="mb-2 text-sm font-semibold text-gray-900">Keys</h2>
        {keys.isPending ? <Loading /> : keys.error ? <ErrorBox message={errorMessage(keys.error)} onRetry={() => keys.refetch()} /> : keys.data.length === 0 ? (
          <Empty title="No API keys yet">{manage ? "Create one above to call your deployments." : null}</Empty>
        ) : (
          // relative: the sr-only "Actions" label is absolutely positioned and must be clipped by this box, not widen the page.
          <div className="relative overflow-x-auto rounded-lg bg-white shadow-sm ring-1 ring-gray-200">
            <table className="min-w-full divide-y divide-gray-200 text-sm" data-testid="keys-table">
              <caption className="sr-only">API keys</caption>
              <thead className="bg-gray-50 text-left text-gray-600">
                <tr>
                  <th scope="col" className="px-4 py-2 font-medium">Label</th>
                  <th scope="col" className="px-4 py-2 font-medium">Key</th>
                  <th scope="col" className="px-4 py-2 font-medium">Status</th>
                  <th scope="col" className="px-4 py-2 font-medium">Scope</th>
                  <th scope="col" className="px-4 py-2 font-medium">Limits</th>
                  <th scope="col" className="px-4 py-2 font-medium">Expires</th>
                  <th scope="col" className="px-4 py-2 font-medium">Last used</th>
                  <th scope="col" className="px-4 py-2"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody className="divide-y divide-gray-100">
                {keys.data.map((k) => (
                  <Fragment key={k.id}>
                  <tr data-testid={`key-${k.label}`}>
                    <td className="px-4 py-2 font-medium text-gray-900">{k.label}</td>
                    <td className="px-4 py-2 font-mono text-xs">{k.prefix}…</td>
                    <td className="px-4 py-2"><StatusBadge status={k.status} testId="key-status" /></td>
                    <td className="px-4 py-2" data-testid="key-scope">{k.deployments === "*" ? "All deployments" : k.scope.map(scopeName).join(", ")}</td>
                    <td className="px-4 py-2 text-xs text-gray-700">
                      {k.rpm ?? "∞"} rpm · {k.tpm ?? "∞"} tpm · {k.maxConcurrent ?? "∞"} concurrent
                    </td>
                    <td className="px-4 py-2 text-xs">{k.expiresAt ? formatDate(k.expiresAt) : "never"}</td>
                    <td className="px-4 py-2 text-xs">{relativeTime(k.lastUsedAt)}</td>
                    <td className="px-4 py-2 text-right">
                      {manage && k.status === "active" ? (
                        <div className="flex justify-end gap-2">
                        <button type="button" className="btn-secondary" aria-expanded={editing === k.id} onClick={() => setEditing(editing === k.id ? null : k.id)}>Limits</button>
                        <ConfirmButton
                          label="Revoke" className="btn-secondary text-red-700"
                          title={`Revoke “${k.label}”?`}
                          message="Requests with this key are refused within seconds, once routers pick up the change. This cannot be undone."
                          confirmLabel="Revoke key"
                          danger
                          onConfirm={() => { setActionError(null); revoke.mutate({ keyId: k.id }); }}
                        />
                        </div>
                      ) : null}
                    </td>
                  </tr>
                  {editing === k.id ? (
                    <tr>
                      <td colSpan={8} className="bg-gray-50 px-4 py-3">
                        <LimitsForm apiKey={k} onDone={() => { setEditing(null); refresh(); }} />
                      </td>
                    </tr>
                  ) : null}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

/** A scoped deployment by name; an ended one says so (the key no longer reaches it). */
function scopeName(d: { name: string | null; ended: boolean }): string {
  if (d.name === null) return "a deleted deployment";
  return d.ended ? `${d.name} (destroyed)` : d.name;
}

function CreateKeyForm({ deployments, onCreated }: { deployments: Array<{ id: string; slug: string }>; onCreated: () => void }) {
  const trpc = useTRPC();
  const create = useMutation(trpc.apiKeys.create.mutationOptions({ onSuccess: onCreated }));
  const [created, setCreated] = useState<{ key: string; label: string } | null>(null);
  const [allDeployments, setAllDeployments] = useState(true);
  // Set synchronously: create.isPending only disables the button after a re-render, too late for a
  // double click, and a second key would be a live credential whose secret nobody ever saw.
  const submitting = useRef(false);
  const [expiryError, setExpiryError] = useState<string | null>(null);
  const hydrated = useHydrated();
  const fe = create.error ? fieldErrors(create.error) : {};

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (submitting.current) return;
    const form = e.currentTarget;
    const f = new FormData(form);
    const num = (k: string) => {
      const v = String(f.get(k) ?? "").trim();
      return v ? Number(v) : null;
    };
    const expiresAt = expiryFromDateInput(String(f.get("expiresAt") ?? ""));
    setExpiryError(isInvalidExpiry(expiresAt) ? INVALID_EXPIRY : null);
    if (isInvalidExpiry(expiresAt)) return;
    submitting.current = true;
    try {
      const r = await create.mutateAsync({
        label: String(f.get("label") ?? ""),
        deployments: allDeployments ? "*" : f.getAll("deploymentIds").map(String),
        rpm: num("rpm"),
        tpm: num("tpm"),
        maxConcurrent: num("maxConcurrent"),
        expiresAt,
      });
      setCreated({ key: r.key, label: r.apiKey.label });
      form.reset();
      setAllDeployments(true);
    } catch {
      /* shown below */
    } finally {
      submitting.current = false;
    }
  }

  return (
    <div className="space-y-4">
      {created ? (
        <div className="rounded-md bg-green-50 p-4 text-sm ring-1 ring-green-200" role="status">
          <p className="mb-2 font-medium text-green-900">Key “{created.label}” created. Copy it now: it will not be shown again.</p>
          <div className="flex gap-2">
            <input readOnly aria-label="New API key" data-testid="new-api-key" value={created.key} className="field-input mt-0 font-mono" onFocus={(e) => e.currentTarget.select()} />
            <CopyButton text={created.key} />
            <button type="button" className="btn-secondary" onClick={() => setCreated(null)}>Done</button>
          </div>
        </div>
      ) : null}
      <form method="post" onSubmit={onSubmit} className="card grid gap-3 md:grid-cols-3" aria-label="Create an API key" noValidate>
        <h2 className="text-sm font-semibold text-gray-900 md:col-span-3">Create a key</h2>
        <Field id="key-label" label="Label" error={fe.label} className="md:col-span-2">
          <input id="key-label" name="label" className="field-input" required maxLength={80} placeholder="backend service" />
        </Field>
        <Field id="key-expires" label="Expires on (optional)" error={expiryError ?? fe.expiresAt}>
          <input id="key-expires" name="expiresAt" type="date" className="field-input" />
        </Field>
        <Field id="key-rpm" label="Requests per minute (empty = no limit)" error={fe.rpm}>
          <input id="key-rpm" name="rpm" type="number" min={1} step={1} className="field-input" />
        </Field>
        <Field id="key-tpm" label="Tokens per minute (empty = no limit)" error={fe.tpm}>
          <input id="key-tpm" name="tpm" type="number" min={1} step={1} className="field-input" />
        </Field>
        <Field id="key-concurrency" label="Max concurrent requests (empty = no limit)" error={fe.maxConcurrent}>
          <input id="key-concurrency" name="maxConcurrent" type="number" min={1} step={1} className="field-input" />
        </Field>
        <fieldset className="md:col-span-3">
          <legend className="field-label">Scope</legend>
          <div className="mt-1 flex flex-wrap gap-4 text-sm">
            <label className="inline-flex items-center gap-2"><input type="radio" name="scope" checked={allDeployments} onChange={() => setAllDeployments(true)} /> Every deployment of the team</label>
            <label className="inline-flex items-center gap-2"><input type="radio" name="scope" checked={!allDeployments} onChange={() => setAllDeployments(false)} disabled={deployments.length === 0} /> Only these deployments</label>
          </div>
          {!allDeployments ? (
            <div className="mt-2 flex flex-wrap gap-3 text-sm">
              {deployments.map((d) => (
                <label key={d.id} className="inline-flex items-center gap-1"><input type="checkbox" name="deploymentIds" value={d.id} /> {d.slug}</label>
              ))}
            </div>
          ) : null}
          {fe.deployments ? <p className="field-error" role="alert">{fe.deployments}</p> : null}
        </fieldset>
        {create.error && !Object.keys(fe).length ? <p role="alert" className="field-error md:col-span-3">{errorMessage(create.error)}</p> : null}
        <div className="md:col-span-3"><button type="submit" className="btn-primary" disabled={!hydrated || create.isPending}>{create.isPending ? "Creating…" : "Create key"}</button></div>
      </form>
    </div>
  );
}

function LimitsForm({ apiKey, onDone }: { apiKey: { id: string; label: string; rpm: number | null; tpm: number | null; maxConcurrent: number | null; expiresAt: Date | null }; onDone: () => void }) {
  const trpc = useTRPC();
  const update = useMutation(trpc.apiKeys.update.mutationOptions({ onSuccess: onDone }));
  const [expiryError, setExpiryError] = useState<string | null>(null);
  const fe = update.error ? fieldErrors(update.error) : {};
  const p = `limits-${apiKey.id}`;
  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const num = (k: string) => {
      const v = String(f.get(k) ?? "").trim();
      return v ? Number(v) : null;
    };
    const expiresAt = expiryFromDateInput(String(f.get("expiresAt") ?? ""));
    setExpiryError(isInvalidExpiry(expiresAt) ? INVALID_EXPIRY : null);
    if (isInvalidExpiry(expiresAt)) return;
    update.mutate({ keyId: apiKey.id, rpm: num("rpm"), tpm: num("tpm"), maxConcurrent: num("maxConcurrent"), expiresAt });
  }
  const day = dateInputValueOfExpiry(apiKey.expiresAt);
  return (
    <form method="post" onSubmit={onSubmit} className="grid gap-3 sm:grid-cols-5" aria-label={`Limits of ${apiKey.label}`} noValidate>
      <Field id={`${p}-rpm`} label="Requests / min" error={fe.rpm}><input id={`${p}-rpm`} name="rpm" type="number" min={1} className="field-input" defaultValue={apiKey.rpm ?? ""} /></Field>
      <Field id={`${p}-tpm`} label="Tokens / min" error={fe.tpm}><input id={`${p}-tpm`} name="tpm" type="number" min={1} className="field-input" defaultValue={apiKey.tpm ?? ""} /></Field>
      <Field id={`${p}-conc`} label="Max concurrent" error={fe.maxConcurrent}><input id={`${p}-conc`} name="maxConcurrent" type="number" min={1} className="field-input" defaultValue={apiKey.maxConcurrent ?? ""} /></Field>
      <Field id={`${p}-exp`} label="Expires on" error={expiryError ?? fe.expiresAt}><input id={`${p}-exp`} name="expiresAt" type="date" className="field-input" defaultValue={day} /></Field>
      <div className="flex items-end"><button type="submit" className="btn-primary w-full" disabled={update.isPending}>{update.isPending ? "Saving…" : "Save limits"}</button></div>
      {update.error && !Object.keys(fe).length ? <p role="alert" className="field-error sm:col-span-5">{errorMessage(update.error)}</p> : null}
      <p className="text-xs text-gray-500 sm:col-span-5">Empty means no limit. Routers apply changes within seconds.</p>
    </form>
  );
}
