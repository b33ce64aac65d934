import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { listRouterMarker, routerReasonWords, type RouterViewData, serverlessRouterLine, spotRouterLine } from "./router-view";

const utc = (at: Date | string) => new Date(at).toISOString().slice(11, 16);
const at = (hhmm: string) => new Date(`2026-11-03T${hhmm}:00Z`);
type Backend = RouterViewData["backends"][number];
const spot = (states: Backend["states"]): Backend => ({
  backendId: "cmp_spot", kind: "spot", state: states[0].state, since: states[0].since, reason: states[0].reason, routers: states.reduce((n, s) => n + s.routers, 0), states,
});
const view = (backends: Backend[], liveRouters = 1): RouterViewData => ({ liveRouters, goneRouters: 0, lastGoneAt: null, backends });
const hybrid = { spotOnly: false, providerReady: true, time: utc };

describe("deployment page: the routers' view in words", () => {
  test("spot ejected while the provider still says ready: red, says where requests go, explains the lag", () => {
    const line = spotRouterLine(view([spot([{ state: "ejected", routers: 1, since: at("14:03") }])]), hybrid);
    assert.equal(line.text, "Router: spot ejected since 14:03 — requests go to serverless");
    assert.equal(line.tone, "red");
    assert.equal(line.contradictsProvider, true);
  });

  test("warming and ready refine the provider's status", () => {
    const warming = spotRouterLine(view([spot([{ state: "warming", routers: 1, since: at("09:10") }])]), { ...hybrid, providerReady: false });
    assert.equal(warming.text, "Router: spot warming since 09:10 — requests go to serverless until it is ready");
    assert.equal(warming.tone, "amber");
    // Idle spot is cold in a router: not a failure, and the provider's "ready" is not contradicted.
    const cold = spotRouterLine(view([spot([{ state: "cold", routers: 1, since: at("09:30") }])]), hybrid);
    assert.equal(cold.text, "Router: spot cold since 09:30 — requests go to serverless; the next one starts warming it up");
    assert.equal(cold.tone, "gray");
    assert.equal(cold.contradictsProvider, false);
    const ready = spotRouterLine(view([spot([{ state: "ready", routers: 2, since: at("09:12") }])], 2), hybrid);
    assert.equal(ready.text, "Router: spot ready since 09:12 on all 2 routers — requests go to spot");
    assert.equal(ready.tone, "green");
    assert.equal(ready.contradictsProvider, false);
  });

  test("spot-only: there is no serverless to go to", () => {
    const only = { ...hybrid, spotOnly: true };
    assert.equal(spotRouterLine(view([spot([{ state: "ejected", routers: 1, since: at("14:03") }])]), only).text, "Router: spot ejected since 14:03 — requests may fail until it recovers");
    assert.equal(
      spotRouterLine(view([spot([{ state: "draining", routers: 1, since: at("14:03") }])]), only).text,
      "Router: spot draining (being reclaimed) since 14:03 — requests are refused until it is ready",
    );
  });

  test("routers that disagree: the worst state, how many say it and what the others say", () => {
    const line = spotRouterLine(
      view([spot([{ state: "ejected", routers: 1, since: at("14:03") }, { state: "ready", routers: 2, since: at("10:00") }])], 3),
      hybrid,
    );
    assert.equal(line.text, "Router: spot ejected since 14:03 on 1 of 3 routers (ready on 2) — requests through that router go to serverless");
    assert.equal(line.tone, "red");
  });

  test("no router has reported, or none reports any more", () => {
    assert.equal(spotRouterLine(view([], 0), hybrid).text, "Router: no router has reported yet");
    const gone = { liveRouters: 0, goneRouters: 2, lastGoneAt: at("13:58"), backends: [] };
    assert.equal(spotRouterLine(gone, hybrid).text, "Router: no router is reporting now (the last one stopped at 13:58)");
    const svlOnly = view([{ backendId: "cmp_svl", kind: "serverless", state: "ejected", since: at("14:00"), routers: 1, states: [{ state: "ejected", routers: 1, since: at("14:00") }] }]);
    assert.equal(spotRouterLine(svlOnly, hybrid).text, "Router: no router has reported on spot yet");
    assert.equal(serverlessRouterLine(svlOnly, { time: utc })?.text, "Router: serverless ejected since 14:00 — its requests failed; the router retries it with health checks");
  });

  test("the list marks only what the status badge cannot show: spot taken out by the routers", () => {
    assert.equal(listRouterMarker(view([spot([{ state: "ejected", routers: 1, since: at("14:03") }])]), false)?.text, "Router: spot ejected — serving from serverless");
    assert.equal(listRouterMarker(view([spot([{ state: "ready", routers: 1, since: at("14:03") }])]), false), null);
    assert.equal(listRouterMarker(null, false), null);
  });

  test("the router's reason for the state, in plain words next to it", () => {
    const ejected = spotRouterLine(view([spot([{ state: "ejected", routers: 1, since: at("14:02"), reason: "ejected: 3 consecutive failures (connect)" }])]), hybrid);
    assert.equal(ejected.text, "Router: spot ejected since 14:02 (3 failed requests in a row, last: could not connect) — requests go to serverless");
    const idle = spotRouterLine(view([spot([{ state: "cold", routers: 1, since: at("09:30"), reason: "idle: no requests for 60 s" }])]), hybrid);
    assert.equal(idle.text, "Router: spot cold since 09:30 (idle, no requests for 60 s) — requests go to serverless; the next one starts warming it up");
    const split = spotRouterLine(
      view([spot([{ state: "ejected", routers: 1, since: at("14:03"), reason: "ejected: 3 consecutive failures (status_503)" }, { state: "ready", routers: 2, since: at("10:00"), reason: "health checks passed" }])], 3),
      hybrid,
    );
    assert.equal(split.text, "Router: spot ejected since 14:03 (3 failed requests in a row, last: HTTP 503) on 1 of 3 routers (ready on 2) — requests through that router go to serverless");
    const svl = view([{ backendId: "cmp_svl", kind: "serverless", state: "ejected", since: at("14:00"), reason: "ejected: 5 consecutive failures (timeout_before_body)", routers: 1, states: [{ state: "ejected", routers: 1, since: at("14:00"), reason: "ejected: 5 consecutive failures (timeout_before_body)" }] }]);
    assert.equal(serverlessRouterLine(svl, { time: utc })?.text, "Router: serverless ejected since 14:00 (5 failed requests in a row, last: no answer in time) — its requests failed; the router retries it with health checks");
    // No reason (an older router, or history from before reasons were kept): the line as it always was.
    assert.equal(spotRouterLine(view([spot([{ state: "ejected", routers: 1, since: at("14:03"), reason: null }])]), hybrid).text, "Router: spot ejected since 14:03 — requests go to serverless");
  });

  test("one mapping from the router's terse reasons to words; older routers' reasons read too, unknown ones as sent", () => {
    const words = (r: string) => routerReasonWords(r);
    assert.equal(words("ejected: 3 consecutive failures (reset_before_body)"), "3 failed requests in a row, last: connection dropped before the answer");
    assert.equal(words("ejected: 4 consecutive failures (bad_response)"), "4 failed requests in a row, last: malformed response");
    assert.equal(words("ejected: 3 consecutive failures (stream-idle)"), "3 failed requests in a row, last: stream stalled");
    assert.equal(words("ejected: status_502"), "requests failed, last: HTTP 502");
    assert.equal(words("warmup timeout (1200 s)"), "warm-up timed out after 20 min");
    assert.equal(words("warmup timeout"), "warm-up timed out");
    assert.equal(words("idle"), "idle");
    assert.equal(words("idle: no requests for 0.3 s"), "idle, no requests for 0.3 s");
    assert.equal(words("replicas=0"), "scaled to zero replicas");
    assert.equal(words("health checks passed"), "health checks passed again");
    assert.equal(words("drain notice reported"), "preemption notice");
    assert.equal(words("router stopped"), "router stopped");
    assert.equal(words("ejected: 3 consecutive failures (something new)"), "3 failed requests in a row, last: something new");
    assert.equal(words("a reason from a newer router"), "a reason from a newer router");
  });
});
