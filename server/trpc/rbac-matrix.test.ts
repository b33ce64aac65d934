import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture } from "../test/fixtures";
import { PERMISSIONS, type Permission } from "../rbac";
import { appRouter } from "./root";
import type { Meta } from "./init";

await useTestDatabase();

/** Procedures reachable without a team. Anything else must be a team procedure with a permission. */
const NON_TEAM = new Map<string, "public" | "authed">([
  ["auth.signUp", "public"],
  ["auth.resetPassword", "public"],
  ["me.get", "authed"],
  ["me.teams", "authed"],
  ["me.createTeam", "authed"],
  ["me.account", "authed"],
  ["me.changePassword", "authed"],
  ["me.signOutOtherSessions", "authed"],
  ["me.signInMethods", "authed"],
  ["me.unlinkAccount", "authed"],
  ["invite.preview", "authed"],
  ["invite.accept", "authed"],
]);

type AnyProc = { _def: { meta?: Meta; type: "query" | "mutation" | "subscription" } };
const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, AnyProc>);

function callPath(caller: unknown, path: string, input: unknown): Promise<unknown> {
  let fn: unknown = caller;
  for (const part of path.split(".")) fn = (fn as Record<string, unknown>)[part];
  return (fn as (i: unknown) => Promise<unknown>)(input);
}

/** Classifies the outcome of a call: did authorisation let it through? */
async function outcome(p: Promise<unknown>): Promise<"allowed" | "forbidden" | "not_found_team" | "unauthorized"> {
  try {
    await p;
    return "allowed";
  } catch (e) {
    if (!(e instanceof TRPCError)) throw e;
    if (e.code === "FORBIDDEN" && /does not have the permission/.test(e.message)) return "forbidden";
    if (e.code === "NOT_FOUND" && e.message === "Team not found.") return "not_found_team";
    if (e.code === "UNAUTHORIZED") return "unauthorized";
    // Past the authorisation middleware: input validation or a domain rule answered.
    return "allowed";
  }
}

describe("RBAC matrix", () => {
  test("every procedure declares how it is reached", () => {
    assert.ok(procedures.length >= 15, `expected the full router, found ${procedures.length} procedures`);
    for (const [path, proc] of procedures) {
      const meta = proc._def.meta ?? {};
      if (NON_TEAM.has(path)) {
        assert.equal(meta.access, NON_TEAM.get(path), `${path} should be ${NON_TEAM.get(path)}`);
        continue;
      }
      assert.equal(meta.access, "team", `${path} is not a team procedure: declare teamProcedure(permission) or list it in NON_TEAM`);
      assert.ok(meta.permission && meta.permission in PERMISSIONS, `${path} has no known permission (${meta.permission})`);
    }
  });

  for (const [path, proc] of procedures) {
    const meta = proc._def.meta ?? {};
    if (meta.access !== "team") continue;
    const permission = meta.permission as Permission;
    test(`${path} needs ${permission}`, async () => {
      const f = await makeRoleFixture();
      // `{}` fails input validation for procedures with required input: no side effects, yet it proves the
      // authorisation middleware (which runs before the input parser) let the caller through.
      const input = {};
      const allowed = PERMISSIONS[permission].roles as readonly string[];
      for (const role of ["viewer", "developer", "admin"] as const) {
        const got = await outcome(callPath(callerFor(f[role], f.team.id), path, input));
        assert.equal(got, allowed.includes(role) ? "allowed" : "forbidden", `${path} as ${role}`);
      }
      assert.equal(await outcome(callPath(callerFor(f.outsider, f.team.id), path, input)), "not_found_team", `${path} as non-member`);
      assert.equal(await outcome(callPath(callerFor(null, f.team.id), path, input)), "unauthorized", `${path} signed out`);
    });
  }
});
