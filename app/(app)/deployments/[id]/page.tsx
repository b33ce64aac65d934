import { DeploymentDetail } from "./DeploymentDetail";

export const dynamic = "force-dynamic";

/**
 * The router's public URL is run-time configuration (TUNA_PUBLIC_ROUTER_URL), so it is read here on the
 * server for every request and handed to the client component, not baked into the bundle.
 */
export default async function DeploymentPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const routerUrl = (process.env.TUNA_PUBLIC_ROUTER_URL ?? "http://localhost:8080").replace(/\/+$/, "");
  return <DeploymentDetail id={id} routerUrl={routerUrl} />;
}
