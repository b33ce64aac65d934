// Shared test fixtures: keys, snapshots, HTTP helpers and process spawning. Everything runs on loopback.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { createServer } from "node:net";
import { hashApiKey } from "../../src/auth.js";
import type { DeploymentConfig, RouterSnapshot } from "../../src/contract.js";

export const KEY = "tuna_sk_test_alpha";
export const KEY_B = "tuna_sk_test_bravo"; // team_2
export const KEY_SCOPED = "tuna_sk_test_scoped"; // team_1, only dep_2

export function deployment(over: Partial<DeploymentConfig> & { svlUrl?: string; spotUrl?: string } = {}): DeploymentConfig {
  const { svlUrl, spotUrl, ...rest } = over;
  const backends: DeploymentConfig["backends"] = [];
  if (svlUrl) backends.push({ id: "svl", kind: "serverless", url: svlUrl, headers: { authorization: "Bearer upstream-secret" } });
  if (spotUrl) backends.push({ id: "spot", kind: "spot", url: spotUrl, replicas: 1, maxInflightPerReplica: 32 });
  return {
    id: "dep_1", teamId: "team_1", slug: "qwen-small", models: ["qwen-small", "Qwen/Qwen3-0.6B"], mode: "hybrid",
    backends,
    routing: { policy: "spot-first", warmupPokeIntervalS: 0.1, idleTimeoutS: 60, warmupTimeoutS: 30, connectTimeoutMs: 500, healthCheckIntervalMs: 100, failbackSuccesses: 3, minEjectMs: 300 },
    ...rest,
  };
}

export function snapshot(deployments: DeploymentConfig[], over: Partial<RouterSnapshot> = {}, limits: RouterSnapshot["apiKeys"][number]["limits"] = { rpm: 100000, tpm: 100000000, maxConcurrent: 1000 }): RouterSnapshot {
  return {
    version: 1,
    deployments,
    apiKeys: [
      { id: "key_a", hash: hashApiKey(KEY), teamId: "team_1", deployments: "*", limits, expiresAt: null },
      { id: "key_b", hash: hashApiKey(KEY_B), teamId: "team_2", deployments: "*", limits, expiresAt: null },
      { id: "key_s", hash: hashApiKey(KEY_SCOPED), teamId: "team_1", deployments: ["dep_2"], limits, expiresAt: null },
    ],
    ...over,
  };
}

export const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are asserted field by field
  json: () => any;
}

/** Plain request over a keep-alive agent; resolves with the whole body, rejects on a broken connection. */
export function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | object; agent?: http.Agent } = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    const req = http.request(url, { method: opts.method ?? (body ? "POST" : "GET"), agent: opts.agent ?? agent, headers: { "content-type": "application/json", ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
      });
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
    });
    req.on("error", reject);
    req.end(body);
  });
}

export function chat(base: string, key: string | undefined, body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Resp> {
  return request(`${base}/v1/chat/completions`, {
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: { model: "qwen-small", messages: [{ role: "user", content: "hello there" }], max_tokens: 4, ...body },
  });
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Spawned {
  proc: ChildProcess;
  port: number;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `node --import tsx <script> ...` from the repository root and waits for its {"event":"listening"} line. */
export function spawnTs(script: string, args: string[], env: Record<string, string> = {}): Promise<Spawned> {
  return spawnListening([process.execPath, "--import", "tsx", script, ...args], new URL("../../..", import.meta.url).pathname, env);
}

/** Spawns `command` in `cwd` and waits for its {"event":"listening"} line. */
export async function spawnListening(command: string[], cwd: string, env: Record<string, string> = {}): Promise<Spawned> {
  const script = command.join(" ");
  const proc = spawn(command[0], command.slice(1), { cwd, env: { ...process.env, LOG_LEVEL: "warn", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout?.on("data", (c) => (out += c));
  proc.stderr?.on("data", (c) => (out += c));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout starting ${script}: ${out}`)), 20_000);
    const onData = () => {
      const m = /\{"event":"listening","port":(\d+)\}/.exec(out);
      if (m) {
        clearTimeout(t);
        proc.stdout?.off("data", onData);
        resolve(Number(m[1]));
      }
    };
    proc.stdout?.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`${script} exited with ${code}: ${out}`));
    });
  });
  return {
    proc,
    port,
    output: () => out,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const [code] = (await once(proc, "exit")) as [number | null];
      return code;
    },
  };
}

/** Deterministic PRNG (mulberry32), so a random schedule replays identically. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
