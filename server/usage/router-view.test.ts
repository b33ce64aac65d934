import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { ingestUsageReport } from "./ingest";
import { deploymentRouterView, routerViews } from "./router-view";
import { makeDeployment, makeReport } from "./testing";

await useTestDatabase();

// The deployment page showed the provider's spot status (reconciled every ~5 min) while the routers had already
// ejected the dead spot backend and moved traffic to serverless. The routers' view comes from their state events.
const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 3, 14, 0, 0);

type State = "cold" | "warming" | "ready" | "draining" | "ejected";
const ev = (deploymentId: string, backendId: string, state: State, at: number, reason?: string) => ({
  type: "backend_state" as const, deploymentId, backendId, state, at: new Date(at).toISOString(), ...(reason === undefined ? {} : { reason }),
});
/** A report the control plane received at `at` from `routerId` (its sign of life), carrying `events`. */
const report = (routerId: string, at: number, events: ReturnType<typeof ev>[] = []) =>
  ingestUsageReport(makeReport(new Date(at), [], events, routerId), { receivedAt: new Date(at) });
const router = (name: string) => `${name}-${randomUUID().slice(0, 8)}`;

async function hybridWithSpot(teamId: string, userId: string) {
  const dep = await makeDeployment(teamId, userId, { createdAt: new Date(T0 - 60 * MIN) });
  // Snapshot backend ids are component ids: the event carries no kind of its own, ingest resolves it.
  const spot = await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "spot", provider: "local-spot", status: "ready", replicasReady: 1 } });
  const svl = await db.deploymentComponent.create({ data: { deploymentId: dep.id, kind: "serverless", provider: "local", status: "ready" } });
  return { dep, spot, svl };
}

describe("the routers' view of a deployment's backends", () => {
  test("no router has reported: an empty view, not a guess", async () => {
    const f = await makeRoleFixture("RvEmpty");
    const { dep } = await hybridWithSpot(f.team.id, f.admin.id);
    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0) });
    assert.deepEqual(v, { liveRouters: 0, goneRouters: 0, lastGoneAt: null, backends: [] });
  });

  test("each router's latest state wins, since when it entered it", async () => {
    const f = await makeRoleFixture("RvLatest");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const a = router("rv-a");
    await report(a, T0, [ev(dep.id, spot.id, "warming", T0)]);
    // Two events at the same instant in one report: the later one in the report is the state.
    await report(a, T0 + MIN, [ev(dep.id, spot.id, "cold", T0 + MIN), ev(dep.id, spot.id, "ready", T0 + MIN)]);
    // The spot replica dies: three failed requests, the router ejects it and fails over to serverless.
    await report(a, T0 + 5 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 5 * MIN)]);
    await report(a, T0 + 6 * MIN); // heartbeat

    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 6 * MIN) });
    assert.equal(v.liveRouters, 1);
    assert.equal(v.goneRouters, 0);
    assert.deepEqual(v.backends, [
      { backendId: spot.id, kind: "spot", state: "ejected", since: new Date(T0 + 5 * MIN), reason: null, routers: 1, states: [{ state: "ejected", routers: 1, since: new Date(T0 + 5 * MIN), reason: null }] },
    ]);

    // Health checks pass again: ready, since the fail-back.
    await report(a, T0 + 7 * MIN, [ev(dep.id, spot.id, "ready", T0 + 7 * MIN)]);
    const back = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 7 * MIN) });
    assert.equal(back.backends[0].state, "ready");
    assert.deepEqual(back.backends[0].since, new Date(T0 + 7 * MIN));
  });

  test("the skip scan finds exactly what reading the whole history would, over many routers, backends and ties", async () => {
    const f = await makeRoleFixture("RvSkip");
    const deps = await Promise.all([0, 1, 2].map(() => hybridWithSpot(f.team.id, f.admin.id)));
    const routers = ["a", "b", "c", "d"].map(router);
    const states: State[] = ["cold", "warming", "ready", "draining", "ejected"];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n;
    };
    // 40 reports of up to 6 events each; timestamps on a coarse grid so many events share one instant.
    for (let i = 0; i < 40; i++) {
      const r = routers[rand(routers.length)];
      const events = Array.from({ length: 1 + rand(6) }, () => {
        const d = deps[rand(deps.length)];
        const backendId = rand(5) === 0 ? `extra-${rand(2)}` : [d.spot.id, d.svl.id][rand(2)];
        return ev(d.dep.id, backendId, states[rand(states.length)], T0 + rand(8) * MIN);
      });
      await report(r, T0 + 10 * MIN, events);
    }
    const ids = deps.map((d) => d.dep.id);
    const expected = await db.$queryRaw<Array<{ deploymentId: string; routerId: string; backendId: string; state: string; at: Date }>>`
      SELECT DISTINCT ON ("deploymentId", "routerId", "backendId") "deploymentId", "routerId", "backendId", state, at
      FROM "UsageBackendEvent" WHERE "deploymentId" = ANY(${ids}::text[])
      ORDER BY "deploymentId", "routerId", "backendId", at DESC, id DESC`;
    assert.ok(expected.length > 12, `enough router × backend pairs (${expected.length})`);
    const views = await routerViews(f.team.id, ids, { now: new Date(T0 + 10 * MIN) });
    // Rebuild, from each view, how many routers report each state of each backend, and compare with the brute force.
    const tally = (rows: Array<{ deploymentId: string; backendId: string; state: string; at: Date }>) => {
      const m = new Map<string, { routers: number; since: number }>();
      for (const r of rows) {
        const k = `${r.deploymentId}/${r.backendId}/${r.state}`;
        const c = m.get(k);
        if (!c) m.set(k, { routers: 1, since: r.at.getTime() });
        else {
          c.routers++;
          c.since = Math.min(c.since, r.at.getTime());
        }
      }
      return [...m].sort(([a], [b]) => a.localeCompare(b));
    };
    const svlIds = new Set(deps.map((d) => d.svl.id));
    const got = [...views].flatMap(([deploymentId, v]) =>
      v.backends.flatMap((b) => b.states.flatMap((st) => Array.from({ length: st.routers }, (_, i) => ({ deploymentId, backendId: b.backendId, state: st.state, at: i === 0 ? st.since : new Date(8.64e15) })))),
    );
    // A serverless backend's `cold` is no word (see the serverless test below): left out of both sides.
    const want = expected.filter((r) => !(svlIds.has(r.backendId) && r.state === "cold"));
    assert.deepEqual(tally(got), tally(want));
    assert.equal(views.get(ids[0])?.liveRouters !== undefined, true);
  });

  test("a router that stopped reporting does not count; within the grace it still does", async () => {
    const f = await makeRoleFixture("RvGone");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const old = router("rv-old");
    const live = router("rv-live");
    // The old router saw spot ready, then its host went away (last report at T0 + 1 min).
    await report(old, T0, [ev(dep.id, spot.id, "ready", T0)]);
    await report(old, T0 + MIN);

    // Two minutes of silence: inside the 3-minute grace, it is still taken at its word.
    const early = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 3 * MIN) });
    assert.equal(early.liveRouters, 1);
    assert.equal(early.backends[0].state, "ready");

    // Past the grace: gone. Its `ready` is not the current state, and nobody else reports.
    const alone = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 10 * MIN) });
    assert.deepEqual(alone, { liveRouters: 0, goneRouters: 1, lastGoneAt: new Date(T0 + MIN), backends: [] });

    // A live router sees spot ejected: that is the view, the gone router's `ready` does not dilute it.
    await report(live, T0 + 9 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 9 * MIN)]);
    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 10 * MIN) });
    assert.equal(v.liveRouters, 1);
    assert.equal(v.goneRouters, 1);
    assert.deepEqual(v.backends.map((b) => [b.state, b.routers, b.states.length]), [["ejected", 1, 1]]);
  });

  test("routers that disagree: the worst state leads, with how many routers say what", async () => {
    const f = await makeRoleFixture("RvSplit");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const [a, b, c] = [router("rv-a"), router("rv-b"), router("rv-c")];
    await report(a, T0, [ev(dep.id, spot.id, "ready", T0)]);
    await report(b, T0, [ev(dep.id, spot.id, "ready", T0)]);
    await report(c, T0, [ev(dep.id, spot.id, "ready", T0)]);
    // b's requests to spot failed at T0 + 2 min, c's at T0 + 3 min; a had no traffic there and still sees it ready.
    await report(b, T0 + 2 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 2 * MIN)]);
    await report(c, T0 + 3 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 3 * MIN)]);
    await report(a, T0 + 3 * MIN);

    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 4 * MIN) });
    assert.equal(v.liveRouters, 3);
    const [s] = v.backends;
    assert.equal(s.state, "ejected");
    assert.deepEqual(s.since, new Date(T0 + 2 * MIN), "since the first router ejected it");
    assert.equal(s.routers, 3);
    assert.deepEqual(s.states, [
      { state: "ejected", routers: 2, since: new Date(T0 + 2 * MIN), reason: null },
      { state: "ready", routers: 1, since: new Date(T0), reason: null },
    ]);
  });

  test("each state says why, as the router that has been in it longest put it; an older router's word has no reason", async () => {
    const f = await makeRoleFixture("RvWhy");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const [a, b, c, old] = [router("rv-a"), router("rv-b"), router("rv-c"), router("rv-old")];
    await report(a, T0, [ev(dep.id, spot.id, "warming", T0, "startup"), ev(dep.id, spot.id, "ready", T0, "readiness probe passed")]);
    await report(b, T0 + MIN, [ev(dep.id, spot.id, "ready", T0 + MIN, "readiness probe passed")]);
    // c ejected it later, for another failure: the view's `since` is b's, and so is the reason.
    await report(c, T0 + 3 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 3 * MIN, "ejected: 3 consecutive failures (status_503)")]);
    await report(b, T0 + 2 * MIN, [ev(dep.id, spot.id, "ejected", T0 + 2 * MIN, "ejected: 3 consecutive failures (connect)")]);
    await report(old, T0 + 3 * MIN, [ev(dep.id, spot.id, "ready", T0 - MIN)]);
    await report(a, T0 + 3 * MIN);

    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 4 * MIN) });
    const [s] = v.backends;
    assert.deepEqual([s.state, s.since, s.reason], ["ejected", new Date(T0 + 2 * MIN), "ejected: 3 consecutive failures (connect)"]);
    assert.deepEqual(s.states, [
      { state: "ejected", routers: 2, since: new Date(T0 + 2 * MIN), reason: "ejected: 3 consecutive failures (connect)" },
      // The old router has been ready longest, and it sent no reason.
      { state: "ready", routers: 2, since: new Date(T0 - MIN), reason: null },
    ]);

    // Later spot sits idle on every router and goes cold: the reason follows the state.
    for (const r of [a, b, c, old]) await report(r, T0 + 8 * MIN, [ev(dep.id, spot.id, "cold", T0 + 8 * MIN, "idle: no requests for 60 s")]);
    const cold = (await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 8 * MIN) })).backends[0];
    assert.deepEqual(cold.states, [{ state: "cold", routers: 4, since: new Date(T0 + 8 * MIN), reason: "idle: no requests for 60 s" }]);
  });

  test("serverless: a router's closing `cold` is no word on it, an ejection is; spot is listed first", async () => {
    const f = await makeRoleFixture("RvSvl");
    const { dep, spot, svl } = await hybridWithSpot(f.team.id, f.admin.id);
    const [a, b] = [router("rv-a"), router("rv-b")];
    // a stopped and came back under its id: serverless ended `cold` (it never re-announces its silent `ready`).
    await report(a, T0, [ev(dep.id, svl.id, "cold", T0), ev(dep.id, spot.id, "warming", T0)]);
    await report(b, T0 + MIN, [ev(dep.id, svl.id, "ejected", T0 + MIN)]);
    const v = await deploymentRouterView(f.team.id, dep.id, { now: new Date(T0 + 2 * MIN) });
    assert.equal(v.liveRouters, 2);
    assert.deepEqual(v.backends.map((x) => [x.kind, x.state, x.routers]), [["spot", "warming", 1], ["serverless", "ejected", 1]]);
  });

  test("another team's deployment is never readable", async () => {
    const f = await makeRoleFixture("RvTeam");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const mineToo = await makeDeployment(f.otherTeam.id, f.outsider.id);
    await report(router("rv-x"), T0, [ev(dep.id, spot.id, "ejected", T0)]);
    const now = { now: new Date(T0 + MIN) };

    assert.equal(await outcomeCode(deploymentRouterView(f.otherTeam.id, dep.id, now)), "NOT_FOUND");
    const batch = await routerViews(f.otherTeam.id, [dep.id, mineToo.id], now);
    assert.deepEqual([...batch.keys()], [mineToo.id], "only the caller's own deployment");
    assert.equal((await routerViews(f.team.id, [dep.id], now)).get(dep.id)?.backends[0].state, "ejected");
  });
});

describe("deployments API: the routers' view rides along with get and list", () => {
  test("get and list carry it for the team, a stranger gets NOT_FOUND", async () => {
    const f = await makeRoleFixture("RvApi");
    const { dep, spot } = await hybridWithSpot(f.team.id, f.admin.id);
    const now = Date.now();
    await report(router("rv-api"), now - 10_000, [ev(dep.id, spot.id, "ejected", now - 10_000, "ejected: 3 consecutive failures (connect)")]);

    const got = await callerFor(f.viewer, f.team.id).deployments.get({ id: dep.id });
    assert.equal(got.routerView.liveRouters, 1);
    assert.deepEqual(got.routerView.backends.map((b) => [b.kind, b.state, b.reason]), [["spot", "ejected", "ejected: 3 consecutive failures (connect)"]]);
    const list = await callerFor(f.viewer, f.team.id).deployments.list({ withRouterView: true });
    assert.equal(list.items.find((d) => d.id === dep.id)?.routerView?.backends[0].state, "ejected");
    // Other lists of deployments (key scopes, settings) do not pay for it.
    assert.equal((await callerFor(f.viewer, f.team.id).deployments.list({})).items.find((d) => d.id === dep.id)?.routerView, null);

    assert.equal(await outcomeCode(callerFor(f.outsider, f.otherTeam.id).deployments.get({ id: dep.id })), "NOT_FOUND");
    const theirs = await callerFor(f.outsider, f.otherTeam.id).deployments.list({ withRouterView: true });
    assert.equal(theirs.items.some((d) => d.id === dep.id), false);
  });
});
