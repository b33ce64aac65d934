// `npm start`'s launcher refuses to start, before touching anything, when one of its ports is taken.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "..");

function listen(host: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, host, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

async function runLauncher(env: Record<string, string>, data: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/launch.ts", "start"], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: "", TUNA_DATA_DIR: data, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (out += c));
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  return { code, out };
}

test("a taken port: exit 1 with the port, what it is for and the variable to change; nothing started", async (t) => {
  const busy = await listen("127.0.0.1");
  const free = await listen("127.0.0.1");
  await new Promise((r) => free.server.close(r));
  const tmp = mkdtempSync(path.join(os.tmpdir(), "tuna-launch-"));
  t.after(() => {
    busy.server.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  const data = path.join(tmp, "data");
  const { code, out } = await runLauncher({ PORT: String(busy.port), TUNA_ROUTER_PORT: String(free.port), TUNA_PG_PORT: String(free.port) }, data);
  assert.equal(code, 1);
  assert.match(out, new RegExp(`port ${busy.port} for the dashboard is already in use .*set PORT to a free port`));
  assert.doesNotMatch(out, /at .*\(.*:\d+:\d+\)/, "no stack trace");
  assert.equal(existsSync(data), false, "no data folder, no database started");
});

test("a malformed port or key in the environment: exit 1 naming the variable, before anything starts", async (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "tuna-launch-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const data = path.join(tmp, "data");
  const port = await runLauncher({ TUNA_ROUTER_PORT: "80a" }, data);
  assert.equal(port.code, 1);
  assert.match(port.out, /TUNA_ROUTER_PORT must be a whole number 1–65535, got "80a"/);
  const key = await runLauncher({ TUNA_MASTER_KEY: "too-short" }, data);
  assert.equal(key.code, 1);
  assert.match(key.out, /TUNA_MASTER_KEY must be 32 bytes, base64 or hex encoded/);
  assert.doesNotMatch(key.out, /too-short/, "the key's value is not echoed");
  assert.equal(existsSync(data), false, "no data folder, no database started");
});
