// The simulator is a contract other code relies on (local provider, benches): pin its behaviour.
import assert from "node:assert/strict";
import net from "node:net";
import { describe, test } from "node:test";
import { startSimulator } from "../src/index.js";
import { request, sleep, spawnTs, waitFor } from "./helpers/fixtures.js";

describe("simulator", () => {
  test("cold start: /health and /v1/models 503, then 200", async () => {
    const sim = await startSimulator({ model: "m", coldStartMs: 300 });
    try {
      assert.equal((await request(`${sim.url}/health`)).status, 503);
      assert.equal((await request(`${sim.url}/v1/models`)).status, 503);
      await sleep(350);
      assert.equal((await request(`${sim.url}/health`)).status, 200);
      const models = await request(`${sim.url}/v1/models`);
      assert.deepEqual(models.json().data.map((m: { id: string }) => m.id), ["m"]);
    } finally {
      await sim.close();
    }
  });

  test("deterministic text, exact usage, streaming with include_usage, pacing", async () => {
    const sim = await startSimulator({ model: ["m", "alias"], ttftMs: 50, tokensPerS: 100 });
    try {
      const started = Date.now();
      const r = await request(`${sim.url}/v1/chat/completions`, { body: { model: "alias", messages: [{ role: "user", content: "12345678a" }], max_tokens: 5 } });
      assert.ok(Date.now() - started >= 90, "ttft + 5 tokens at 100/s");
      assert.equal(r.json().model, "alias");
      assert.equal(r.json().choices[0].message.content, "tuna swims fast in the");
      assert.deepEqual(r.json().usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
      const s = await request(`${sim.url}/v1/completions`, { body: { model: "m", prompt: "abcd", max_tokens: 2, stream: true, stream_options: { include_usage: true } } });
      const events = s.body.split("\n\n").filter(Boolean);
      assert.equal(events.at(-1), "data: [DONE]");
      assert.deepEqual(JSON.parse(events.at(-2)!.slice(6)).usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
      assert.equal((await request(`${sim.url}/v1/chat/completions`, { body: { model: "nope", messages: [] } })).status, 404);
      assert.equal(sim.stats().requests, 3);
    } finally {
      await sim.close();
    }
  });

  test("max concurrency queues like vLLM; faults are switchable at runtime", async () => {
    const sim = await startSimulator({ model: "m", ttftMs: 150, maxConcurrency: 1 });
    try {
      const t0 = Date.now();
      await Promise.all([1, 2].map(() => request(`${sim.url}/v1/completions`, { body: { prompt: "x", max_tokens: 1 } })));
      assert.ok(Date.now() - t0 >= 290, "second request waited for the first");
      assert.equal((await request(`${sim.url}/_sim/fault`, { body: { mode: "error5xx", status: 502 } })).status, 200);
      assert.equal((await request(`${sim.url}/v1/completions`, { body: { prompt: "x" } })).status, 502);
      await request(`${sim.url}/_sim/fault`, { body: { mode: "down" } });
      await assert.rejects(request(`${sim.url}/v1/completions`, { body: { prompt: "x" }, agent: undefined }));
      await request(`${sim.url}/_sim/fault`, { body: { mode: "none" } });
      assert.equal((await request(`${sim.url}/v1/completions`, { body: { prompt: "x" } })).status, 200);
      assert.equal((await request(`${sim.url}/_sim/fault`, { body: { mode: "bogus" } })).status, 400);
    } finally {
      await sim.close();
    }
  });

  test("close-after-head / stall-after-head: the head goes out alone, then a close or a stall before any body byte", async () => {
    const sim = await startSimulator({ model: "m" });
    /** One raw request (connection: close): when the head and the first body byte arrived, and what came. */
    const post = (stream: boolean) =>
      new Promise<{ text: string; headAt: number; bodyAt: number }>((resolve, reject) => {
        const body = JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 3, stream });
        const s = net.connect(sim.port, "127.0.0.1");
        let text = "";
        let headAt = 0;
        let bodyAt = 0;
        s.on("data", (d) => {
          text += d.toString("latin1");
          const end = text.indexOf("\r\n\r\n");
          if (end >= 0 && !headAt) headAt = Date.now();
          if (end >= 0 && text.length > end + 4 && !bodyAt) bodyAt = Date.now();
        });
        s.on("error", reject);
        s.on("close", () => resolve({ text, headAt, bodyAt }));
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      });
    try {
      for (const stream of [true, false]) {
        sim.setFault({ mode: "close-after-head", delayMs: 50 });
        const closed = await post(stream);
        assert.match(closed.text, /^HTTP\/1\.1 200 OK\r\n/);
        assert.ok(closed.headAt > 0);
        assert.equal(closed.text.indexOf("\r\n\r\n") + 4, closed.text.length, `the head and not one body byte (stream: ${stream})`);
        sim.setFault({ mode: "stall-after-head", delayMs: 300 });
        const stalled = await post(stream);
        assert.ok(stalled.headAt > 0 && stalled.bodyAt - stalled.headAt >= 250, `the body came ${stalled.bodyAt - stalled.headAt} ms after the head`);
        assert.match(stalled.text, stream ? /data: \[DONE\]/ : /"completion_tokens":3/);
      }
      assert.equal(sim.stats().inflight, 0);
    } finally {
      await sim.close();
    }
  });

  test("stall-mid-stream: afterChunks events (or half the body), then silence on an open connection until the peer closes", async () => {
    const sim = await startSimulator({ model: "m" });
    /** One raw request; resolves with what arrived within `waitMs`, the connection still open, then closes it. */
    const post = (stream: boolean, waitMs: number) =>
      new Promise<{ text: string; open: boolean }>((resolve, reject) => {
        const body = JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream });
        const s = net.connect(sim.port, "127.0.0.1");
        let text = "";
        let open = true;
        s.on("data", (d) => (text += d.toString("latin1")));
        s.on("error", reject);
        s.on("close", () => (open = false));
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        setTimeout(() => {
          resolve({ text, open });
          s.destroy();
        }, waitMs);
      });
    try {
      sim.setFault({ mode: "stall-mid-stream", afterChunks: 2 });
      const streamed = await post(true, 300);
      assert.ok(streamed.open, "the connection stays open");
      assert.equal(streamed.text.split("\r\n\r\n")[1].match(/data: \{/g)?.length, 2, "two events, then nothing");
      assert.doesNotMatch(streamed.text, /\[DONE\]/);
      assert.equal(sim.stats().inflight, 1, "the stalled request holds its slot");
      await waitFor(() => sim.stats().inflight === 0, 2000);
      const whole = await post(false, 300);
      assert.ok(whole.open);
      const [head, part] = whole.text.split("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
      assert.equal(part.length, Math.floor(length / 2), "half the body of the announced length");
      await waitFor(() => sim.stats().inflight === 0, 2000);
    } finally {
      await sim.close();
    }
  });

  test("CLI: prints the listening line; preempt answers 503 then exits", async () => {
    const p = await spawnTs("router-service/src/sim/main.ts", ["--port", "0", "--model", "cli-model", "--ttft-ms", "1"]);
    try {
      const base = `http://127.0.0.1:${p.port}`;
      assert.equal((await request(`${base}/v1/models`)).json().data[0].id, "cli-model");
      await request(`${base}/_sim/fault`, { body: { mode: "preempt", delayMs: 200 } });
      assert.equal((await request(`${base}/v1/chat/completions`, { body: { messages: [] } })).status, 503);
      await waitFor(() => p.proc.exitCode !== null, 3000);
      assert.equal(p.proc.exitCode, 0);
    } finally {
      await p.stop("SIGKILL");
    }
  });
});
