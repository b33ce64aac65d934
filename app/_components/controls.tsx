"use client";

import { useEffect, useId, useRef, useState, type ReactNode } from "react";

const TONES = {
  gray: "bg-gray-100 text-gray-700 ring-gray-300",
  blue: "bg-blue-50 text-blue-700 ring-blue-200",
  green: "bg-green-50 text-green-700 ring-green-200",
  amber: "bg-amber-50 text-amber-800 ring-amber-200",
  red: "bg-red-50 text-red-700 ring-red-200",
} as const;
export type Tone = keyof typeof TONES;

export function Badge({ tone = "gray", children, testId }: { tone?: Tone; children: ReactNode; testId?: string }) {
  return (
    <span data-testid={testId} className={`inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${TONES[tone]}`}>
      {children}
    </span>
  );
}

const STATUS_TONE: Record<string, Tone> = {
  pending_approval: "amber",
  queued: "blue",
  deploying: "blue",
  active: "green",
  degraded: "amber",
  failed: "red",
  destroying: "blue",
  destroyed: "gray",
  rejected: "red",
  expired: "gray",
  // components, approvals, keys, deliveries
  pending: "amber",
  creating: "blue",
  ready: "green",
  scaled_to_zero: "gray",
  draining: "blue",
  gone: "gray",
  approved: "green",
  revoked: "gray",
  ok: "green",
  delivered: "green",
  sent: "green",
  error: "red",
  cold: "gray",
  warming: "amber",
};

/** A status word in a colour that says good / in progress / needs attention / bad / over. */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <Badge tone={STATUS_TONE[status] ?? "gray"} testId={testId}>
      {status.replace(/_/g, " ")}
    </Badge>
  );
}

/**
 * A control the caller's role may not use: rendered disabled, with the reason next to it (and as its
 * accessible description), never silently missing. The server refuses the action regardless.
 */
export function DisabledWithReason({ label, reason, testId }: { label: string; reason: string; testId?: string }) {
  const id = useId();
  return (
    <span className="inline-flex items-center gap-2">
      <button type="button" className="btn-secondary" disabled aria-describedby={id} data-testid={testId}>
        {label}
      </button>
      <span id={id} className="text-xs text-gray-500">{reason}</span>
    </span>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="btn-secondary px-2 py-1 text-xs"
      onClick={() => {
        navigator.clipboard?.writeText(text).then(
          () => setCopied(true),
          () => setCopied(false),
        );
        setTimeout(() => setCopied(false), 1500);
      }}
    >
      {copied ? "Copied" : label}
    </button>
  );
}

/**
 * A button that asks first, in a native modal <dialog> (focus moves into it, Esc cancels). With
 * `typeToConfirm`, the confirm button stays disabled until the user types that text.
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  message: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  typeToConfirm?: string;
  danger?: boolean;
  disabled?: boolean;
  className?: string;
  testId?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState("");
  const titleId = useId();
  const inputId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const ok = !props.typeToConfirm || typed.trim() === props.typeToConfirm;
  return (
    <>
      <button
        type="button"
        data-testid={props.testId}
        className={props.className ?? (props.danger ? "btn-danger" : "btn-secondary")}
        disabled={props.disabled}
        onClick={() => {
          setTyped("");
          setOpen(true);
        }}
      >
        {props.label}
      </button>
      {/* The dialog sits where its button is, e.g. in a nowrap or right-aligned table cell: don't inherit that. */}
      <dialog ref={ref} aria-labelledby={titleId} onClose={() => setOpen(false)} className="w-full max-w-md whitespace-normal text-left rounded-lg p-0 shadow-xl backdrop:bg-gray-900/40">
        {open ? (
          <form
            method="dialog"
            // showModal() focuses the first focusable element: the confirmation text box, else Cancel.
            className="space-y-4 p-5"
            onSubmit={(e) => {
              e.preventDefault();
              if (!ok) return;
              setOpen(false);
              props.onConfirm();
            }}
          >
            {/* Titles name things (an email, a slug) that may be one long word: break it rather than clip it. */}
            <h2 id={titleId} className="text-base font-semibold text-gray-900 [overflow-wrap:anywhere]">{props.title}</h2>
            <div className="text-sm text-gray-700 [overflow-wrap:anywhere]">{props.message}</div>
            {props.typeToConfirm ? (
              <div>
                <label htmlFor={inputId} className="field-label">Type <code>{props.typeToConfirm}</code> to confirm</label>
                <input id={inputId} className="field-input" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
              </div>
            ) : null}
            <div className="flex justify-end gap-2">
              <button type="button" className="btn-secondary" onClick={() => setOpen(false)}>Cancel</button>
              <button type="submit" className={props.danger ? "btn-danger" : "btn-primary"} disabled={!ok}>{props.confirmLabel}</button>
            </div>
          </form>
        ) : null}
      </dialog>
    </>
  );
}

/** A labelled form field with its error shown next to it. */
export function Field(props: { id: string; label: string; error?: string; hint?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <div className={props.className}>
      <label htmlFor={props.id} className="field-label">{props.label}</label>
      {props.children}
      {props.hint ? <p id={`${props.id}-hint`} className="mt-1 text-xs text-gray-500">{props.hint}</p> : null}
      {props.error ? <p id={`${props.id}-error`} className="field-error" role="alert">{props.error}</p> : null}
    </div>
  );
}
