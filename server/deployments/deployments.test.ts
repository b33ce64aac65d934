import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TRPCError } from "@trpc/server";
import { useTestDatabase } from "../test/db";
import { callerFor, makeTeam, makeUser } from "../test/fixtures";
import { DomainError } from "../lib/errors";
import { db } from "../db";
import { setEventSink } from "../workflows/events";
import { listDeployments } from "./index";
import { hasProvider } from "../providers";
import { captureEvents, recInput, workflowFixture } from "../workflows/test/setup";

await useTestDatabase();
const sent = captureEvents();
const f = await workflowFixture();

describe("deployments service and tRPC", () => {
  test("create: validates, records the provider choice and cost, writes audit, sends deployment/requested", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const r = await admin.deployments.create(recInput({ slug: "svc-one" }));
    assert.equal(r.status, "queued");
    const d = await admin.deployments.get({ id: r.id });
    assert.equal(d.slug, "svc-one");
    assert.equal(d.serverlessProvider, "rec-svl");
    assert.ok(d.events.some((e) => e.step === "request" && /chosen by the requester/.test(e.message ?? "")));
    assert.ok(!("upstreamHeadersCipher" in (d.components[0] ?? {})));
    const ev = sent.find((s) => s.name === "deployment/requested" && s.data.deploymentId === r.id);
    assert.ok(ev);
    assert.equal(ev.data.requiresApproval, false);
    const audit = await db.auditLog.findFirst({ where: { teamId: f.team.id, action: "deployment.request", targetId: r.id } });
    assert.ok(audit, "audit row written");
    // A live deployment's slug is taken.
    await assert.rejects(admin.deployments.create(recInput({ slug: "svc-one" })), (e: TRPCError) => e.code === "CONFLICT");
    // So is any name clients could use for it: its served model name may not be another deployment's slug, nor
    // the other way round (the router would have to guess which one a request meant).
    const nameTaken = (e: TRPCError) => e.code === "CONFLICT" && /already names deployment/.test(e.message);
    await assert.rejects(admin.deployments.create(recInput({ slug: "svc-two", servedModelName: "svc-one" })), nameTaken);
    await admin.deployments.create(recInput({ slug: "svc-three", servedModelName: "shared-name" }));
    await assert.rejects(admin.deployments.create(recInput({ slug: "shared-name" })), nameTaken);
    await assert.rejects(admin.deployments.create(recInput({ slug: "svc-four", servedModelName: "shared-name" })), nameTaken);
  });

  test("quote: a taken slug or served model name is reported before submit, as the create path reports it", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const dev = callerFor(f.developer, f.team.id);
    await admin.deployments.create(recInput({ slug: "svc-quoted", servedModelName: "quoted-name" }));
    const reasonOf = (expected: string) => (e: unknown) => {
      const err = e as TRPCError;
      assert.equal(err.code, "CONFLICT");
      assert.ok(err.cause instanceof DomainError);
      assert.equal(err.cause.reason, expected);
      return true;
    };
    // The same error, word for word, as the create that would follow.
    let quoted = "";
    await assert.rejects(dev.deployments.quote(recInput({ slug: "svc-quoted" })), (e: TRPCError) => reasonOf("slug_taken")(e) && Boolean((quoted = e.message)));
    await assert.rejects(dev.deployments.create(recInput({ slug: "svc-quoted" })), (e: TRPCError) => e.message === quoted);
    assert.match(quoted, /"svc-quoted" already exists in this team/);
    // A slug derived from the model id clashes too (the form leaves the slug empty by default).
    await admin.deployments.create(recInput({ slug: undefined, model: "org/derived-slug" }));
    await assert.rejects(dev.deployments.quote(recInput({ slug: undefined, model: "other-org/derived-slug" })), reasonOf("slug_taken"));
    await assert.rejects(dev.deployments.quote(recInput({ slug: "svc-other", servedModelName: "quoted-name" })), reasonOf("name_taken"));
    await assert.rejects(dev.deployments.quote(recInput({ slug: "quoted-name" })), reasonOf("name_taken"));
    // Free names quote as before; another team's names are none of this team's business.
    assert.equal((await dev.deployments.quote(recInput({ slug: "svc-free" }))).slug, "svc-free");
    const other = await makeUser("quoter");
    const otherTeam = await makeTeam([{ user: other, role: "admin" }], "Quoters");
    const q = await callerFor(other, otherTeam.id).deployments.quote(recInput({ slug: "svc-quoted" }));
    assert.equal(q.slug, "svc-quoted");
    assert.equal(q.approval.required, false);
    // Nothing was written by quoting.
    assert.equal(await db.deployment.count({ where: { slug: { in: ["svc-free", "svc-other"] } } }), 0);
  });

  test("the Hugging Face token is passed to the workload by name when the team has one, never by value", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const before = await admin.deployments.create(recInput({ slug: "svc-no-hf" }));
    const specOf = async (id: string) => (await db.deployment.findUniqueOrThrow({ where: { id } })).spec as { secretNames: string[] };
    assert.deepEqual((await specOf(before.id)).secretNames, []);
    await admin.vault.create({ kind: "huggingface", label: "HF", value: "hf_abcdefghijklmnopqrstuvwxyz" });
    const after = await admin.deployments.create(recInput({ slug: "svc-with-hf" }));
    const spec = await specOf(after.id);
    assert.deepEqual(spec.secretNames, ["HF_TOKEN"]);
    assert.ok(!JSON.stringify(spec).includes("hf_abcdefghijklmnopqrstuvwxyz"));
  });

  test("developer requests need approval (default policy); quote says so before submitting", async () => {
    const dev = callerFor(f.developer, f.team.id);
    const q = await dev.deployments.quote(recInput({ slug: "svc-quote" }));
    assert.equal(q.approval.required, true);
    assert.equal(q.serverlessProvider, "rec-svl");
    const r = await dev.deployments.create(recInput({ slug: "svc-two" }));
    assert.equal(r.status, "pending_approval");
    const d = await dev.deployments.get({ id: r.id });
    assert.equal(d.approval?.status, "pending");
  });

  test("cheapest picks among installed priced serverless providers and explains why", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const cheap = await admin.deployments.quote(recInput({ provider: "cheapest", slug: "svc-cheap" }));
    assert.ok(cheap.serverlessProvider && hasProvider(cheap.serverlessProvider), "an installed provider");
    assert.notEqual(cheap.serverlessProvider, "local", "the simulator is never picked implicitly");
    assert.match(cheap.providerReason ?? "", /cheapest/);
    // H200: only RunPod publishes a serverless rate (a GPU nobody prices has no pick: catalog.test.ts).
    assert.equal((await admin.deployments.quote(recInput({ provider: "cheapest", gpu: "H200", slug: "svc-h200" }))).serverlessProvider, "runpod");
    const q = await admin.deployments.quote({ model: "Qwen/Qwen3-0.6B", mode: "hybrid", gpu: "L4", provider: "local", spotClouds: [] });
    assert.equal(q.spotProvider, "local-spot");
    assert.ok(q.estimatedCostPerHourMicros > 0);
  });

  test("invalid requests are rejected before anything is written", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const n = await db.deployment.count();
    await assert.rejects(admin.deployments.create(recInput({ gpu: "Z9000" })), (e: TRPCError) => e.code === "BAD_REQUEST" && /unknown GPU/.test(e.message));
    await assert.rejects(admin.deployments.create(recInput({ provider: "nope" })), (e: TRPCError) => e.code === "BAD_REQUEST");
    await assert.rejects(admin.deployments.create(recInput({ direct: true })), (e: TRPCError) => /direct endpoint/.test(e.message));
    await assert.rejects(admin.deployments.create(recInput({ engine: { kind: "vllm", extraArgs: ["--x; rm -rf /"] } })), (e: TRPCError) => e.code === "BAD_REQUEST");
    assert.equal(await db.deployment.count(), n);
  });

  test("destroy and destroy-all: permissions and events", async () => {
    const admin = callerFor(f.admin, f.team.id);
    const { id } = await admin.deployments.create(recInput({ slug: "svc-destroy" }));
    const viewer = callerFor(f.viewer, f.team.id);
    await assert.rejects(viewer.deployments.destroy({ id }), (e: TRPCError) => e.code === "FORBIDDEN");
    const r = await callerFor(f.developer, f.team.id).deployments.destroy({ id });
    assert.equal(r.status, "destroying");
    assert.ok(sent.some((s) => s.name === "deployment/destroy.requested" && s.data.deploymentId === id));
    await assert.rejects(callerFor(f.developer, f.team.id).deployments.destroyAll({ confirm: "destroy all" }), (e: TRPCError) => e.code === "FORBIDDEN");
    const all = await admin.deployments.destroyAll({ confirm: "destroy all" });
    assert.ok(all.count >= 1);
    assert.ok(sent.some((s) => s.name === "deployment/destroy-all.requested" && s.data.teamId === f.team.id));
  });

  test("cross-tenant: another team cannot read, destroy or learn of a deployment", async () => {
    const { id } = await callerFor(f.admin, f.team.id).deployments.create(recInput({ slug: "svc-private" }));
    const stranger = callerFor(f.outsider, f.otherTeam.id);
    await assert.rejects(stranger.deployments.get({ id }), (e: TRPCError) => e.code === "NOT_FOUND");
    await assert.rejects(stranger.deployments.timeline({ id }), (e: TRPCError) => e.code === "NOT_FOUND");
    await assert.rejects(stranger.deployments.destroy({ id }), (e: TRPCError) => e.code === "NOT_FOUND");
    const list = await stranger.deployments.list({});
    assert.ok(!list.items.some((d) => d.id === id));
    assert.equal((await db.deployment.findUniqueOrThrow({ where: { id } })).status, "queued");
  });

  test("list: keyset pagination, filters and sorts stay fast at 10,000 rows", async () => {
    setEventSink(async () => {});
    const teamId = f.otherTeam.id;
    const base = Date.UTC(2026, 0, 1);
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      id: `bulk${String(i).padStart(6, "0")}`,
      teamId,
      slug: `bulk-${String(i).padStart(5, "0")}`,
      model: "Qwen/Qwen3-0.6B",
      servedModelName: "qwen",
      mode: "serverless" as const,
      status: (i % 10 === 0 ? "active" : "destroyed") as "active" | "destroyed",
      serverlessProvider: i % 2 ? "local" : "modal",
      serverlessGpu: i % 3 ? "L4" : "T4",
      spec: {},
      createdById: f.outsider.id,
      createdAt: new Date(base + Math.floor(i / 2) * 1000), // pairs share a timestamp: the id breaks ties
    }));
    for (let i = 0; i < rows.length; i += 2000) await db.deployment.createMany({ data: rows.slice(i, i + 2000) });
    await db.$executeRawUnsafe(`ANALYZE "Deployment"`);

    // Walk every page newest first: no duplicates, no gaps, strictly ordered.
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    let prev: { at: number; id: string } | null = null;
    const t0 = performance.now();
    do {
      const page: Awaited<ReturnType<typeof listDeployments>> = await listDeployments(teamId, { sort: "newest", limit: 200, cursor });
      for (const d of page.items) {
        assert.ok(!seen.has(d.id));
        seen.add(d.id);
        const cur = { at: d.createdAt.getTime(), id: d.id };
        if (prev) assert.ok(prev.at > cur.at || (prev.at === cur.at && prev.id > cur.id), "ordered by createdAt desc, id desc");
        prev = cur;
      }
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    const ms = performance.now() - t0;
    assert.equal(seen.size, 10_000);
    assert.equal(pages, 50);
    assert.ok(ms < 15_000, `50 pages took ${ms.toFixed(0)} ms`);

    const active = await listDeployments(teamId, { status: "active", limit: 50 });
    assert.equal(active.items.length, 50);
    assert.ok(active.items.every((d) => d.status === "active"));
    const t4 = await listDeployments(teamId, { gpu: "T4", provider: "modal", sort: "slug", limit: 10 });
    assert.ok(t4.items.every((d) => d.serverlessGpu === "T4" && d.serverlessProvider === "modal"));
    assert.deepEqual(t4.items.map((d) => d.slug), [...t4.items.map((d) => d.slug)].sort());
    const next = await listDeployments(teamId, { gpu: "T4", provider: "modal", sort: "slug", limit: 10, cursor: t4.nextCursor });
    assert.ok(next.items[0]!.slug > t4.items[9]!.slug);

    // The deep page uses the (teamId, createdAt, id) index, not a sort of the whole team.
    const last = rows[5000]!;
    const cur = Buffer.from(JSON.stringify({ k: last.createdAt.toISOString(), id: last.id })).toString("base64url");
    const plan = await db.$queryRawUnsafe<Array<{ "QUERY PLAN": string }>>(
      `EXPLAIN SELECT id FROM "Deployment" WHERE "teamId" = $1 AND ("createdAt" < $2 OR ("createdAt" = $2 AND id < $3)) ORDER BY "createdAt" DESC, id DESC LIMIT 51`,
      teamId,
      last.createdAt,
      last.id,
    );
    assert.match(plan.map((p) => p["QUERY PLAN"]).join("\n"), /Index/);
    assert.ok(cur);
  });
});
