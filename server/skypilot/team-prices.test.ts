import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { db } from "../db";
import { SYSTEM_ACTOR } from "../audit";
import { useTestDatabase } from "../test/db";
import { callerFor, makeTeam, makeUser } from "../test/fixtures";
import { createSecret } from "../vault";
import { FakeSkyPilotServer, type FakeOffer } from "./fake";
import { clearTeamSpotPrices, sampleTeamSpotPrices, teamSpotPrices } from "./team-prices";

// Outbound URLs to private addresses need the operator's allowlist: the fake SkyPilot API server listens on loopback.
process.env.TUNA_ALLOW_PRIVATE_URLS = "127.0.0.1";

await useTestDatabase();
const TOKEN = "sky_team_prices_token_0123456789";

describe("spot prices per team: live from the team's SkyPilot API server, else the static table", () => {
  const fake = new FakeSkyPilotServer({ token: TOKEN, observationsToFinish: 0 });
  const offers: FakeOffer[] = [
    ["AWS", "g6.xlarge", "L4", 1, 4, 24, 16, 0.8, 0.31, "us-east-1"],
    ["AWS", "p5.4xlarge", "H100", 1, 16, 80, 256, 6.88, 2.05, "us-east-1"],
    ["GCP", "g2-standard-4", "L4", 1, 4, 24, 16, 0.7, 0.22, "us-central1"],
  ];
  before(async () => {
    await fake.start();
    fake.offers = offers;
  });
  after(() => fake.close());
  beforeEach(() => {
    clearTeamSpotPrices();
    fake.requests.length = 0;
  });

  test("a team with a SkyPilot API server in its vault sees its live prices; the read is audited and cached", async () => {
    const user = await makeUser("admin");
    const team = await makeTeam([{ user, role: "admin" }], "PricesLive");
    await createSecret(team.id, SYSTEM_ACTOR, { kind: "skypilot", label: "api server", value: JSON.stringify({ apiServerUrl: fake.url, token: TOKEN }) });

    const table = await callerFor(user, team.id).catalog.table();
    const bySource = Object.fromEntries(table.spotSources.map((s) => [s.cloud, s.source]));
    assert.equal(bySource.aws, "live");
    assert.equal(bySource.gcp, "live");
    assert.equal(bySource.azure, "static", "no Azure offers on the server: the static table, with the reason");
    assert.match(table.spotSources.find((s) => s.cloud === "azure")?.reason ?? "", /no usable prices/);
    const l4 = table.gpus.find((g) => g.gpu === "L4");
    assert.deepEqual(l4?.spot.find((s) => s.cloud === "aws"), { cloud: "aws", priceMicros: 310_000, instanceType: "g6.xlarge", region: "us-east-1" });
    assert.deepEqual(l4?.spot.find((s) => s.cloud === "gcp"), { cloud: "gcp", priceMicros: 220_000, instanceType: "g2-standard-4", region: "us-central1" });

    const uses = await db.auditLog.findMany({ where: { teamId: team.id, action: "secret.use" } });
    assert.deepEqual(uses.map((u) => (u.metadata as { purpose?: string }).purpose), ["prices"]);
    const queries = fake.requestsTo("/list_accelerators").length;
    assert.equal(queries, 3, "one query per cloud");
    await callerFor(user, team.id).catalog.table();
    assert.equal(fake.requestsTo("/list_accelerators").length, queries, "served from the cache");
    const later = await teamSpotPrices(team.id, SYSTEM_ACTOR, Date.now() + 16 * 60_000);
    assert.equal(later.find((r) => r.cloud === "aws")?.source, "live");
    assert.equal(fake.requestsTo("/list_accelerators").length, queries * 2, "queried again once the cache expired");
  });

  test("without a SkyPilot API server, or when it refuses, the static table answers and says why", async () => {
    const user = await makeUser("admin");
    const none = await makeTeam([{ user, role: "admin" }], "PricesNone");
    const plain = await callerFor(user, none.id).catalog.table();
    for (const s of plain.spotSources) {
      assert.equal(s.source, "static");
      assert.match(s.reason, /no SkyPilot API server in the team's vault/);
      assert.ok(s.asOf);
    }

    const refused = await makeTeam([{ user, role: "admin" }], "PricesRefused");
    await createSecret(refused.id, SYSTEM_ACTOR, { kind: "skypilot", label: "api server", value: JSON.stringify({ apiServerUrl: fake.url, token: "sky_wrong_token_000000000000000" }) });
    const r = await teamSpotPrices(refused.id, SYSTEM_ACTOR);
    for (const s of r) {
      assert.equal(s.source, "static");
      assert.match(s.reason, /live price source failed/);
      assert.ok(!s.reason.includes("sky_wrong_token"), "the token never appears in a reason");
    }
    assert.ok(r.find((s) => s.cloud === "aws")?.prices.length, "static prices are still there");
  });

  test("hourly sampling keeps a price history: every team with a server, one row per change, none for the static table", async () => {
    const user = await makeUser("admin");
    const team = await makeTeam([{ user, role: "admin" }], "PricesHistory");
    await createSecret(team.id, SYSTEM_ACTOR, { kind: "skypilot", label: "api server", value: JSON.stringify({ apiServerUrl: fake.url, token: TOKEN }) });
    const none = await makeTeam([{ user, role: "admin" }], "PricesHistoryNone");
    const rows = async (teamId: string) =>
      (await db.spotPriceSample.findMany({ where: { teamId }, orderBy: [{ observedAt: "asc" }, { cloud: "asc" }, { gpu: "asc" }] })).map((r) => `${r.cloud} ${r.gpu} ${r.pricePerGpuHourMicros}`);

    const t = Date.now();
    const first = await sampleTeamSpotPrices(t);
    assert.ok(first.teams >= 1 && first.live >= 1);
    assert.deepEqual(await rows(team.id), ["aws H100 2050000", "aws L4 310000", "gcp L4 220000"]);
    assert.deepEqual(await rows(none.id), [], "no server: nothing sampled");
    // An hour later, unchanged prices add nothing; a changed one adds one row.
    await sampleTeamSpotPrices(t + 3_600_000);
    assert.equal((await rows(team.id)).length, 3);
    fake.offers = offers.map((o) => (o[2] === "L4" && o[0] === "AWS" ? [...o.slice(0, 8), 0.4, o[9]] as FakeOffer : o));
    try {
      await sampleTeamSpotPrices(t + 7_200_000);
    } finally {
      fake.offers = offers;
    }
    assert.deepEqual((await rows(team.id)).slice(3), ["aws L4 400000"]);
  });
});
