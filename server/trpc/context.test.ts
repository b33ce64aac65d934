import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { makeRoleFixture, makeTeam, makeUser, outcomeCode } from "../test/fixtures";
import { resolveCurrentTeam } from "../teams/current";
import { contextFor } from "./context";
import { createCaller, type SessionUser } from ".";

await useTestDatabase();

/** A tRPC request from a browser whose tuna_team cookie names `teamId`. */
function requestWithTeamCookie(teamId: string, extra: Record<string, string> = {}) {
  return new Request("http://localhost/api/trpc/team.get", { headers: { cookie: `theme=dark; tuna_team=${encodeURIComponent(teamId)}`, ...extra } });
}

async function currentTeamOfRequest(req: Request, user: SessionUser) {
  const caller = createCaller(await contextFor(req, user));
  return (await caller.team.get()).id;
}

describe("current team of a request", () => {
  test("a cookie left by another user on this browser falls back to the signed-in user's first team", async () => {
    const f = await makeRoleFixture();
    // The outsider's only team is otherTeam; the cookie still names the team the previous user picked.
    assert.equal(await currentTeamOfRequest(requestWithTeamCookie(f.team.id), f.outsider), f.otherTeam.id);
    const resolved = await resolveCurrentTeam(f.outsider.id, f.team.id);
    assert.equal(resolved.current?.id, f.otherTeam.id);
    assert.deepEqual(resolved.teams.map((t) => t.id), [f.otherTeam.id]);
  });

  test("after leaving the selected team, the same cookie opens the user's remaining team", async () => {
    const f = await makeRoleFixture();
    const own = await makeTeam([{ user: f.viewer, role: "admin" }], "Viewer-own");
    const req = requestWithTeamCookie(f.team.id);
    assert.equal(await currentTeamOfRequest(req, f.viewer), f.team.id, "member of the cookie's team: it is selected");
    await createCaller(await contextFor(req, f.viewer)).team.leave();
    assert.equal(await currentTeamOfRequest(req, f.viewer), own.id);
  });

  test("after being removed from the selected team, the cookie no longer locks the user out", async () => {
    const f = await makeRoleFixture();
    const own = await makeTeam([{ user: f.developer, role: "admin" }], "Dev-own");
    await createCaller(await contextFor(requestWithTeamCookie(f.team.id), f.admin)).team.removeMember({ userId: f.developer.id });
    assert.equal(await currentTeamOfRequest(requestWithTeamCookie(f.team.id), f.developer), own.id);
  });

  test("a cookie naming one of the user's later teams selects it; no cookie selects the first", async () => {
    const u = await makeUser("multi");
    const first = await makeTeam([{ user: u, role: "viewer" }], "First");
    const second = await makeTeam([{ user: u, role: "viewer" }], "Second");
    assert.equal(await currentTeamOfRequest(requestWithTeamCookie(second.id), u), second.id);
    assert.equal(await currentTeamOfRequest(new Request("http://localhost/api/trpc/team.get"), u), first.id);
  });

  test("an explicit x-tuna-team header for a stranger's team is NOT_FOUND, not silently another team", async () => {
    const f = await makeRoleFixture();
    const req = requestWithTeamCookie(f.otherTeam.id, { "x-tuna-team": f.team.id });
    assert.equal(await outcomeCode(createCaller(await contextFor(req, f.outsider)).team.get()), "NOT_FOUND");
  });

  test("signed out: no team, whatever the cookie says", async () => {
    const f = await makeRoleFixture();
    assert.equal((await contextFor(requestWithTeamCookie(f.team.id), null)).teamId, null);
  });
});
