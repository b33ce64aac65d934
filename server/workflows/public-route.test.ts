import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { GET, POST, PUT } from "../../app/api/inngest/route";

// The step call an outsider would forge: run the destroy function's first step for someone's deployment.
const forged = () =>
  new Request("http://127.0.0.1:3000/api/inngest?fnId=tuna-destroy&stepId=step", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      event: { name: "deployment/destroy.requested", data: { deploymentId: "dep_victim", teamId: "team_victim" } },
      events: [{ name: "deployment/destroy.requested", data: { deploymentId: "dep_victim", teamId: "team_victim" } }],
      steps: {},
      ctx: { run_id: "r1", attempt: 0, max_attempts: 1, stack: { stack: [], current: 0 } },
      version: 2,
    }),
  });
const ENV = ["INNGEST_EVENT_KEY", "INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_DEV"] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
const ctx = {} as never;

test("without an Inngest server (local runner) the public route is closed to every method, dev mode or not", async () => {
  for (const dev of [undefined, "1"]) {
    for (const k of ENV) delete process.env[k];
    if (dev) process.env.INNGEST_DEV = dev;
    for (const [name, h, req] of [
      ["POST", POST, forged()],
      ["GET", GET, new Request("http://127.0.0.1:3000/api/inngest")],
      ["PUT", PUT, new Request("http://127.0.0.1:3000/api/inngest", { method: "PUT" })],
    ] as const) {
      const res = await h(req as never, ctx);
      assert.equal(res.status, 404, `${name} with INNGEST_DEV=${dev ?? "unset"}`);
      assert.deepEqual(await res.json(), { error: "Not found" });
    }
  }
});

test("with Inngest Cloud configured, an unsigned step call is refused by the SDK", async () => {
  for (const k of ENV) delete process.env[k];
  process.env.INNGEST_EVENT_KEY = "test-event-key";
  process.env.INNGEST_SIGNING_KEY = `signkey-prod-${"ab".repeat(32)}`;
  const res = await POST(forged() as never, ctx);
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assert.match(await res.text(), /unauthorized|signature/i);
});
