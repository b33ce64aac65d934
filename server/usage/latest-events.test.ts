import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { useTestDatabase } from "../test/db";
import { db } from "../db";
import { latestBackendEvents } from "./latest-events";

await useTestDatabase();

const T0 = Date.UTC(2026, 9, 1);
const MIN = 60_000;

describe("latestBackendEvents (skip scan)", () => {
  test("finds what DISTINCT ON over the whole history finds, with and without a cut-off, ties included", async () => {
    const tag = randomUUID().slice(0, 8);
    const deps = [0, 1, 2, 3].map((i) => `dep-${tag}-${i}`);
    const routers = ["r1", "r2", "r3"].map((r) => `${r}-${tag}`);
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n;
    };
    const states = ["cold", "warming", "ready", "draining", "ejected"];
    // 600 events; a coarse time grid so many share an instant (the id, i.e. insertion order, decides then).
    // Deployment 3 gets events only after the cut-off, router r3 of deployment 2 only before it.
    const data = Array.from({ length: 600 }, (_, i) => {
      const deploymentId = deps[rand(deps.length)];
      let t = rand(40) * MIN;
      if (deploymentId === deps[3]) t = 20 * MIN + rand(20) * MIN;
      let routerId = routers[rand(routers.length)];
      if (deploymentId === deps[2] && routerId === routers[2]) t = rand(20) * MIN;
      if (deploymentId === deps[2] && routerId === routers[1]) routerId = routers[0];
      return {
        batchId: `b-${tag}`, routerId, deploymentId, backendId: ["spot", "svl", "extra"][rand(3)], backendKind: rand(4) === 0 ? null : "spot",
        state: states[rand(states.length)], replicas: 1 + rand(3), at: new Date(T0 + t),
        // Each row its own reason (or none, as from an older router): the one returned must be the latest row's.
        reason: rand(3) === 0 ? null : `reason ${i}`,
      };
    });
    for (const row of data) await db.usageBackendEvent.create({ data: row });

    const brute = async (cut?: Date) =>
      db.$queryRawUnsafe<Array<Record<string, unknown>>>(
        `SELECT DISTINCT ON ("deploymentId", "routerId", "backendId") "deploymentId", "routerId", "backendId", "backendKind", state, at, replicas, reason
         FROM "UsageBackendEvent" WHERE "deploymentId" = ANY($1::text[]) ${cut ? `AND at < $2` : ""}
         ORDER BY "deploymentId", "routerId", "backendId", at DESC, id DESC`,
        deps, ...(cut ? [cut] : []),
      );
    const key = (r: Record<string, unknown>) => `${r.deploymentId}/${r.routerId}/${r.backendId}`;
    const norm = (rows: Array<Record<string, unknown>>) =>
      rows.map((r) => ({ ...r, at: (r.at as Date).toISOString() })).sort((a, b) => key(a).localeCompare(key(b)));

    const all = await latestBackendEvents(deps);
    assert.equal(all.length, (await brute()).length);
    assert.deepEqual(norm(all as unknown as Array<Record<string, unknown>>), norm(await brute()));
    assert.ok(all.length >= 25, `enough router × backend pairs (${all.length})`);

    const cut = new Date(T0 + 20 * MIN);
    const before = await latestBackendEvents(deps, cut);
    assert.deepEqual(norm(before as unknown as Array<Record<string, unknown>>), norm(await brute(cut)));
    assert.ok(before.every((r) => r.at < cut));
    assert.ok(!before.some((r) => r.deploymentId === deps[3]), "a deployment with no event before the cut-off has none");
    assert.ok(all.some((r) => r.deploymentId === deps[3]));

    assert.deepEqual(await latestBackendEvents([]), []);
    assert.deepEqual(await latestBackendEvents([`dep-${tag}-none`]), []);
  });
});
