"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useHydrated } from "@/app/_lib/hydrated";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Badge, ConfirmButton, Field } from "@/app/_components/controls";
import { formatDate, relativeTime } from "@/app/_components/format";
import { useTeam } from "../AppShell";

type TestOutcome = "passed" | "failed" | "unverified";

/** How each test outcome reads: "could not verify" is neither a pass nor a refusal of the credentials. */
const TEST_OUTCOME: Record<TestOutcome, { badge: string; badgeTone: "green" | "red" | "amber"; heading: string; tone: "success" | "warning" }> = {
  passed: { badge: "ok", badgeTone: "green", heading: "Test passed", tone: "success" },
  failed: { badge: "failed", badgeTone: "red", heading: "Test failed", tone: "warning" },
  unverified: { badge: "could not verify", badgeTone: "amber", heading: "Could not verify", tone: "warning" },
};

export default function VaultPage() {
  const trpc = useTRPC();
  const { can } = useTeam();
  const readable = can("vault.read-metadata");
  const write = can("vault.write");
  const qc = useQueryClient();
  const kinds = useQuery({ ...trpc.vault.kinds.queryOptions(), enabled: readable });
  const list = useQuery({ ...trpc.vault.list.queryOptions(), enabled: readable });
  const [actionError, setActionError] = useState<string | null>(null);
  const [testResult, setTestResult] = useState<{ id: string; outcome: TestOutcome; message: string } | null>(null);
  const [rotating, setRotating] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: trpc.vault.list.queryKey() });
  const onError = (e: unknown) => setActionError(errorMessage(e));
  const test = useMutation(
    trpc.vault.test.mutationOptions({
      onSuccess: (r, v) => {
        setTestResult({ id: v.secretId, outcome: r.outcome, message: r.message });
        refresh();
      },
      onError,
    }),
  );
  const remove = useMutation(trpc.vault.delete.mutationOptions({ onSuccess: refresh, onError }));
  const kindName = (k: string) => kinds.data?.find((x) => x.kind === k)?.displayName ?? k;

  if (!readable) {
    return (
      <>
        <PageHeader title="Vault" />
        <Notice>Your role cannot see the team’s provider credentials (needs “vault.read-metadata”).</Notice>
      </>
    );
  }

  return (
    <>
      <PageHeader title="Vault" description="Provider keys, encrypted at rest (AES-256-GCM, one data key per secret). Values are never shown again after saving: only their last 4 characters." />
      {actionError ? <div className="mb-4"><ErrorBox message={actionError} /></div> : null}
      {write ? <AddSecretForm kinds={kinds.data ?? []} onSaved={refresh} /> : <Notice>Only admins can add, test, rotate or delete credentials (needs “vault.write”).</Notice>}
      <section className="mt-6" aria-labelledby="secrets-heading">
        <h2 id="secrets-heading" className="mb-2 text-sm font-semibold text-gray-900">Credentials</h2>
        {list.isPending ? <Loading /> : list.error ? <ErrorBox message={errorMessage(list.error)} onRetry={() => list.refetch()} /> : list.data.length === 0 ? (
          <Empty title="No credentials yet">{write ? "Add a provider key above to deploy on that provider." : "An admin can add provider keys."}</Empty>
        ) : (
          <ul className="divide-y rounded-lg bg-white shadow-sm ring-1 ring-gray-200" data-testid="secrets-list">
            {list.data.map((s) => (
              <li key={s.id} className="px-4 py-3 text-sm" data-testid={`secret-${s.label}`}>
                <div className="flex flex-wrap items-center justify-between gap-3">
                  <div>
                    <p className="font-medium text-gray-900">{s.label}</p>
                    <p className="text-gray-600">
                      {kindName(s.kind)} · <span className="font-mono">{s.last4 ? `••••${s.last4}` : "••••"}</span> · version {s.currentVersion} · added {formatDate(s.createdAt)}
                      {s.createdByEmail ? ` by ${s.createdByEmail}` : ""}
                    </p>
                    <p className="text-xs text-gray-500">
                      Last used {relativeTime(s.lastUsedAt)} · last tested{" "}
                      {s.lastTestedAt ? (
                        <>
                          {relativeTime(s.lastTestedAt)}{" "}
                          <Badge tone={TEST_OUTCOME[s.lastTestOutcome ?? "unverified"].badgeTone}>{TEST_OUTCOME[s.lastTestOutcome ?? "unverified"].badge}</Badge>
                          {s.lastTestMessage ? <span> {s.lastTestMessage}</span> : null}
                        </>
                      ) : "never"}
                    </p>
                  </div>
                  {write ? (
                    <div className="flex flex-wrap gap-2">
                      <button type="button" className="btn-secondary" disabled={test.isPending} onClick={() => { setActionError(null); setTestResult(null); test.mutate({ secretId: s.id }); }}>
                        {test.isPending && test.variables?.secretId === s.id ? "Testing…" : "Test"}
                      </button>
                      <button type="button" className="btn-secondary" aria-expanded={rotating === s.id} onClick={() => setRotating(rotating === s.id ? null : s.id)}>Rotate</button>
                      <ConfirmButton
                        label="Delete" className="btn-secondary text-red-700"
                        title={`Delete “${s.label}”?`}
                        message={deleteConsequence(s.kind, s.usedBy)}
                        confirmLabel="Delete credential"
                        danger
                        onConfirm={() => { setActionError(null); remove.mutate({ secretId: s.id }); }}
                      />
                    </div>
                  ) : null}
                </div>
                {testResult?.id === s.id ? (
                  <div className="mt-2" data-testid="secret-test-result">
                    <TestResultNotice outcome={testResult.outcome} message={testResult.message} />
                  </div>
                ) : null}
                {rotating === s.id ? <RotateForm secretId={s.id} label={s.label} onDone={() => { setRotating(null); refresh(); }} /> : null}
              </li>
            ))}
          </ul>
        )}
      </section>
    </>
  );
}

/** What stops working when a secret is deleted, named: the alert channels using it, or the providers of its kind. */
function deleteConsequence(kind: string, usedBy: { providers: string[]; alertChannels: string[] }): string {
  const list = (xs: string[]) => (xs.length < 2 ? xs.join("") : `${xs.slice(0, -1).join(", ")} and ${xs[xs.length - 1]}`);
  if (usedBy.alertChannels.length) {
    const one = usedBy.alertChannels.length === 1;
    const names = list(usedBy.alertChannels.map((n) => `“${n}”`));
    return `This is the webhook URL of the alert channel${one ? "" : "s"} ${names}. ${one ? "It stops" : "They stop"} receiving alerts until ${one ? "it gets" : "each gets"} a new URL on the Alerts page.`;
  }
  if (usedBy.providers.length) {
    return `Deployments on ${list(usedBy.providers)} will not be able to deploy or destroy until a new key is added.`;
  }
  if (kind === "slack-webhook" || kind === "webhook") return "No alert channel uses this URL.";
  if (kind === "huggingface") return "New deployments start without a Hugging Face token: gated models will not download.";
  return "Anything that uses this credential stops working until a new one is added.";
}

function TestResultNotice({ outcome, message }: { outcome: TestOutcome; message: string }) {
  const o = TEST_OUTCOME[outcome];
  return <Notice tone={o.tone}>{o.heading}: {message}</Notice>;
}

function AddSecretForm({ kinds, onSaved }: { kinds: Array<{ kind: string; displayName: string; format: string }>; onSaved: () => void }) {
  const trpc = useTRPC();
  const create = useMutation(trpc.vault.create.mutationOptions({ onSuccess: onSaved }));
  const hydrated = useHydrated();
  const [kind, setKind] = useState("");
  const fe = create.error ? fieldErrors(create.error) : {};
  const format = kinds.find((k) => k.kind === kind)?.format;

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    // No kind chosen: the server refuses it with the other fields' problems; its message is replaced below.
    const chosen = String(f.get("kind") ?? "");
    try {
      await create.mutateAsync({ kind: chosen as never, label: String(f.get("label") ?? ""), value: String(f.get("value") ?? "") });
      form.reset();
      setKind("");
    } catch {
      /* shown below */
    }
  }

  return (
    <form method="post" onSubmit={onSubmit} className="card grid gap-3 md:grid-cols-2" aria-label="Add a credential" noValidate>
      <h2 className="text-sm font-semibold text-gray-900 md:col-span-2">Add a credential</h2>
      <Field id="secret-kind" label="Kind" error={fe.kind && !kind ? "Choose what kind of credential this is." : fe.kind}>
        <select id="secret-kind" name="kind" className="field-input" required value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="" disabled>Choose…</option>
          {kinds.map((k) => <option key={k.kind} value={k.kind}>{k.displayName}</option>)}
        </select>
      </Field>
      <Field id="secret-label" label="Label" error={fe.label}>
        <input id="secret-label" name="label" className="field-input" required maxLength={80} placeholder="Production RunPod" />
      </Field>
      <Field
        id="secret-value"
        label="Value"
        error={fe.value}
        className="md:col-span-2"
        hint={format === "json" ? "Paste the JSON document (e.g. a service-account file)." : format === "url" ? "An https URL (http only on loopback)." : "Paste the token; it is encrypted before it is stored."}
      >
        {format === "json" || format === "text-or-json" ? (
          <textarea id="secret-value" name="value" rows={3} className="field-input font-mono" required autoComplete="off" spellCheck={false} />
        ) : (
          <input id="secret-value" name="value" type="password" className="field-input font-mono" required autoComplete="off" />
        )}
      </Field>
      {create.error && !Object.keys(fe).length ? <p role="alert" className="field-error md:col-span-2">{errorMessage(create.error)}</p> : null}
      {create.isSuccess ? <p role="status" className="text-sm text-green-700 md:col-span-2">Saved. The value is encrypted and will not be shown again.</p> : null}
      <div className="md:col-span-2">
        <button type="submit" className="btn-primary" disabled={!hydrated || create.isPending}>{create.isPending ? "Saving…" : "Save credential"}</button>
      </div>
    </form>
  );
}

function RotateForm({ secretId, label, onDone }: { secretId: string; label: string; onDone: () => void }) {
  const trpc = useTRPC();
  const rotate = useMutation(trpc.vault.rotate.mutationOptions({ onSuccess: onDone }));
  const fe = rotate.error ? fieldErrors(rotate.error) : {};
  const id = `rotate-${secretId}`;
  // The form opens on the user's "Rotate" click: take them to the field they are about to fill.
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <form
      method="post"
      className="mt-3 flex flex-wrap items-end gap-2"
      aria-label={`Rotate ${label}`}
      onSubmit={(e) => {
        e.preventDefault();
        rotate.mutate({ secretId, value: String(new FormData(e.currentTarget).get("value") ?? "") });
      }}
    >
      <Field id={id} label={`New value for ${label}`} error={fe.value ?? (rotate.error && !Object.keys(fe).length ? errorMessage(rotate.error) : undefined)} className="min-w-[18rem] flex-1">
        <input id={id} name="value" type="password" className="field-input font-mono" required autoComplete="off" ref={input} />
      </Field>
      <button type="submit" className="btn-primary" disabled={rotate.isPending}>{rotate.isPending ? "Rotating…" : "Save new version"}</button>
    </form>
  );
}
