import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTestDatabase } from "../test/db";
import { makeTeam, makeUser } from "../test/fixtures";
import { db } from "../db";
import { priceMs } from "./cost";
import { costForDeployments, loadDeploymentsForCost } from "./pricing";
import { makeDeployment } from "./testing";

await useTestDatabase();

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 12, 9, 0, 0);
const at = (min: number) => new Date(T0 + min * MIN);

describe("billed live time of components", () => {
  test("warm workers and the router are billed for every life of their component, up to when it ended, not its last write", async () => {
    const user = await makeUser("lives");
    const team = await makeTeam([{ user, role: "admin" }], "Lives");
    const dep = await makeDeployment(team.id, user.id, {
      mode: "serverless",
      createdAt: at(0),
      spec: { serverlessScaling: { minWorkers: 2, maxWorkers: 2, concurrency: 32, idleTimeoutS: 60, coldStartTimeoutS: 600 } },
    });
    // Serverless: lived 0–10 min, lost, relaunched at 30 min, seen gone at 50 min, destroyed hours later.
    const svl = await db.deploymentComponent.create({
      data: {
        deploymentId: dep.id, kind: "serverless", provider: "local", status: "destroyed", startedAt: at(30), endedAt: at(50),
        earlierLives: { create: { startedAt: at(0), endedAt: at(10) } },
      },
    });
    // Router at $1/h: seen gone at 20 min, its row written again hours later.
    const router = await db.deploymentComponent.create({
      data: { deploymentId: dep.id, kind: "router", provider: "local", status: "gone", plan: { usdPerHour: 1 }, startedAt: at(0), endedAt: at(20) },
    });
    await db.$executeRaw`UPDATE "DeploymentComponent" SET "updatedAt" = ${at(300)} WHERE id IN (${svl.id}, ${router.id})`;
    await db.deployment.update({ where: { id: dep.id }, data: { status: "destroyed", destroyedAt: at(300) } });
    const costOver = async (from: number, to: number) =>
      (await costForDeployments(await loadDeploymentsForCost({ id: dep.id }), at(from), at(to), { now: at(60) }))[0]!.cost;

    const hour = await costOver(0, 60);
    assert.equal(hour.usage.serverlessWarmWorkerMs, 2 * (10 + 20) * MIN);
    assert.equal(hour.actual.router, priceMs(20 * MIN, 1, 1_000_000));

    // A range cuts each life at its bounds.
    const slice = await costOver(5, 40);
    assert.equal(slice.usage.serverlessWarmWorkerMs, 2 * (5 + 10) * MIN);
    assert.equal(slice.actual.router, priceMs(15 * MIN, 1, 1_000_000));

    // A life that never ended lasts until the deployment was destroyed.
    await db.deploymentComponent.update({ where: { id: svl.id }, data: { endedAt: null } });
    await db.deployment.update({ where: { id: dep.id }, data: { destroyedAt: at(45) } });
    assert.equal((await costOver(0, 60)).usage.serverlessWarmWorkerMs, 2 * (10 + 15) * MIN);
  });
});
