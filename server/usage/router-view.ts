/**
 * What the routers see of a deployment's backends right now, from their `backend_state` events
 * (`UsageBackendEvent`). The control plane's component status follows the provider and is refreshed by the
 * reconcile every few minutes; a router notices a dead spot backend within seconds (passive ejection, health
 * checks) and fails over. This is the routers' word, for the dashboard to show next to the provider's.
 *
 * Each router's state of a backend is its latest event for it (routers send one event per change, so that
 * event's `at` is since when). Only live routers count: one that stopped reporting is gone by the rule cost
 * uses (`routerViewEnds` in pricing.ts: no report and no event for `ROUTER_SILENCE_GRACE_MS`), and its last
 * word is dropped, not shown as current. Routers may disagree (each has its own traffic, idle timer and
 * health checks): a backend's view keeps how many live routers report each state, worst first.
 *
 * Each state carries the router's reason for it ("ejected: 3 consecutive failures (connect)", "idle: no requests
 * for 60 s"), as the router sent it: the reason of the event that put into that state the router that has been in
 * it longest (the one `since` is about). The app turns it into words (app/(app)/deployments/router-view.ts).
 */
import { type BackendState, backendStateSchema } from "@tuna/router-service/contract";
import { db } from "../db";
import { notFound } from "../lib/errors";
import { entry } from "./cost";
import { latestBackendEvents } from "./latest-events";
import { ROUTER_VIEW_MARGIN_MS, routerViewEnds } from "./pricing";

/**
 * Worst first: a backend the router took out for failing (`ejected`), one being reclaimed (`draining`), one
 * the router is not bringing up (`cold`: idle, no replicas, warm-up timed out), one coming up (`warming`),
 * one serving (`ready`). A disagreement is summed up by the worst state any live router reports.
 */
export const ROUTER_STATES_WORST_FIRST: readonly BackendState[] = ["ejected", "draining", "cold", "warming", "ready"];

export interface RouterStateCount {
  state: BackendState;
  /** Live routers whose latest word on the backend is this state. */
  routers: number;
  /** When the first of them entered it (router clock). */
  since: Date;
  /** Why that first router entered it, as the router put it; null when its event carried no reason. */
  reason: string | null;
}

export interface BackendRouterView {
  backendId: string;
  /** From the event (resolved at ingest) or the deployment's component; null when neither says. */
  kind: "serverless" | "spot" | null;
  /** The worst state any live router reports (`states[0]`). */
  state: BackendState;
  since: Date;
  /** The reason of the worst state (`states[0].reason`). */
  reason: string | null;
  /** Live routers that report this backend. */
  routers: number;
  /** Every state reported, worst first, with how many routers report it. */
  states: RouterStateCount[];
}

export interface DeploymentRouterView {
  /** Live routers that have reported a state of one of the deployment's backends. */
  liveRouters: number;
  /** Routers that did, then stopped reporting (gone): their word is not counted anywhere here. */
  goneRouters: number;
  /** The last sign of life of the most recent gone router, when there is one. */
  lastGoneAt: Date | null;
  /** Backends reported by live routers: spot first, then serverless, then by id. */
  backends: BackendRouterView[];
}

interface LatestRow {
  deploymentId: string;
  routerId: string;
  backendId: string;
  kind: string | null;
  state: string;
  at: Date;
  reason: string | null;
}

/**
 * The routers' view of each of `deploymentIds` that belongs to `teamId` (others are absent from the map, as if
 * they did not exist). Four queries whatever the number of deployments: the team's deployments, the latest
 * event per deployment × router × backend (`latestBackendEvents`), their components (to label backends whose
 * events carried no kind), and the routers' last signs of life.
 */
export async function routerViews(teamId: string, deploymentIds: readonly string[], opts: { now?: Date } = {}): Promise<Map<string, DeploymentRouterView>> {
  const out = new Map<string, DeploymentRouterView>();
  const wanted = [...new Set(deploymentIds)];
  if (wanted.length === 0) return out;
  const now = opts.now ?? new Date();
  const mine = await db.deployment.findMany({ where: { teamId, id: { in: wanted } }, select: { id: true } });
  const ids = mine.map((d) => d.id);
  if (ids.length === 0) return out;
  // The component join only labels backends whose events carried no kind.
  const latest = await latestBackendEvents(ids);
  const components = await db.deploymentComponent.findMany({ where: { deploymentId: { in: ids }, kind: { in: ["serverless", "spot"] } }, select: { id: true, deploymentId: true, kind: true } });
  const kindOf = new Map(components.map((c) => [`${c.deploymentId}/${c.id}`, c.kind]));
  const rows: LatestRow[] = latest.map((l) => ({ ...l, kind: l.backendKind ?? kindOf.get(`${l.deploymentId}/${l.backendId}`) ?? null }));
  const gone = await routerViewEnds(rows.map((r) => r.routerId), now);

  const byDep = new Map<string, LatestRow[]>();
  for (const r of rows) entry(byDep, r.deploymentId, () => []).push(r);
  for (const id of ids) out.set(id, summarise(byDep.get(id) ?? [], gone));
  return out;
}

/** One deployment's view; NOT_FOUND when it is not the team's. */
export async function deploymentRouterView(teamId: string, deploymentId: string, opts: { now?: Date } = {}): Promise<DeploymentRouterView> {
  const view = (await routerViews(teamId, [deploymentId], opts)).get(deploymentId);
  if (!view) throw notFound("Deployment");
  return view;
}

function summarise(rows: LatestRow[], gone: Map<string, number>): DeploymentRouterView {
  const live = new Set<string>();
  const goneIds = new Set<string>();
  const byBackend = new Map<string, { kind: BackendRouterView["kind"]; states: Map<BackendState, RouterStateCount> }>();
  for (const r of rows) {
    if (gone.has(r.routerId)) {
      goneIds.add(r.routerId);
      continue;
    }
    const state = backendStateSchema.safeParse(r.state);
    if (!state.success) continue;
    live.add(r.routerId);
    const kind = r.kind === "spot" || r.kind === "serverless" ? r.kind : r.backendId === "spot" || r.backendId === "serverless" ? r.backendId : null;
    // A serverless backend has no lifecycle in the router: it is ready from the start, silently, and `cold` is only
    // the closing word when it leaves the router's config or the router stops. A router restarted under the same
    // id does not announce that `ready` again, so its last `cold` says nothing about now: no word, not "cold".
    if (kind === "serverless" && state.data === "cold") continue;
    const b = entry(byBackend, r.backendId, () => ({ kind, states: new Map() }));
    b.kind ??= kind;
    const c = b.states.get(state.data);
    if (!c) b.states.set(state.data, { state: state.data, routers: 1, since: r.at, reason: r.reason });
    else {
      c.routers++;
      if (r.at < c.since) {
        c.since = r.at;
        c.reason = r.reason;
      }
    }
  }
  const backends: BackendRouterView[] = [...byBackend].map(([backendId, b]) => {
    const states = ROUTER_STATES_WORST_FIRST.flatMap((s) => b.states.get(s) ?? []);
    return {
      backendId,
      kind: b.kind,
      state: states[0].state,
      since: states[0].since,
      reason: states[0].reason,
      routers: states.reduce((n, s) => n + s.routers, 0),
      states,
    };
  });
  const rank = (b: BackendRouterView) => (b.kind === "spot" ? 0 : b.kind === "serverless" ? 1 : 2);
  backends.sort((x, y) => rank(x) - rank(y) || x.backendId.localeCompare(y.backendId));
  // A gone router's view ends one heartbeat after its last sign of life (routerViewEnds): that sign is the end minus it.
  const goneEnds = [...goneIds].map((id) => gone.get(id) as number);
  return {
    liveRouters: live.size,
    goneRouters: goneIds.size,
    lastGoneAt: goneEnds.length ? new Date(Math.max(...goneEnds) - ROUTER_VIEW_MARGIN_MS) : null,
    backends,
  };
}
