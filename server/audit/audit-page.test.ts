import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { useTestDatabase } from "../test/db";
import { callerFor, makeRoleFixture, makeUser, outcomeCode } from "../test/fixtures";
import { db, getPrisma } from "../db";
import { acceptInvite, createInvite, removeMember } from "../teams";
import { appendAudit, filteredAuditBatches, listAudit, verifyAuditChain, type AuditActor } from "./index";
import { AUDIT_CSV_COLUMNS, csvCell, exportAuditCsv } from "./export";

await useTestDatabase();

const actorOf = (u: { id: string; email: string }): AuditActor & { userId: string } => ({ userId: u.id, label: u.email, ip: "10.0.0.1", userAgent: "test" });

async function audit(teamId: string, actor: AuditActor, entry: { action: string; targetType?: string; targetId?: string; metadata?: Record<string, unknown> }) {
  await db.$transaction((tx) => appendAudit(tx, teamId, actor, entry));
}

async function deployment(teamId: string, userId: string, slug: string) {
  return db.deployment.create({ data: { teamId, slug, model: "m", servedModelName: "m", mode: "serverless", status: "active", spec: {}, createdById: userId } });
}

/** RFC 4180 parser (quoted cells, doubled quotes, CRLF and line breaks inside quotes), to read the export back. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i++;
    } else cell += c;
  }
  assert.equal(cell + row.join(""), "", "the file ends with a line break");
  return rows;
}

function records(csv: string): Array<Record<string, string>> {
  const [head, ...rows] = parseCsv(csv);
  assert.deepEqual(head, [...AUDIT_CSV_COLUMNS]);
  return rows.map((r) => {
    assert.equal(r.length, head.length, JSON.stringify(r));
    return Object.fromEntries(head.map((h, i) => [h, r[i]]));
  });
}

/** Counts the queries Prisma sends (per model and operation) while `fn` runs. */
async function countQueries<T>(fn: () => Promise<T>): Promise<{ result: T; queries: string[] }> {
  const g = globalThis as unknown as { __tunaPrisma?: unknown };
  const plain = getPrisma();
  const queries: string[] = [];
  g.__tunaPrisma = plain.$extends({
    query: {
      $allOperations({ model, operation, args, query }) {
        queries.push(`${model ?? "raw"}.${operation}`);
        return query(args);
      },
    },
  });
  try {
    return { result: await fn(), queries };
  } finally {
    g.__tunaPrisma = plain;
  }
}

describe("audit log: action filter", () => {
  test("ignores case and surrounding spaces (\"Deployment\" finds deployment.request)", async () => {
    const f = await makeRoleFixture();
    const a = actorOf(f.admin);
    for (const action of ["deployment.request", "member.invite", "deployment.destroy", "apikey.create"]) await audit(f.team.id, a, { action });
    const admin = callerFor(f.admin, f.team.id);
    const actions = async (filter: string) => (await admin.audit.list({ action: filter })).items.map((i) => i.action);
    assert.deepEqual(await actions("Deployment"), ["deployment.destroy", "deployment.request"]);
    assert.deepEqual(await actions("  DEPLOYMENT.Req "), ["deployment.request"]);
    assert.deepEqual(await actions("deployment."), ["deployment.destroy", "deployment.request"]);
    assert.deepEqual(await actions("Member"), ["member.invite"]);
    assert.deepEqual(await actions("   "), ["apikey.create", "deployment.destroy", "member.invite", "deployment.request"]);
    // Still "starts with", not "contains".
    assert.deepEqual(await actions("request"), []);
    assert.deepEqual((await listAudit({ teamId: f.team.id, action: "APIKEY", limit: 10 })).items.map((i) => i.action), ["apikey.create"]);
  });
});

describe("audit log: targets by name", () => {
  test("live objects by their name, deleted ones by what the log recorded, the id when nothing is known", async () => {
    const f = await makeRoleFixture("Acme");
    const admin = callerFor(f.admin, f.team.id);
    const a = actorOf(f.admin);

    const key = await admin.apiKeys.create({ label: "ci-bot" });
    await admin.apiKeys.revoke({ keyId: key.apiKey.id });
    const secret = await admin.vault.create({ kind: "runpod", label: "RunPod prod", value: `rpa_${randomBytes(16).toString("hex")}` });
    await admin.vault.delete({ secretId: secret.id });
    const channel = await admin.alerts.create({ name: "#ops", kind: "webhook", url: "https://hooks.example.com/tuna/ops", events: ["deployment.failed"] });
    await admin.alerts.delete({ channelId: channel.id });
    // A later row about the deleted channel without a name of its own (as alerts.channel.test writes).
    await audit(f.team.id, a, { action: "alerts.channel.test", targetType: "alert_channel", targetId: channel.id });
    await admin.team.rename({ name: "Acme Labs" });
    const dep = await deployment(f.team.id, f.admin.id, "qwen-small");
    await audit(f.team.id, a, { action: "deployment.destroy", targetType: "deployment", targetId: dep.id, metadata: { from: "active" } });
    const invite = await createInvite(f.team.id, a, { role: "developer", email: "grace@example.test" });
    const joiner = await makeUser("joiner");
    await acceptInvite(actorOf(joiner), invite.token);
    await removeMember(f.team.id, a, joiner.id);
    await audit(f.team.id, a, { action: "member.role.change", targetType: "user", targetId: f.viewer.id, metadata: { from: "viewer", to: "viewer" } });
    const approval = await db.approvalRequest.create({
      data: { teamId: f.team.id, deploymentId: dep.id, requestedById: f.developer.id, reasons: ["gpu"], summary: {}, expiresAt: new Date(Date.now() + 3600_000) },
    });
    await audit(f.team.id, a, { action: "approval.approve", targetType: "approval", targetId: approval.id, metadata: { deploymentId: dep.id } });
    await audit(f.team.id, a, { action: "deployment.destroy", targetType: "deployment", targetId: "cl_never_existed" });

    const { items } = await admin.audit.list({ limit: 200 });
    const named = (action: string, targetId?: string) => {
      const row = items.find((i) => i.action === action && (!targetId || i.targetId === targetId));
      assert.ok(row, action);
      return { name: row.targetName, gone: row.targetGone, id: row.targetId };
    };
    assert.match(named("apikey.revoke").name ?? "", /^ci-bot \(tuna_sk_[\w-]{4}…\)$/);
    assert.deepEqual(named("secret.delete", secret.id), { name: "RunPod prod", gone: true, id: secret.id });
    assert.deepEqual(named("alerts.channel.delete"), { name: "#ops", gone: true, id: channel.id });
    assert.deepEqual(named("alerts.channel.test"), { name: "#ops", gone: true, id: channel.id });
    assert.deepEqual(named("team.rename"), { name: "Acme Labs", gone: false, id: f.team.id });
    assert.deepEqual(named("deployment.destroy", dep.id), { name: "qwen-small", gone: false, id: dep.id });
    assert.deepEqual(named("member.invite"), { name: "invite for grace@example.test", gone: false, id: invite.id });
    // The member left: named by the label the log recorded when they joined.
    assert.deepEqual(named("member.remove"), { name: joiner.email, gone: true, id: joiner.id });
    assert.deepEqual(named("member.role.change"), { name: f.viewer.email, gone: false, id: f.viewer.id });
    assert.deepEqual(named("approval.approve"), { name: "approval for qwen-small", gone: false, id: approval.id });
    assert.deepEqual(named("deployment.destroy", "cl_never_existed"), { name: null, gone: false, id: "cl_never_existed" });
  });

  test("never another team's names: ids of team B's objects in team A's log stay ids", async () => {
    const f = await makeRoleFixture("Alpha");
    const outsider = callerFor(f.outsider, f.otherTeam.id);
    const theirKey = await outsider.apiKeys.create({ label: "bravo-secret-key" });
    const theirDep = await deployment(f.otherTeam.id, f.outsider.id, "bravo-secret-project");
    const theirChannel = await outsider.alerts.create({ name: "#bravo-secret", kind: "webhook", url: "https://hooks.example.com/bravo", events: ["deployment.failed"] });
    await outsider.alerts.delete({ channelId: theirChannel.id });
    // Rows in team A that (by a bug or a forged write) point at team B's objects, team B and B's admin.
    const a = actorOf(f.admin);
    await audit(f.team.id, a, { action: "apikey.revoke", targetType: "apikey", targetId: theirKey.apiKey.id });
    await audit(f.team.id, a, { action: "deployment.destroy", targetType: "deployment", targetId: theirDep.id });
    await audit(f.team.id, a, { action: "alerts.channel.test", targetType: "alert_channel", targetId: theirChannel.id });
    await audit(f.team.id, a, { action: "team.rename", targetType: "team", targetId: f.otherTeam.id });
    await audit(f.team.id, a, { action: "member.remove", targetType: "user", targetId: f.outsider.id });
    const { items } = await callerFor(f.admin, f.team.id).audit.list({ limit: 50 });
    const foreign = items.filter((i) => i.seq > 0 && [theirKey.apiKey.id, theirDep.id, theirChannel.id, f.otherTeam.id, f.outsider.id].includes(i.targetId ?? ""));
    assert.equal(foreign.length, 5);
    for (const i of foreign) assert.deepEqual({ name: i.targetName, gone: i.targetGone }, { name: null, gone: false }, i.action);
    const csv = (await callerFor(f.admin, f.team.id).audit.export({})).csv;
    for (const word of ["bravo-secret", f.outsider.email, "Alpha-other"]) assert.ok(!csv.includes(word), word);
  });

  test("one query per target type however many rows, not one per row", async () => {
    const f = await makeRoleFixture();
    const a = actorOf(f.admin);
    const fill = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const d = await deployment(f.team.id, f.admin.id, `dep-${randomBytes(3).toString("hex")}`);
        await audit(f.team.id, a, { action: "deployment.destroy", targetType: "deployment", targetId: d.id });
        await audit(f.team.id, a, { action: "member.role.change", targetType: "user", targetId: f.viewer.id });
        await audit(f.team.id, a, { action: "alerts.channel.test", targetType: "alert_channel", targetId: `gone_${i}` });
      }
    };
    await fill(2);
    const small = await countQueries(() => listAudit({ teamId: f.team.id, limit: 200 }));
    await fill(20);
    const big = await countQueries(() => listAudit({ teamId: f.team.id, limit: 200 }));
    assert.equal(big.result.items.length, 66);
    assert.ok(big.result.items.every((i) => i.targetType !== "deployment" || i.targetName?.startsWith("dep-")));
    assert.deepEqual(big.queries.sort(), small.queries.sort(), "the same queries for 6 rows and 66");
    assert.equal(big.queries.filter((q) => q === "Deployment.findMany").length, 1);
    assert.equal(big.queries.filter((q) => q === "Membership.findMany").length, 1);
    assert.ok(big.queries.length <= 6, big.queries.join(", "));
  });
});

describe("audit log: CSV export", () => {
  test("cells are escaped: quotes, commas, line breaks, and formulas are neutralised", () => {
    assert.equal(csvCell("plain"), "plain");
    assert.equal(csvCell('say "hi", then\nleave'), '"say ""hi"", then\nleave"');
    assert.equal(csvCell("a\r\nb"), '"a\r\nb"');
    assert.equal(csvCell("=HYPERLINK(\"http://evil.example\",\"x\")"), "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"");
    assert.equal(csvCell("+1+2"), "'+1+2");
    assert.equal(csvCell("-2+3"), "'-2+3");
    assert.equal(csvCell("@SUM(A1)"), "'@SUM(A1)");
    assert.equal(csvCell("\t=1"), "'\t=1");
    assert.equal(csvCell("a=b"), "a=b");
    assert.equal(csvCell(null), "");
    assert.equal(csvCell(42), "42");
    assert.equal(csvCell(new Date("2026-03-01T12:00:00.000Z")), "2026-03-01T12:00:00.000Z");
  });

  test("the filtered log with names and chain fields, newest first, no secret values", async () => {
    const f = await makeRoleFixture("Export");
    const admin = callerFor(f.admin, f.team.id);
    const runpodKey = `rpa_${randomBytes(16).toString("hex")}`;
    await admin.vault.create({ kind: "runpod", label: "RunPod, \"prod\"", value: runpodKey });
    const key = await admin.apiKeys.create({ label: "=HYPERLINK(\"http://evil.example\"),\nx" });
    await admin.apiKeys.revoke({ keyId: key.apiKey.id });
    await admin.team.rename({ name: "+Export Co" });

    // Read before exporting: each export appends its own audit row (after building the file).
    const rows = await db.auditLog.findMany({ where: { teamId: f.team.id }, orderBy: { seq: "desc" } });
    const all = records((await admin.audit.export({})).csv);
    assert.deepEqual(all.map((r) => Number(r.seq)), rows.map((r) => r.seq));
    for (const [i, r] of all.entries()) {
      const row = rows[i];
      assert.deepEqual(
        [r.time, r.actor, r.actor_id, r.action, r.target_type, r.target_id, r.ip, r.prev_hash, r.hash],
        [row.createdAt.toISOString(), row.actorLabel, row.actorId ?? "", row.action, row.targetType ?? "", row.targetId ?? "", row.ip ?? "", row.prevHash, row.hash],
      );
      if (i + 1 < all.length) assert.equal(r.prev_hash, all[i + 1].hash, "each row links to the one before it");
    }
    const revoke = all.find((r) => r.action === "apikey.revoke");
    assert.match(revoke?.target_name ?? "", /^'=HYPERLINK\("http:\/\/evil\.example"\),\nx \(tuna_sk_[\w-]{4}…\)$/);
    assert.equal(all.find((r) => r.action === "team.rename")?.target_name, "'+Export Co");
    assert.equal(all.find((r) => r.action === "secret.create")?.target_name, 'RunPod, "prod"');
    assert.equal(all.find((r) => r.action === "secret.create")?.details, '{"kind":"runpod","label":"RunPod, \\"prod\\""}');

    // The page's filters: action (any case), actor, dates.
    const keys = records((await admin.audit.export({ action: " ApiKey" })).csv);
    assert.deepEqual(keys.map((r) => r.action), ["apikey.revoke", "apikey.create"]);
    assert.deepEqual(records((await admin.audit.export({ actorId: f.viewer.id })).csv), []);
    assert.deepEqual(records((await admin.audit.export({ to: new Date(Date.now() - 86_400_000) })).csv), []);
    const before = await db.auditLog.count({ where: { teamId: f.team.id } });
    assert.equal(records((await admin.audit.export({ from: new Date(Date.now() - 86_400_000) })).csv).length, before);

    const full = (await admin.audit.export({})).csv;
    assert.ok(!full.includes(runpodKey), "a vault value never reaches the export");
    assert.ok(!full.includes(key.key), "an API key never reaches the export");
  });

  test("an export is audited: who, which filters, how many rows; the file never holds its own row", async () => {
    const f = await makeRoleFixture("Exported");
    const admin = callerFor(f.admin, f.team.id);
    await admin.apiKeys.create({ label: "k1" });
    const from = new Date(Date.now() - 3_600_000);
    const first = await admin.audit.export({ action: " APIKEY", from });
    assert.equal(records(first.csv).length, 1);
    const row = await db.auditLog.findFirstOrThrow({ where: { teamId: f.team.id }, orderBy: { seq: "desc" } });
    assert.deepEqual(
      { action: row.action, actorId: row.actorId, targetType: row.targetType, targetId: row.targetId, metadata: row.metadata },
      { action: "audit.export", actorId: f.admin.id, targetType: "team", targetId: f.team.id, metadata: { rows: 1, truncated: false, filters: { action: "APIKEY", from: from.toISOString() } } },
    );
    const second = records((await admin.audit.export({})).csv);
    assert.equal(second[0].action, "audit.export", "the next export lists the previous one, newest first");
    assert.ok(!second.some((r) => r.seq === String(row.seq + 1)), "an export does not contain its own row");
    assert.equal((await verifyAuditChain(f.team.id)).ok, true);
    // A refused export leaves no trace of a copy taken.
    const count = await db.auditLog.count({ where: { teamId: f.team.id } });
    assert.equal(await outcomeCode(callerFor(f.viewer, f.team.id).audit.export({})), "FORBIDDEN");
    assert.equal(await db.auditLog.count({ where: { teamId: f.team.id } }), count);
  });

  test("only audit.read (admins) of the team itself may export; another team's rows never appear", async () => {
    const f = await makeRoleFixture("Scoped");
    await callerFor(f.admin, f.team.id).apiKeys.create({ label: "scoped-key" });
    await callerFor(f.outsider, f.otherTeam.id).apiKeys.create({ label: "other-teams-key" });
    assert.equal(await outcomeCode(callerFor(f.developer, f.team.id).audit.export({})), "FORBIDDEN");
    assert.equal(await outcomeCode(callerFor(f.viewer, f.team.id).audit.export({})), "FORBIDDEN");
    assert.equal(await outcomeCode(callerFor(f.outsider, f.team.id).audit.export({})), "NOT_FOUND");
    assert.equal(await outcomeCode(callerFor(null, f.team.id).audit.export({})), "UNAUTHORIZED");
    const mine = await callerFor(f.admin, f.team.id).audit.export({});
    assert.ok(mine.csv.includes("scoped-key") && !mine.csv.includes("other-teams-key"));
    assert.match(mine.filename, /^tuna-audit-scoped-[0-9a-f]{8}-\d{4}-\d{2}-\d{2}\.csv$/);
    const theirs = await callerFor(f.outsider, f.otherTeam.id).audit.export({});
    assert.ok(theirs.csv.includes("other-teams-key") && !theirs.csv.includes("scoped-key"));
  });

  test("bounded: at most maxRows rows, newest first, and says when the log had more", async () => {
    const f = await makeRoleFixture();
    for (let i = 0; i < 7; i++) await audit(f.team.id, actorOf(f.admin), { action: `thing.${i}` });
    const three = await exportAuditCsv({ teamId: f.team.id }, 3);
    assert.deepEqual({ rows: three.rows, truncated: three.truncated }, { rows: 3, truncated: true });
    assert.deepEqual(records(three.csv).map((r) => r.action), ["thing.6", "thing.5", "thing.4"]);
    const seven = await exportAuditCsv({ teamId: f.team.id }, 7);
    assert.deepEqual({ rows: seven.rows, truncated: seven.truncated }, { rows: 7, truncated: false });
    // Batches: pages of 2 follow each other without gaps or repeats, and stop at the bound.
    const seqs = async (max: number, q = {}) => {
      const out: Array<{ seqs: number[]; truncated: boolean }> = [];
      for await (const b of filteredAuditBatches({ teamId: f.team.id, ...q }, { max, batch: 2 })) out.push({ seqs: b.rows.map((r) => r.seq), truncated: b.truncated });
      return out;
    };
    assert.deepEqual(await seqs(5), [{ seqs: [7, 6], truncated: false }, { seqs: [5, 4], truncated: false }, { seqs: [3], truncated: true }]);
    assert.deepEqual(await seqs(10), [{ seqs: [7, 6], truncated: false }, { seqs: [5, 4], truncated: false }, { seqs: [3, 2], truncated: false }, { seqs: [1], truncated: false }]);
    assert.deepEqual(await seqs(10, { action: "THING.3" }), [{ seqs: [4], truncated: false }]);
  });
});
