import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, makeTeam, makeUser, outcomeCode } from "../test/fixtures";
import { db } from "../db";
import { resolveCurrentTeam, teamOfRequest } from "../teams/current";
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

  test("a tab's x-tuna-team wins over a cookie another tab changed: the key lands in the team the tab shows", async () => {
    // Bob is a developer in Ada's team (tab A shows it) and admin of his own team (tab B switched the cookie to it).
    const f = await makeRoleFixture("Ada");
    const own = await makeTeam([{ user: f.developer, role: "admin" }], "Bob-own");
    const tabA = requestWithTeamCookie(own.id, { "x-tuna-team": f.team.id });
    const caller = createCaller(await contextFor(tabA, f.developer));
    const created = await caller.apiKeys.create({ label: "created-in-tab-A" });
    const row = await db.apiKey.findUniqueOrThrow({ where: { id: created.apiKey.id }, select: { teamId: true } });
    assert.equal(row.teamId, f.team.id, "created in the tab's team, not the cookie's");
    assert.deepEqual((await caller.apiKeys.list()).map((k) => k.label), ["created-in-tab-A"]);
    assert.equal((await caller.team.get()).role, "developer", "the tab's team with the role held there");
    // Without the header (a page that does not name its team), the cookie still decides, as before.
    assert.equal(await currentTeamOfRequest(requestWithTeamCookie(own.id), f.developer), own.id);
  });

  test("a tab whose team the user was removed from gets NOT_FOUND for reads and writes, never the cookie's team", async () => {
    const f = await makeRoleFixture("Ada");
    const own = await makeTeam([{ user: f.developer, role: "admin" }], "Bob-own");
    await callerFor(f.developer, own.id).apiKeys.create({ label: "bob-own-key" });
    await callerFor(f.admin, f.team.id).team.removeMember({ userId: f.developer.id });
    // The cookie names Bob's own team (a fallback the server would otherwise pick), the tab still names Ada's.
    const tab = requestWithTeamCookie(own.id, { "x-tuna-team": f.team.id });
    const caller = createCaller(await contextFor(tab, f.developer));
    assert.equal(await outcomeCode(caller.apiKeys.list()), "NOT_FOUND");
    assert.equal(await outcomeCode(caller.team.get()), "NOT_FOUND");
    assert.equal(await outcomeCode(caller.apiKeys.create({ label: "after-removal" })), "NOT_FOUND");
    assert.equal(await outcomeCode(caller.deployments.destroyAll({ confirm: "destroy all" })), "NOT_FOUND");
    assert.equal(await db.apiKey.count({ where: { label: "after-removal" } }), 0, "nothing was created anywhere");
    // What the user still belongs to is theirs to list, so the page can offer it.
    assert.deepEqual((await caller.me.teams()).map((t) => t.id), [own.id]);
  });

  test("teamOfRequest: a named team is kept as named (trimmed), an empty one falls back to the cookie", async () => {
    const u = await makeUser("named");
    const first = await makeTeam([{ user: u, role: "viewer" }], "First");
    const second = await makeTeam([{ user: u, role: "viewer" }], "Second");
    assert.equal(await teamOfRequest(u.id, ` ${second.id} `, first.id), second.id);
    assert.equal(await teamOfRequest(u.id, "team_of_someone_else", first.id), "team_of_someone_else", "not swapped for a team the user has");
    assert.equal(await teamOfRequest(u.id, "  ", second.id), second.id);
    assert.equal(await teamOfRequest(u.id, null, null), first.id);
  });

  test("signed out: no team, whatever the cookie says", async () => {
    const f = await makeRoleFixture();
    assert.equal((await contextFor(requestWithTeamCookie(f.team.id), null)).teamId, null);
  });
});
