"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useState, type ReactNode } from "react";
import superjson from "superjson";
import type { AppRouter } from "@/server/trpc";
import { plainFieldErrors } from "./field-messages";

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

type ZodFieldErrors = { data?: { zodError?: { fieldErrors?: Record<string, string[] | undefined> } | null } };

/** A readable message for any tRPC error, with field errors (in plain words) when zod rejected the input. */
export function errorMessage(e: unknown): string {
  const fields = fieldErrors(e);
  if (Object.keys(fields).length) {
    return Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ");
  }
  return (e as { message?: string })?.message ?? "Something went wrong";
}

/** The first error of each field zod rejected, as a sentence to show next to the field. */
export function fieldErrors(e: unknown): Record<string, string | undefined> {
  return plainFieldErrors((e as ZodFieldErrors)?.data?.zodError?.fieldErrors ?? {});
}
