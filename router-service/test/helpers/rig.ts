// One router with a serverless and a spot simulator behind one deployment, fed by a fake control plane: the rig
// of the failover and stream-idle tests. Usage is read from the reports the control plane receives.
import type { RoutingConfig } from "../../src/contract.js";
import { type RouterHandle, type SimulatorHandle, startRouter, startSimulator } from "../../src/index.js";
import type { SimulatorOptions } from "../../src/sim/simulator.js";
import { type FakeControlPlane, startControlPlane } from "./controlPlane.js";
import { deployment, request, snapshot, waitFor } from "./fixtures.js";

export interface BackendUsage {
  requests: number;
  errors: number;
  outputTokens: number;
  busyMs: number;
}

export interface Rig {
  svl: SimulatorHandle;
  spot: SimulatorHandle;
  cp: FakeControlPlane;
  router: RouterHandle;
  metrics(): Promise<string>;
  /** Usage entries reported so far, by backend id (summed over reports). */
  usage(): Map<string, BackendUsage>;
  /** The backend's consecutive failures (passive health), -1 when it is not configured. */
  failures(id: string): number;
  /** Every in-flight counter of the router is back to zero. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface RigOptions {
  /** Overrides of the deployment's routing (ejection is off by default: ejectAfterFailures 100). */
  routing?: Partial<RoutingConfig>;
  limits?: { rpm: number; tpm: number; maxConcurrent: number };
  /** Options of the spot simulator. */
  spot?: SimulatorOptions;
  /** Names the router's state directory. */
  name: string;
}

let rigSeq = 0;
export async function startRig(o: RigOptions): Promise<Rig> {
  const svl = await startSimulator({ model: "qwen-small" });
  const spot = await startSimulator({ model: "qwen-small", ...o.spot });
  const cp = await startControlPlane();
  const d = deployment({ svlUrl: svl.url, spotUrl: spot.url });
  d.routing = { ...d.routing, ejectAfterFailures: 100, ...o.routing };
  cp.setSnapshot(snapshot([d], {}, o.limits ?? { rpm: 100_000, tpm: 100_000_000, maxConcurrent: 1000 }));
  const router = await startRouter({
    controlPlaneUrl: cp.url, routerToken: cp.token, usageFlushMs: 40, logLevel: "silent",
    stateDir: `/tmp/tuna-rt-${o.name}-${process.pid}-${++rigSeq}`,
  });
  const dep = () => {
    const x = router.store.current?.deployments.get("dep_1");
    if (!x) throw new Error("no deployment");
    return x;
  };
  await waitFor(() => dep().backends.find((b) => b.id === "spot")?.state() === "ready");
  return {
    svl, spot, cp, router,
    metrics: async () => (await request(`${router.url}/metrics`)).body,
    usage() {
      const out = new Map<string, BackendUsage>();
      for (const r of cp.reports.values())
        for (const e of r.entries) {
          const u = out.get(e.backendId) ?? { requests: 0, errors: 0, outputTokens: 0, busyMs: 0 };
          u.requests += e.requests;
          u.errors += e.errors;
          u.outputTokens += e.outputTokens;
          u.busyMs += e.busyMs;
          out.set(e.backendId, u);
        }
      return out;
    },
    failures: (id) => dep().backends.find((b) => b.id === id)?.consecutiveFailures ?? -1,
    async idle() {
      await waitFor(() => router.inflight() === 0 && dep().inflight.n === 0 && dep().backends.every((b) => b.inflight === 0), 3000);
    },
    async close() {
      await router.close();
      await cp.close();
      await svl.close();
      await spot.close();
    },
  };
}
