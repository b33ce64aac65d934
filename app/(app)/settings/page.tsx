"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { errorMessage, fieldErrors, useTRPC } from "@/app/_lib/trpc";
import { useHydrated } from "@/app/_lib/hydrated";
import { Empty, ErrorBox, Loading, Notice, PageHeader } from "@/app/_components/ui";
import { Badge, ConfirmButton, DisabledWithReason, Field } from "@/app/_components/controls";
import { formatUsd, usdToMicros } from "@/app/_components/format";
import { MIN_PASSWORD_LENGTH } from "@/server/auth/password-rules";
import { useTeam } from "../AppShell";

const ROLES = ["admin", "developer", "viewer"] as const;

export default function SettingsPage() {
  const { can } = useTeam();
  return (
    <>
      <PageHeader title="Team settings" description="The team’s name, when deployments need an admin’s approval, and how much the team may spend each month. Below them, your own password, sessions and sign-in methods." />
      <div className="grid gap-6 lg:grid-cols-2">
        <TeamNameSection editable={can("team.update")} />
        <PolicySection editable={can("team.update")} />
        <BudgetsSection editable={can("budget.manage")} />
        <PasswordSection />
        <SignInMethodsSection />
      </div>
    </>
  );
}

function TeamNameSection({ editable }: { editable: boolean }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const router = useRouter();
  const { teamName } = useTeam();
  const hydrated = useHydrated();
  const rename = useMutation(
    trpc.team.rename.mutationOptions({
      onSuccess: () => {
        // The team switcher gets its list from the server layout, not from a query: refresh the server
        // components so it shows the new name; the queries carry the name for the pages that read it.
        router.refresh();
        void qc.invalidateQueries({ queryKey: trpc.team.get.queryKey() });
        void qc.invalidateQueries({ queryKey: trpc.me.teams.queryKey() });
      },
    }),
  );
  const fe = rename.error ? fieldErrors(rename.error) : {};

  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    rename.mutate({ name: String(new FormData(e.currentTarget).get("name") ?? "") });
  }

  return (
    <section className="card lg:col-span-2" aria-labelledby="team-name-heading">
      <h2 id="team-name-heading" className="mb-1 text-base font-semibold text-gray-900">Team name</h2>
      <p className="mb-4 text-sm text-gray-600">Shown in the team switcher and on invitations, to everyone in the team.</p>
      {editable ? (
        <form method="post" onSubmit={onSubmit} aria-label="Team name" className="flex flex-wrap items-start gap-3" noValidate key={teamName}>
          <Field id="team-name" label="Name" error={fe.name} className="min-w-[16rem] flex-1">
            <input
              id="team-name"
              name="name"
              className="field-input"
              required
              maxLength={60}
              defaultValue={teamName ?? ""}
              aria-invalid={!!fe.name}
              aria-describedby={fe.name ? "team-name-error" : undefined}
              // A notice or an error about the last attempt no longer describes what is being typed.
              onChange={() => rename.reset()}
            />
          </Field>
          <div className="pt-6">
            <button type="submit" className="btn-primary" disabled={!hydrated || rename.isPending}>{rename.isPending ? "Saving…" : "Save name"}</button>
          </div>
          {rename.error && !Object.keys(fe).length ? <p role="alert" className="field-error w-full">{errorMessage(rename.error)}</p> : null}
          {rename.isSuccess ? <p role="status" className="w-full text-sm text-green-700">Team renamed to “{rename.data.name}”.</p> : null}
        </form>
      ) : (
        <div className="flex flex-wrap items-center gap-3">
          <p className="text-sm font-medium text-gray-900" data-testid="team-name">{teamName}</p>
          <DisabledWithReason label="Rename team" reason="Only admins can rename the team (needs “team.update”)." />
        </div>
      )}
    </section>
  );
}

function PolicySection({ editable }: { editable: boolean }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const policy = useQuery(trpc.policy.get.queryOptions());
  const catalog = useQuery(trpc.catalog.table.queryOptions());
  const update = useMutation(trpc.policy.update.mutationOptions({ onSuccess: () => qc.invalidateQueries({ queryKey: trpc.policy.get.queryKey() }) }));
  const fe = update.error ? fieldErrors(update.error) : {};

  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const threshold = String(f.get("threshold") ?? "").trim();
    update.mutate({
      approvalRoles: f.getAll("roles").map(String) as Array<(typeof ROLES)[number]>,
      approvalGpus: f.getAll("gpus").map(String),
      approvalForSpot: f.get("spot") === "on",
      approvalForServerless: f.get("serverless") === "on",
      approvalCostThresholdMicros: threshold ? usdToMicros(Number(threshold)) : null,
      approvalTtlHours: Number(f.get("ttl")),
    });
  }

  return (
    <section className="card" aria-labelledby="policy-heading">
      <h2 id="policy-heading" className="mb-1 text-base font-semibold text-gray-900">Approval policy</h2>
      <p className="mb-4 text-sm text-gray-600">A request needs approval when any rule matches.</p>
      {!editable ? <div className="mb-4"><Notice>Only admins can change the policy (needs “team.update”).</Notice></div> : null}
      {policy.isPending ? <Loading /> : policy.error ? <ErrorBox message={errorMessage(policy.error)} onRetry={() => policy.refetch()} /> : (
        <form method="post" onSubmit={onSubmit} aria-label="Approval policy" className="space-y-4" key={JSON.stringify(policy.data)}>
          <fieldset disabled={!editable} className="space-y-4">
            <fieldset>
              <legend className="field-label">Requests by these roles need approval</legend>
              <div className="mt-1 flex gap-4 text-sm">
                {ROLES.map((r) => (
                  <label key={r} className="inline-flex items-center gap-1 capitalize"><input type="checkbox" name="roles" value={r} defaultChecked={policy.data.approvalRoles.includes(r)} /> {r}</label>
                ))}
              </div>
            </fieldset>
            <fieldset>
              <legend className="field-label">These GPUs always need approval</legend>
              <div className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-sm">
                {(catalog.data?.gpus.map((g) => g.gpu) ?? policy.data.approvalGpus).map((g) => (
                  <label key={g} className="inline-flex items-center gap-1"><input type="checkbox" name="gpus" value={g} defaultChecked={policy.data.approvalGpus.includes(g)} /> {g}</label>
                ))}
              </div>
            </fieldset>
            <div className="flex flex-wrap gap-4 text-sm">
              <label className="inline-flex items-center gap-2"><input type="checkbox" name="spot" defaultChecked={policy.data.approvalForSpot} /> Any spot capacity needs approval</label>
              <label className="inline-flex items-center gap-2"><input type="checkbox" name="serverless" defaultChecked={policy.data.approvalForServerless} /> Any serverless capacity needs approval</label>
            </div>
            <div className="grid gap-4 sm:grid-cols-2">
              <Field id="policy-threshold" label="Cost threshold, USD per hour (empty = none)" error={fe.approvalCostThresholdMicros}>
                <input id="policy-threshold" name="threshold" type="number" min={0} step="0.01" className="field-input" defaultValue={policy.data.approvalCostThresholdMicros === null ? "" : policy.data.approvalCostThresholdMicros / 1_000_000} />
              </Field>
              <Field id="policy-ttl" label="Requests expire after (hours)" error={fe.approvalTtlHours}>
                <input id="policy-ttl" name="ttl" type="number" min={1} max={336} step={1} required className="field-input" defaultValue={policy.data.approvalTtlHours} />
              </Field>
            </div>
          </fieldset>
          {update.error && !Object.keys(fe).length ? <p role="alert" className="field-error">{errorMessage(update.error)}</p> : null}
          {update.isSuccess ? <p role="status" className="text-sm text-green-700">Policy saved.</p> : null}
          {editable ? <button type="submit" className="btn-primary" disabled={update.isPending}>{update.isPending ? "Saving…" : "Save policy"}</button> : null}
        </form>
      )}
    </section>
  );
}

function BudgetsSection({ editable }: { editable: boolean }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const budgets = useQuery(trpc.usage.budgets.list.queryOptions());
  const deployments = useQuery({ ...trpc.deployments.list.queryOptions({ limit: 200, status: ["queued", "deploying", "active", "degraded", "pending_approval"] }), enabled: editable });
  const keys = useQuery({ ...trpc.apiKeys.list.queryOptions(), enabled: editable });
  const refresh = () => qc.invalidateQueries({ queryKey: trpc.usage.budgets.list.queryKey() });
  const set = useMutation(trpc.usage.budgets.set.mutationOptions({ onSuccess: refresh }));
  const del = useMutation(trpc.usage.budgets.delete.mutationOptions({ onSuccess: refresh }));
  const [scope, setScope] = useState<"team" | "deployment" | "apikey">("team");
  // A deployment or key budget with nothing chosen: said here, naming the field, before anything is sent.
  const [targetError, setTargetError] = useState<string | null>(null);
  const hydrated = useHydrated();
  const fe = set.error ? fieldErrors(set.error) : {};

  const targets = scope === "deployment" ? (deployments.data?.items ?? []).map((d) => ({ id: d.id, name: d.slug })) : scope === "apikey" ? (keys.data ?? []).filter((k) => k.status === "active").map((k) => ({ id: k.id, name: k.label })) : [];

  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const usd = Number(f.get("limit"));
    const targetId = scope === "team" ? null : String(f.get("target") ?? "");
    if (targetId === "") {
      const what = scope === "deployment" ? "a deployment" : "an API key";
      const none = scope === "deployment" ? "there is no running or pending deployment yet" : "the team has no active API key yet";
      set.reset();
      setTargetError(targets.length ? `Choose ${what}.` : `Choose ${what}: ${none}.`);
      return;
    }
    setTargetError(null);
    set.mutate({ scope, targetId, monthlyLimitMicros: Number.isFinite(usd) ? usdToMicros(usd) : 0 });
  }

  return (
    <section className="card" aria-labelledby="budgets-heading">
      <h2 id="budgets-heading" className="mb-1 text-base font-semibold text-gray-900">Monthly budgets</h2>
      <p className="mb-4 text-sm text-gray-600">Alerts go out at 80%, 90% and 100%; at 100% the router refuses new requests for what the budget covers.</p>
      {budgets.isPending ? <Loading /> : budgets.error ? <ErrorBox message={errorMessage(budgets.error)} onRetry={() => budgets.refetch()} /> : budgets.data.length === 0 ? (
        <Empty title="No budgets set" />
      ) : (
        <ul className="divide-y rounded-md ring-1 ring-gray-200" data-testid="budgets-list">
          {budgets.data.map((b) => (
            <li key={b.id} className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm">
              <div>
                <p className="font-medium text-gray-900">{b.name} <span className="text-xs font-normal text-gray-500">({b.scope})</span> {b.blocked ? <Badge tone="red">blocked</Badge> : null}</p>
                <p className="text-gray-600">{formatUsd(b.spendMicros)} of {formatUsd(b.monthlyLimitMicros)} in {b.period} · {b.percent}%</p>
                <div className="mt-1 h-1.5 w-48 rounded bg-gray-100" aria-hidden><div className={`h-1.5 rounded ${b.percent >= 100 ? "bg-red-500" : b.percent >= 80 ? "bg-amber-500" : "bg-green-500"}`} style={{ width: `${Math.min(100, b.percent)}%` }} /></div>
                {b.unpriced.length ? (
                  <p className="mt-1 text-xs text-amber-800 [overflow-wrap:anywhere]" data-testid="budget-unpriced">
                    Not counted, no known price: {b.unpriced.map((u) => `${u.slug} (${u.reasons.join("; ")})`).join(", ")}.
                  </p>
                ) : null}
              </div>
              {editable ? (
                <ConfirmButton label="Remove" className="btn-secondary text-red-700" title={`Remove the budget for ${b.name}?`} message="Spending is no longer limited or alerted on." confirmLabel="Remove budget" danger onConfirm={() => del.mutate({ budgetId: b.id })} />
              ) : null}
            </li>
          ))}
        </ul>
      )}
      {del.error ? <p role="alert" className="field-error">{errorMessage(del.error)}</p> : null}
      {editable ? (
        <form method="post" onSubmit={onSubmit} className="mt-4 grid gap-3 sm:grid-cols-3" aria-label="Set a budget" noValidate>
          <Field id="budget-scope" label="Applies to" error={fe.scope}>
            <select id="budget-scope" className="field-input" value={scope} onChange={(e) => { setScope(e.target.value as typeof scope); setTargetError(null); }}>
              <option value="team">The whole team</option>
              <option value="deployment">One deployment</option>
              <option value="apikey">One API key</option>
            </select>
          </Field>
          {scope !== "team" ? (
            <Field id="budget-target" label={scope === "deployment" ? "Deployment" : "API key"} error={targetError ?? fe.targetId}>
              <select id="budget-target" name="target" className="field-input" required aria-invalid={!!(targetError ?? fe.targetId)} aria-describedby={targetError ?? fe.targetId ? "budget-target-error" : undefined} onChange={() => setTargetError(null)}>
                {targets.length === 0 ? <option value="">None available</option> : targets.map((t) => <option key={t.id} value={t.id}>{t.name}</option>)}
              </select>
            </Field>
          ) : null}
          <Field id="budget-limit" label="Monthly limit (USD)" error={fe.monthlyLimitMicros}>
            <input id="budget-limit" name="limit" type="number" min={0.01} step="0.01" required className="field-input" aria-invalid={!!fe.monthlyLimitMicros} aria-describedby={fe.monthlyLimitMicros ? "budget-limit-error" : undefined} />
          </Field>
          {set.error && !Object.keys(fe).length ? <p role="alert" className="field-error sm:col-span-3">{errorMessage(set.error)}</p> : null}
          {set.data?.warnings.length ? (
            <div className="sm:col-span-3">
              <Notice tone="warning">
                <span data-testid="budget-set-warnings">Budget saved, but it cannot count everything. {set.data.warnings.join(" ")}</span>
              </Notice>
            </div>
          ) : null}
          <div className="sm:col-span-3"><button type="submit" className="btn-primary" disabled={!hydrated || set.isPending}>{set.isPending ? "Saving…" : "Set budget"}</button></div>
        </form>
      ) : (
        <div className="mt-4"><Notice>Only admins can set budgets (needs “budget.manage”).</Notice></div>
      )}
    </section>
  );
}

const NO_PASSWORD_TEXT =
  "Your account signs in with GitHub or Google and has no password. To set one, ask your Tuna operator for a password reset link (npm run reset-password -- <your email>).";

/** The reason a tRPC error carries (errorFormatter), e.g. "wrong_password". */
function reasonOf(e: unknown): string | null {
  return (e as { data?: { reason?: string | null } })?.data?.reason ?? null;
}

/** After a change that signed out every other session, when this browser's session could not be renewed either. */
const SIGNED_OUT_TOO = (
  <>
    {" "}This browser was signed out too: <a className="font-medium underline" href="/signin">sign in again</a>.
  </>
);

/**
 * The signed-in user's own password and sessions, the same in every team. Changing the password and "Sign out
 * everywhere else" both sign out every other session; this browser stays signed in (the server renews its
 * session in the answer), and says so if it could not.
 */
function PasswordSection() {
  const trpc = useTRPC();
  const account = useQuery(trpc.me.account.queryOptions());
  const change = useMutation(trpc.me.changePassword.mutationOptions());
  const others = useMutation(trpc.me.signOutOtherSessions.mutationOptions());
  const hydrated = useHydrated();
  const fe: Record<string, string | undefined> = change.error ? fieldErrors(change.error) : {};
  if (reasonOf(change.error) === "wrong_password") fe.currentPassword = errorMessage(change.error);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    others.reset();
    try {
      await change.mutateAsync({
        currentPassword: String(f.get("currentPassword") ?? ""),
        newPassword: String(f.get("newPassword") ?? ""),
        confirmPassword: String(f.get("confirmPassword") ?? ""),
      });
      form.reset();
    } catch {
      /* shown below */
    }
  }

  const signedOut = SIGNED_OUT_TOO;
  return (
    <section className="card lg:col-span-2" aria-labelledby="password-heading">
      <h2 id="password-heading" className="mb-1 text-base font-semibold text-gray-900">Password</h2>
      <p className="mb-4 text-sm text-gray-600">How you sign in to Tuna, in every team. A change signs you out everywhere except in this browser.</p>
      {account.isPending ? <Loading /> : account.error ? <ErrorBox message={errorMessage(account.error)} onRetry={() => account.refetch()} /> : account.data.hasPassword ? (
        <form method="post" onSubmit={onSubmit} aria-label="Change password" className="grid gap-3 sm:grid-cols-3" noValidate>
          <Field id="current-password" label="Current password" error={fe.currentPassword}>
            <input id="current-password" name="currentPassword" type="password" autoComplete="current-password" required className="field-input" aria-invalid={!!fe.currentPassword} aria-describedby={fe.currentPassword ? "current-password-error" : undefined} />
          </Field>
          <Field id="new-password" label="New password" error={fe.newPassword} hint={`At least ${MIN_PASSWORD_LENGTH} characters.`}>
            <input id="new-password" name="newPassword" type="password" autoComplete="new-password" required minLength={MIN_PASSWORD_LENGTH} className="field-input" aria-invalid={!!fe.newPassword} aria-describedby={fe.newPassword ? "new-password-error" : "new-password-hint"} />
          </Field>
          <Field id="confirm-password" label="New password again" error={fe.confirmPassword}>
            <input id="confirm-password" name="confirmPassword" type="password" autoComplete="new-password" required className="field-input" aria-invalid={!!fe.confirmPassword} aria-describedby={fe.confirmPassword ? "confirm-password-error" : undefined} />
          </Field>
          {change.error && !Object.keys(fe).length ? <p role="alert" className="field-error sm:col-span-3">{errorMessage(change.error)}</p> : null}
          {change.isSuccess ? (
            <p role="status" className="text-sm text-green-700 sm:col-span-3">
              Password changed. Every other session was signed out.{change.data.signedIn ? " This browser stays signed in." : signedOut}
            </p>
          ) : null}
          <div className="sm:col-span-3"><button type="submit" className="btn-primary" disabled={!hydrated || change.isPending}>{change.isPending ? "Changing…" : "Change password"}</button></div>
        </form>
      ) : (
        <p className="text-sm text-gray-700" data-testid="no-password">{NO_PASSWORD_TEXT}</p>
      )}
      <div className="mt-6 border-t pt-4">
        <h3 className="text-sm font-semibold text-gray-900">Other sessions</h3>
        <p className="mb-3 text-sm text-gray-600">Signed in on another computer, or on one you no longer use? Sign out there from here; this browser stays signed in.{account.data?.hasPassword ? " Your password is asked for, so that a copied session cannot sign you out." : ""}</p>
        <form
          method="post"
          aria-label="Sign out everywhere else"
          className="flex flex-wrap items-end gap-3"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            change.reset();
            others.mutate(account.data?.hasPassword ? { currentPassword: String(f.get("currentPassword") ?? "") } : {});
          }}
        >
          {account.data?.hasPassword ? (
            <Field id="others-current-password" label="Current password" error={reasonOf(others.error) === "wrong_password" ? errorMessage(others.error) : undefined}>
              <input id="others-current-password" name="currentPassword" type="password" autoComplete="current-password" required className="field-input" />
            </Field>
          ) : null}
          <button type="submit" className="btn-secondary" disabled={!hydrated || others.isPending || account.isPending}>
            {others.isPending ? "Signing out…" : "Sign out everywhere else"}
          </button>
        </form>
        {others.error && reasonOf(others.error) !== "wrong_password" ? <p role="alert" className="field-error">{errorMessage(others.error)}</p> : null}
        {others.isSuccess ? (
          <p role="status" className="mt-2 text-sm text-green-700">Every other session was signed out.{others.data.signedIn ? " This browser stays signed in." : signedOut}</p>
        ) : null}
      </div>
    </section>
  );
}

const PROVIDER_NAMES: Record<string, string> = { github: "GitHub", google: "Google" };

type LinkedAccount = { id: string; provider: string; label: string | null; linkedAt: Date | string | null; removable: boolean; removalBlocked: string | null };

/** "GitHub — octocat", or "GitHub account" for a link made before labels were stored. */
function linkedAccountName(a: LinkedAccount): string {
  const provider = PROVIDER_NAMES[a.provider] ?? a.provider;
  return a.label ? `${provider} — ${a.label}` : `${provider} account`;
}

function linkedWhen(a: LinkedAccount): string {
  if (!a.linkedAt) return "linked before this was recorded";
  return `linked ${new Date(a.linkedAt).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" })}`;
}

/**
 * The ways to sign in as the signed-in user: the password, and each GitHub/Google account linked to them (a browser
 * that was signed in here and then signed in with GitHub/Google linked it). One the user does not recognise (say, a
 * thief's, linked with a stolen session) can be removed; that signs out every other session, as a password change
 * does. The last way to sign in cannot be removed.
 */
function SignInMethodsSection() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const methods = useQuery(trpc.me.signInMethods.queryOptions());
  const unlink = useMutation(
    trpc.me.unlinkAccount.mutationOptions({
      onSuccess: (r, input) => {
        if (r.signedIn) {
          void qc.invalidateQueries({ queryKey: trpc.me.signInMethods.queryKey() });
        } else {
          // This browser was signed out too: a refetch would only be refused. The removal itself is done.
          qc.setQueryData(trpc.me.signInMethods.queryKey(), (old) => old && { ...old, accounts: old.accounts.filter((a) => a.id !== input.accountId) });
        }
      },
    }),
  );
  const [confirming, setConfirming] = useState<string | null>(null);
  const [removed, setRemoved] = useState<string | null>(null);
  const confirmForm = useRef<HTMLFormElement>(null);
  // The user asked to remove one: take them to what the confirmation needs (the password, else its button).
  useEffect(() => {
    if (confirming) confirmForm.current?.querySelector<HTMLElement>("input, button[type=submit]")?.focus();
  }, [confirming]);
  const hydrated = useHydrated();
  const fe: Record<string, string | undefined> = unlink.error ? fieldErrors(unlink.error) : {};
  if (reasonOf(unlink.error) === "wrong_password") fe.currentPassword = errorMessage(unlink.error);

  function ask(accountId: string | null) {
    unlink.reset();
    setConfirming(accountId);
  }

  async function onRemove(e: FormEvent<HTMLFormElement>, a: LinkedAccount, hasPassword: boolean) {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    try {
      await unlink.mutateAsync({ accountId: a.id, ...(hasPassword ? { currentPassword: String(f.get("currentPassword") ?? "") } : {}) });
      setRemoved(linkedAccountName(a));
      setConfirming(null);
    } catch {
      /* shown in the form */
    }
  }

  return (
    <section className="card lg:col-span-2" aria-labelledby="sign-in-methods-heading">
      <h2 id="sign-in-methods-heading" className="mb-1 text-base font-semibold text-gray-900">Sign-in methods</h2>
      <p className="mb-4 text-sm text-gray-600">
        Every way to sign in to Tuna as you. Signing in with GitHub or Google in a browser already signed in here links that account to you: remove one you do not recognise. Removing one signs you out everywhere except in this browser.
      </p>
      {methods.isPending ? <Loading /> : methods.error ? <ErrorBox message={errorMessage(methods.error)} onRetry={() => methods.refetch()} /> : (
        <div className="space-y-3">
          <p className="text-sm text-gray-900" data-testid="sign-in-password">Password: <span className="font-medium">{methods.data.hasPassword ? "set" : "not set"}</span></p>
          {methods.data.accounts.length === 0 ? (
            <Empty title="No GitHub or Google account signs in as you." />
          ) : (
            <ul className="divide-y rounded-md ring-1 ring-gray-200" data-testid="linked-accounts">
              {methods.data.accounts.map((a) => {
                const name = linkedAccountName(a);
                // Said by the server: the last way to sign in, or (no password) not proven by a fresh sign-in through an older link.
                const blocked = a.removable ? null : a.removalBlocked;
                return (
                  <li key={a.id} className="px-3 py-2 text-sm" data-testid="linked-account">
                    <div className="flex flex-wrap items-center justify-between gap-2">
                      <p className="text-gray-900 [overflow-wrap:anywhere]"><span className="font-medium">{name}</span>, {linkedWhen(a)}</p>
                      {!a.removable || confirming === a.id ? null : (
                        <button type="button" className="btn-secondary text-red-700" disabled={!hydrated} onClick={() => ask(a.id)} aria-label={`Remove ${name}`}>Remove</button>
                      )}
                    </div>
                    {blocked ? <p className="mt-1 text-gray-600" data-testid="removal-blocked">{blocked}</p> : null}
                    {confirming === a.id ? (
                      <form ref={confirmForm} method="post" noValidate aria-label={`Remove ${name}`} className="mt-3 flex flex-wrap items-end gap-3 rounded-md bg-gray-50 p-3" onSubmit={(e) => onRemove(e, a, methods.data.hasPassword)}>
                        <p className="w-full text-gray-700">{name} will no longer sign in as you, and every other session is signed out.{methods.data.hasPassword ? " Your password is asked for, so that a copied session cannot do this." : ""}</p>
                        {methods.data.hasPassword ? (
                          <Field id="unlink-current-password" label="Current password" error={fe.currentPassword}>
                            <input id="unlink-current-password" name="currentPassword" type="password" autoComplete="current-password" required className="field-input" aria-invalid={!!fe.currentPassword} aria-describedby={fe.currentPassword ? "unlink-current-password-error" : undefined} />
                          </Field>
                        ) : null}
                        <button type="submit" className="btn-danger" disabled={!hydrated || unlink.isPending}>{unlink.isPending ? "Removing…" : "Remove"}</button>
                        <button type="button" className="btn-secondary" onClick={() => ask(null)} disabled={unlink.isPending}>Cancel</button>
                        {unlink.error && !fe.currentPassword ? <p role="alert" className="field-error w-full">{errorMessage(unlink.error)}</p> : null}
                      </form>
                    ) : null}
                  </li>
                );
              })}
            </ul>
          )}
        </div>
      )}
      {unlink.isSuccess && removed ? (
        <p role="status" className="mt-3 text-sm text-green-700">
          {removed} removed. Every other session was signed out.
          {unlink.data.signedIn ? " This browser stays signed in." : SIGNED_OUT_TOO}
        </p>
      ) : null}
    </section>
  );
}
