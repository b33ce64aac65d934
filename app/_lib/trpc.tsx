"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useState, type ReactNode } from "react";
import superjson from "superjson";
import type { AppRouter } from "@/server/trpc";

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

export function Providers({ children }: { children: ReactNode }) {
  const [queryClient] = useState(
    () => new QueryClient({ defaultOptions: { queries: { staleTime: 5_000, retry: (n, e) => n < 2 && !isClientError(e) } } }),
  );
  const [trpcClient] = useState(() =>
    createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: "/api/trpc", transformer: superjson })] }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

function isClientError(e: unknown): boolean {
  const status = (e as { data?: { httpStatus?: number } })?.data?.httpStatus;
  return typeof status === "number" && status >= 400 && status < 500;
}

/** A readable message for any tRPC error, with field errors when zod rejected the input. */
export function errorMessage(e: unknown): string {
  const err = e as { message?: string; data?: { zodError?: { fieldErrors?: Record<string, string[]> } } };
  const fields = err?.data?.zodError?.fieldErrors;
  if (fields && Object.keys(fields).length) {
    return Object.entries(fields).map(([k, v]) => `${k}: ${v?.join(", ")}`).join("; ");
  }
  return err?.message ?? "Something went wrong";
}

export function fieldErrors(e: unknown): Record<string, string | undefined> {
  const fields = (e as { data?: { zodError?: { fieldErrors?: Record<string, string[]> } } })?.data?.zodError?.fieldErrors ?? {};
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v?.[0]]));
}
