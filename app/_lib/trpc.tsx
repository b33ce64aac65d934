"use client";

import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useMemo, useState, type ReactNode } from "react";
import superjson from "superjson";
import type { AppRouter } from "@/server/trpc";
import { TEAM_HEADER } from "@/server/teams/cookie";
import { transportProblem, withTransportErrors } from "./error-text";
import { plainFieldErrors } from "./field-messages";

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

function trpcClientFor(teamId: string | null) {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: "/api/trpc",
        transformer: superjson,
        headers: teamId ? { [TEAM_HEADER]: teamId } : {},
        // No connection, or a proxy's HTML page instead of Tuna's JSON: a plain message, not the browser's.
        fetch: withTransportErrors(),
      }),
    ],
  });
}

export function Providers({ children }: { children: ReactNode }) {
  const [queryClient] = useState(
    () => new QueryClient({ defaultOptions: { queries: { staleTime: 5_000, retry: (n, e) => n < 2 && !isClientError(e) } } }),
  );
  // Outside a team's pages (sign-in, invitations) calls name no team: they are public or about the user.
  const [trpcClient] = useState(() => trpcClientFor(null));
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

/**
 * Every tRPC call made below names `teamId`, the team the page shows. The cookie only says which team this
 * browser opened last, and another tab can change it at any time: a tab that followed it would act on a team
 * it does not show. Queries share the page's cache, which is fine because a page's team never changes while
 * it is open (switching teams reloads the page).
 */
export function TeamTRPCProvider({ teamId, children }: { teamId: string | null; children: ReactNode }) {
  const queryClient = useQueryClient();
  const trpcClient = useMemo(() => trpcClientFor(teamId), [teamId]);
  return (
    <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
      {children}
    </TRPCProvider>
  );
}

function isClientError(e: unknown): boolean {
  const status = (e as { data?: { httpStatus?: number } })?.data?.httpStatus;
  return typeof status === "number" && status >= 400 && status < 500;
}

type ZodFieldErrors = { data?: { zodError?: { fieldErrors?: Record<string, string[] | undefined> } | null } };

/**
 * A readable message for any tRPC error: field errors (in plain words) when zod rejected the input, plain
 * words when Tuna could not be reached or a proxy answered instead of it, else the server's own message.
 */
export function errorMessage(e: unknown): string {
  const fields = fieldErrors(e);
  if (Object.keys(fields).length) {
    return Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ");
  }
  return transportProblem(e) ?? (e as { message?: string })?.message ?? "Something went wrong";
}

/** The first error of each field zod rejected, as a sentence to show next to the field. */
export function fieldErrors(e: unknown): Record<string, string | undefined> {
  return plainFieldErrors((e as ZodFieldErrors)?.data?.zodError?.fieldErrors ?? {});
}
