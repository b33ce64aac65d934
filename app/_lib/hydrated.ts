"use client";

import { useEffect, useState } from "react";

/**
 * False until React has hydrated this component. A form whose submit runs in JavaScript disables its button
 * until then: a click that lands earlier (slow network, busy server) would submit the form natively as a GET
 * to the same page, silently dropping what was typed.
 */
export function useHydrated(): boolean {
  const [hydrated, setHydrated] = useState(false);
  useEffect(() => setHydrated(true), []);
  return hydrated;
}
