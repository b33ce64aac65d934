"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";

/** What a page keeps in its URL: each key's reader turns the raw query value into a valid value, or undefined. */
export type QuerySchema<T> = { [K in keyof T]: (raw: string) => T[K] | undefined };
/** The values a schema reads. */
export type QueryOf<S> = { [K in keyof S]: S[K] extends (raw: string) => infer V ? Exclude<V, undefined> : never };

/**
 * Page state kept in the URL's query string (list filters, sort, a chart's range), so a refresh, Back and
 * Forward, and a link sent to a teammate all show the same view. Values are read through `schema`: one that
 * is not valid (an edited or stale link) is left out, as if unset, instead of reaching the server. `set`
 * merges into the current query (an empty or undefined value removes the key) and pushes a history entry, so
 * Back undoes the last change; `{ replace: true }` updates the current entry instead (a view toggled often,
 * like a chart's range, where Back should leave the page rather than step through every toggle).
 */
export function useQueryState<S extends QuerySchema<Record<string, unknown>>, T extends QueryOf<S> = QueryOf<S>>(
  schema: S,
): [Partial<T>, (next: { [K in keyof T]?: T[K] | undefined }, opts?: { replace?: boolean }) => void] {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const qs = params.toString();
  // `schema` should be a module constant: a new one on every render recomputes the state each time.
  const state = useMemo(() => readQuery(new URLSearchParams(qs), schema) as Partial<T>, [qs, schema]);
  const set = useCallback(
    (next: { [K in keyof T]?: T[K] | undefined }, opts?: { replace?: boolean }) => {
      const href = mergeQuery(pathname, qs, next as Record<string, unknown>);
      if (opts?.replace) router.replace(href, { scroll: false });
      else router.push(href, { scroll: false });
    },
    [pathname, qs, router],
  );
  return [state, set];
}

/** The valid values of `params` under `schema`. */
export function readQuery<S extends QuerySchema<Record<string, unknown>>>(params: URLSearchParams, schema: S): Partial<QueryOf<S>> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(schema)) {
    const raw = params.get(key);
    if (raw === null || raw === "") continue;
    const v = schema[key](raw);
    if (v !== undefined) out[key] = v;
  }
  return out as Partial<QueryOf<S>>;
}

/** `pathname` with `qs` updated by `next`: keys set to "" / undefined / null are removed. */
export function mergeQuery(pathname: string, qs: string, next: Record<string, unknown>): string {
  const p = new URLSearchParams(qs);
  for (const [k, v] of Object.entries(next)) {
    if (v === undefined || v === null || v === "") p.delete(k);
    else p.set(k, String(v));
  }
  p.sort();
  const s = p.toString();
  return s ? `${pathname}?${s}` : pathname;
}

/** Readers for common values. */
export const q = {
  /** Any non-empty text up to `max` characters. */
  text: (max = 200) => (raw: string) => (raw.length <= max ? raw : undefined),
  /** One of `values`. */
  oneOf: <V extends string>(values: readonly V[]) => (raw: string) => ((values as readonly string[]).includes(raw) ? (raw as V) : undefined),
  /** A calendar date, YYYY-MM-DD, that exists. */
  day: () => (raw: string) => {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(raw)) return undefined;
    const d = new Date(`${raw}T00:00:00Z`);
    return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === raw ? raw : undefined;
  },
};

/** Identity of a set of query values: unset, empty and absent are the same. */
function valuesKey(values: Record<string, unknown>): string {
  return JSON.stringify(
    Object.keys(values)
      .filter((k) => values[k] !== undefined && values[k] !== null && values[k] !== "")
      .sort()
      .map((k) => [k, String(values[k])]),
  );
}

/**
 * A filter form's choices before they are applied. They follow the URL when it changes by navigation (Back,
 * Forward, a link), and are left alone when it changes because the form itself was just applied: a choice made
 * while that navigation is still landing is kept, not reset to the values being replaced. Call `applied` with
 * what the form pushes, right before pushing it.
 */
export function useFilterDraft<D extends Record<string, unknown>>(fromUrl: D): [D, (next: Partial<D>) => void, (values: D) => void] {
  const urlKey = valuesKey(fromUrl);
  const [draft, setDraft] = useState<D>(fromUrl);
  const seen = useRef(urlKey);
  const expected = useRef<string | null>(null);
  useEffect(() => {
    if (urlKey === seen.current) return;
    seen.current = urlKey;
    if (urlKey !== expected.current) setDraft(fromUrl);
    expected.current = null;
  }, [urlKey, fromUrl]);
  const update = useCallback((next: Partial<D>) => setDraft((d) => ({ ...d, ...next })), []);
  const applied = useCallback((values: D) => {
    expected.current = valuesKey(values);
  }, []);
  return [draft, update, applied];
}
