// Router benchmark (a script, not a test): the same fast simulator reached directly, through the Tuna
// router, through nginx proxy_pass and through the Portkey gateway OSS (installed on demand into a cache
// folder outside the repo, never into its dependencies). Prints max RPS and the
// latency each proxy adds at a fixed rate, then holds 2,000 SSE streams open through the router and
// reports its RSS. Run: `node --import tsx bench/router/run.ts [--duration-s 3] [--rounds 3] [--warmup-s 1]
// [--connections 32] [--rate <req/s>] [--streams 2000] [--no-portkey]`. Every load run starts with --warmup-s
// of the same load that is not counted (its p99 is printed, so the start-up transient stays visible).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { cpus, homedir } from "node:os";
import { dirname, join } from "node:path";
import { hashApiKey } from "../../router-service/src/auth.js";
import type { RouterSnapshot } from "../../router-service/src/contract.js";

const argv = process.argv.slice(2);
const arg = (name: string, d: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const DURATION_MS = arg("duration-s", 3) * 1000;
const ROUNDS = arg("rounds", 3);
const WARMUP_MS = arg("warmup-s", 1) * 1000;
const CONNECTIONS = arg("connections", 32);
const STREAMS = arg("streams", 2000);
const SKIP_RPS = argv.includes("--latency-only");
const ROOT = new URL("../..", import.meta.url).pathname;
const TMP = `/tmp/tuna-bench-${process.pid}`;
mkdirSync(TMP, { recursive: true });
const KEY = "tuna_sk_bench";
const BODY = JSON.stringify({ model: "bench-model", messages: [{ role: "user", content: "Say something short." }], max_tokens: 16 });
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

// The harness (load generator and simulator) collects garbage on its own thread only. By default V8 spreads a
// collection over helper threads on every core, so each harness GC also preempted the proxy under test on the
// other core; on this 2-core box that alone put 5–14 ms spikes into direct's own latency. The proxies keep
// their defaults: their own GC is part of what is measured.
const HARNESS_NODE_FLAGS = ["--single-threaded-gc"];

function spawnListening(args: string[], nodeFlags: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [...nodeFlags, "--import", "tsx", ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "inherit"] });
  children.push(proc);
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout?.on("data", (c) => {
      out += c;
      const m = /\{"event":"listening","port":(\d+)\}/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once("exit", (c) => reject(new Error(`${args[0]} exited ${c}`)));
  });
}

async function waitHttp(url: string, headers: Record<string, string> = {}, timeoutMs = 15_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.end(BODY);
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** Processes doing the target's work (the proxy; the simulator for "direct"), for CPU per request. */
  pids: () => number[];
}

/** user+system CPU of the processes in ms (/proc stat fields 14 and 15, clock ticks of 10 ms). */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* process gone */
    }
  }
  return ticks * 10;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface LoadResult {
  n: number;
  errors: number;
  ms: number;
  latencies?: number[];
  warmupP99?: number;
  /** Closed mode: answers including the warm-up's. */
  total?: number;
  /** Closed mode: the generator's own CPU over the run, warm-up included. */
  cpuMs?: number;
}

/** Runs the load generator (bench/router/loadgen.ts) in its own process; see that file for the modes. */
function loadgen(spec: { url: string; headers: Record<string, string>; mode: "closed" | "open"; durationMs: number; rate?: number }): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const full = { ...spec, body: BODY, connections: CONNECTIONS, warmupMs: WARMUP_MS };
    const args = ["--expose-gc", ...HARNESS_NODE_FLAGS, "--import", "tsx", join(ROOT, "bench/router/loadgen.ts"), JSON.stringify(full)];
    const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    children.push(p);
    let out = "";
    p.stdout?.on("data", (c) => (out += c));
    p.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`loadgen exited ${code}`))));
  });
}

/** Prints rows (the first is the header) as a Markdown table. */
function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const [i, r] of rows.entries()) {
    console.log(`| ${r.map((c, j) => c.padEnd(widths[j])).join(" | ")} |`);
    if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
}

/** Busy and total CPU time of the whole box in ms so far (/proc/stat "cpu" line, ticks of 10 ms). */
function boxCpuMs(): { busy: number; all: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const all = f.reduce((a, b) => a + b, 0);
  // idle + iowait are not busy.
  return { busy: (all - f[3] - f[4]) * 10, all: all * 10 };
}

interface RpsRun {
  rps: number;
  errors: number;
  /** The target's own processes' CPU per answer. */
  cpuUsPerReq: number;
  /** CPU per answer of the load generator and of the simulator (NaN for direct, where it is the target). */
  loadgenUsPerReq: number;
  simUsPerReq: number;
  /** Share of the box's CPU time that was busy over the run, 0..1. */
  boxBusy: number;
}

/** Closed loop: CONNECTIONS connections back to back for durationMs; CPU per answer of every process involved. */
async function maxRps(t: Target, simPid: number, durationMs = DURATION_MS): Promise<RpsRun> {
  const own = t.pids();
  const [cpu0, sim0, box0] = [cpuMs(own), cpuMs([simPid]), boxCpuMs()];
  const r = await loadgen({ url: t.url, headers: t.headers, mode: "closed", durationMs });
  const [cpu, sim, box1] = [cpuMs(own) - cpu0, cpuMs([simPid]) - sim0, boxCpuMs()];
  // The CPU readings span the warm-up too, so they are divided by every answer, the warm-up's included.
  const answered = r.total ?? r.n;
  const per = (ms: number) => (answered ? (ms * 1000) / answered : Number.NaN);
  return {
    rps: r.n / (r.ms / 1000),
    errors: r.errors,
    cpuUsPerReq: per(cpu),
    loadgenUsPerReq: per(r.cpuMs ?? Number.NaN),
    simUsPerReq: own.includes(simPid) ? Number.NaN : per(sim),
    boxBusy: (box1.busy - box0.busy) / Math.max(1, box1.all - box0.all),
  };
}

/** Open loop at a fixed rate: latency distribution without coordinated omission from back-pressure. */
async function latencyAt(t: Target, rate: number): Promise<{ latencies: number[]; warmupP99: number }> {
  const r = await loadgen({ url: t.url, headers: t.headers, mode: "open", durationMs: DURATION_MS, rate });
  return { latencies: r.latencies ?? [], warmupP99: r.warmupP99 ?? Number.NaN };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function streamRun(routerUrl: string, routerPid: number): Promise<{ completed: number; failed: number; peakRss: number; idleRss: number; seconds: number }> {
  const idleRss = rssMb(routerPid);
  let peakRss = idleRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMb(routerPid))), 100);
  const agent = new http.Agent({ keepAlive: false, maxSockets: STREAMS + 10 });
  const body = JSON.stringify({ model: "stream-model", messages: [{ role: "user", content: "stream please" }], max_tokens: 40, stream: true });
  let completed = 0;
  let failed = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: STREAMS }, () =>
      new Promise<void>((resolve) => {
        const req = http.request(`${routerUrl}/v1/chat/completions`, { method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` } }, (res) => {
          let tail = "";
          res.on("data", (c: Buffer) => (tail = (tail + c.toString()).slice(-64)));
          res.on("end", () => {
            if (res.statusCode === 200 && tail.includes("[DONE]")) completed++;
            else failed++;
            resolve();
          });
          res.on("error", () => {
            failed++;
            resolve();
          });
        });
        req.on("error", () => {
          failed++;
          resolve();
        });
        req.end(body);
      }),
    ),
  );
  clearInterval(sampler);
  agent.destroy();
  return { completed, failed, peakRss, idleRss, seconds: (performance.now() - start) / 1000 };
}

async function startNginx(simPort: number): Promise<{ port: number; proc: ChildProcess } | undefined> {
  const port = await freePort();
  const dir = join(TMP, "nginx");
  mkdirSync(join(dir, "logs"), { recursive: true });
  // One worker, like the single-process router; upstream keep-alive as a production config would have.
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
error_log ${dir}/logs/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream sim { server 127.0.0.1:${simPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 100000;
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const proc = spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: ["ignore", "ignore", "inherit"] });
  children.push(proc);
  const ok = await waitHttp(`http://127.0.0.1:${port}/v1/chat/completions`, {}, 5000);
  return ok ? { port, proc } : undefined;
}

const BARE_PROXY = `
const http = require("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const up = Number(process.argv[1]);
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const r = http.request({ host: "127.0.0.1", port: up, path: req.url, method: req.method, agent,
      headers: { "content-type": "application/json", "content-length": body.length } }, (u) => {
      const parts = [];
      u.on("data", (c) => parts.push(c));
      u.on("end", () => { const b = Buffer.concat(parts); res.writeHead(u.statusCode, { "content-type": "application/json", "content-length": b.length }); res.end(b); });
    });
    r.end(body);
  });
});
srv.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ event: "listening", port: srv.address().port })));
`;

async function spawnBareNodeProxy(upstreamPort: number): Promise<{ port: number; pid: number }> {
  const proc = spawn(process.execPath, ["-e", BARE_PROXY, String(upstreamPort)], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(proc);
  return new Promise((resolve) => {
    let out = "";
    proc.stdout?.on("data", (c) => {
      out += c;
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), pid: proc.pid ?? 0 });
    });
  });
}

const PORTKEY_VERSION = "1.15.2";

/**
 * The Portkey gateway's node entry: from the repo's node_modules when resolvable, else from a cache folder
 * outside the repo (`$TUNA_BENCH_CACHE`, default ~/.cache/tuna-bench), installed there on first use with
 * `npm install --no-save --prefix`. Returns the entry or why it is unavailable.
 */
function resolvePortkey(): { entry: string } | { error: string } {
  const entryOf = (pkgJson: string) => join(dirname(pkgJson), "build", "start-server.js");
  try {
    const pkg = createRequire(join(ROOT, "package.json")).resolve("@portkey-ai/gateway/package.json");
    if (existsSync(entryOf(pkg))) return { entry: entryOf(pkg) };
  } catch {
    /* not in the repo: use the bench cache */
  }
  const prefix = join(process.env.TUNA_BENCH_CACHE || join(homedir(), ".cache", "tuna-bench"), "portkey");
  const pkg = join(prefix, "node_modules", "@portkey-ai", "gateway", "package.json");
  if (!existsSync(entryOf(pkg))) {
    console.log(`portkey: installing @portkey-ai/gateway@${PORTKEY_VERSION} into ${prefix} (outside the repo)`);
    mkdirSync(prefix, { recursive: true });
    const r = spawnSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, `@portkey-ai/gateway@${PORTKEY_VERSION}`], {
      cwd: prefix, encoding: "utf8", timeout: 300_000,
    });
    if (r.error || r.status !== 0) return { error: `npm install failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" | ")}` };
    if (!existsSync(entryOf(pkg))) return { error: `installed, but ${entryOf(pkg)} is missing` };
  }
  return { entry: entryOf(pkg) };
}

/** Portkey's node server (`--port=<n> --headless`), routed to the simulator as a custom OpenAI host. */
async function startPortkey(simPort: number): Promise<{ port: number; proc: ChildProcess; headers: Record<string, string> } | { error: string }> {
  const found = resolvePortkey();
  if ("error" in found) return found;
  const port = await freePort();
  let stderr = "";
  const proc = spawn(process.execPath, [found.entry, `--port=${port}`, "--headless"], {
    cwd: dirname(found.entry), env: { ...process.env, NODE_ENV: "production" }, stdio: ["ignore", "ignore", "pipe"],
  });
  proc.stderr?.on("data", (c) => (stderr = (stderr + c).slice(-2000)));
  children.push(proc);
  // OpenAI provider with a custom host (loopback is on Portkey's default trusted-host list).
  const headers = { authorization: "Bearer sk-bench", "x-portkey-provider": "openai", "x-portkey-custom-host": `http://127.0.0.1:${simPort}/v1` };
  const exited = new Promise<false>((r) => proc.once("exit", () => r(false)));
  const ok = await Promise.race([waitHttp(`http://127.0.0.1:${port}/v1/chat/completions`, headers, 20_000), exited]);
  if (!ok) {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    return { error: `did not answer 200 within 20 s (exit ${proc.exitCode}; ${stderr.trim().split("\n").slice(-3).join(" | ") || "no stderr"})` };
  }
  return { port, proc, headers };
}

// Spins on the clock for the given ms and reports every gap between two consecutive reads longer than 0.2 ms:
// time this thread did not run although it never yielded.
const SPIN = `const d=+process.argv[1],t0=performance.now();let l=t0;const g=[];for(;;){const n=performance.now();if(n-l>0.2)g.push(n-l);l=n;if(n-t0>d)break}process.stdout.write(JSON.stringify(g))`;

/**
 * The box's own noise floor: one spinning process per core, nothing else running. On this VM each core loses
 * the CPU for 1–13 ms about once a second without a context switch or any steal time in /proc/stat, and every
 * request in flight on that core then waits as long: that sets a floor under any target's p99.
 */
async function noiseFloor(ms: number): Promise<Array<{ over1: number; over3: number; lostMs: number; maxMs: number }>> {
  const runs = Array.from({ length: cpus().length }, () => new Promise<number[]>((resolve) => {
    const p = spawn(process.execPath, ["-e", SPIN, String(ms)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout?.on("data", (c) => (out += c));
    p.once("exit", () => resolve(out ? (JSON.parse(out) as number[]) : []));
  }));
  return (await Promise.all(runs)).map((g) => ({
    over1: g.filter((x) => x > 1).length,
    over3: g.filter((x) => x > 3).length,
    lostMs: g.reduce((a, b) => a + b, 0),
    maxMs: Math.max(0, ...g),
  }));
}

interface LatencyRounds {
  /** Per target, each round's latencies (sorted). */
  lat: Map<string, number[][]>;
  warmupP99s: Map<string, number[]>;
  /** Direct at a target's own lower rate (Portkey), per round. */
  directAt: Map<number, number[][]>;
}

/** ROUNDS rounds over every target, interleaved; a target is compared with direct in the same round at the same rate. */
async function latencyRounds(targets: Target[], rateFor: (t: Target) => number, rate: number): Promise<LatencyRounds> {
  const out: LatencyRounds = { lat: new Map(), warmupP99s: new Map(), directAt: new Map() };
  const add = <K, V>(m: Map<K, V[]>, k: K, v: V) => m.set(k, [...(m.get(k) ?? []), v]);
  for (let round = 0; round < ROUNDS; round++)
    for (const t of targets) {
      const tr = rateFor(t);
      const r = await latencyAt(t, tr);
      add(out.lat, t.name, r.latencies);
      add(out.warmupP99s, t.name, r.warmupP99);
      if (tr !== rate) add(out.directAt, tr, (await latencyAt(targets[0], tr)).latencies);
    }
  return out;
}

async function main() {
  const sim = await spawnListening(["router-service/src/sim/main.ts", "--port", "0", "--model", "bench-model"], HARNESS_NODE_FLAGS);
  const streamSim = await spawnListening(["router-service/src/sim/main.ts", "--port", "0", "--model", "stream-model", "--tokens-per-s", "20"]);
  const snap: RouterSnapshot = {
    version: 1,
    deployments: [
      { id: "dep_bench", teamId: "team_bench", slug: "bench", models: ["bench-model"], mode: "serverless", backends: [{ id: "svl", kind: "serverless", url: `http://127.0.0.1:${sim.port}` }], routing: { policy: "serverless-only" } },
      { id: "dep_stream", teamId: "team_bench", slug: "stream", models: ["stream-model"], mode: "serverless", backends: [{ id: "svl", kind: "serverless", url: `http://127.0.0.1:${streamSim.port}` }], routing: { policy: "serverless-only" } },
    ],
    apiKeys: [{ id: "key_bench", hash: hashApiKey(KEY), teamId: "team_bench", deployments: "*", limits: { rpm: 100_000_000, tpm: 1_000_000_000, maxConcurrent: 10_000 }, expiresAt: null }],
  };
  const cfgPath = join(TMP, "router.json");
  writeFileSync(cfgPath, JSON.stringify(snap));
  const router = await spawnListening(["router-service/src/main.ts", "--config", cfgPath, "--port", "0", "--host", "127.0.0.1", "--state-dir", join(TMP, "state")]);

  const targets: Target[] = [
    { name: "direct", url: `http://127.0.0.1:${sim.port}/v1/chat/completions`, headers: {}, pids: () => [sim.proc.pid ?? 0] },
    { name: "tuna router", url: `http://127.0.0.1:${router.port}/v1/chat/completions`, headers: { authorization: `Bearer ${KEY}` }, pids: () => [router.proc.pid ?? 0] },
  ];
  // A bare proxy on Node's own http server and client (body in, one keep-alive upstream call, body out,
  // nothing else): what the router cost before it had its own HTTP/1.1 fast path and upstream pool.
  const bare = await spawnBareNodeProxy(sim.port);
  targets.push({ name: "bare node:http proxy", url: `http://127.0.0.1:${bare.port}/v1/chat/completions`, headers: {}, pids: () => [bare.pid] });
  const nginx = await startNginx(sim.port);
  if (nginx) {
    const masterPid = nginx.proc.pid ?? 0;
    targets.push({ name: "nginx proxy_pass", url: `http://127.0.0.1:${nginx.port}/v1/chat/completions`, headers: {}, pids: () => [masterPid, ...childPids(masterPid)] });
  }
  else console.log("nginx: failed to start (see stderr)");
  const portkey = argv.includes("--no-portkey") ? { error: "skipped (--no-portkey)" } : await startPortkey(sim.port);
  if ("error" in portkey) console.log(`portkey: not measured: ${portkey.error}`);
  else {
    const pid = portkey.proc.pid ?? 0;
    targets.push({ name: "portkey gateway", url: `http://127.0.0.1:${portkey.port}/v1/chat/completions`, headers: portkey.headers, pids: () => [pid] });
  }

  await waitHttp(targets[1].url, targets[1].headers);
  const noiseMs = arg("noise-s", 5) * 1000;
  if (noiseMs > 0) {
    const n = await noiseFloor(noiseMs);
    console.log(`box noise floor (${noiseMs / 1000} s, one spinning process per core, nothing else running): ${n.map((c, i) => `spinner ${i + 1}: ${c.over1} stalls > 1 ms (${c.over3} > 3 ms), ${c.lostMs.toFixed(0)} ms lost, longest ${c.maxMs.toFixed(1)} ms`).join("; ")}`);
  }
  console.log(`load: ${CONNECTIONS} keep-alive connections from a raw-socket load generator in its own process, ${ROUNDS} interleaved rounds of ${DURATION_MS / 1000}s per target, non-streaming chat (16 tokens); load generator, simulator and proxy share ${cpus().length} CPU cores\n`);

  // The machine is shared (2 cores, other jobs): targets run interleaved over several rounds and the
  // median round counts, so a burst of outside load does not land on one target only.
  const simPid = sim.proc.pid ?? 0;
  const rpsRuns = new Map<string, RpsRun[]>();
  // Warm-up (JIT, keep-alive pools on every hop), discarded.
  for (const t of targets) await maxRps(t, simPid, 1000);
  for (let round = 0; round < (SKIP_RPS ? 0 : ROUNDS); round++)
    for (const t of targets) rpsRuns.set(t.name, [...(rpsRuns.get(t.name) ?? []), await maxRps(t, simPid)]);
  const rps = new Map<string, { rps: number; errors: number; cpuUsPerReq: number }>();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const us = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(0));
  for (const [name, runs] of rpsRuns) {
    rps.set(name, { rps: median(runs.map((r) => r.rps)), errors: runs.reduce((s, r) => s + r.errors, 0), cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)) });
    console.log(`${name}: RPS per round ${runs.map((r) => r.rps.toFixed(0)).join(", ")}; CPU µs/req ${runs.map((r) => r.cpuUsPerReq.toFixed(0)).join(", ")}`);
  }
  // Where the box's CPU goes per answer (median round each): the proxy is one of three processes on 2 cores,
  // so its own cost is only part of why one target's max RPS differs from another's.
  const breakdown = [["target", "load generator µs/req", "simulator µs/req", "proxy µs/req", "sum µs/req", "box busy %"]];
  for (const [name, runs] of rpsRuns) {
    const m = (f: (r: RpsRun) => number) => median(runs.map(f));
    const lg = m((r) => r.loadgenUsPerReq);
    const sm = m((r) => r.simUsPerReq);
    const px = m((r) => r.cpuUsPerReq);
    const sum = lg + (Number.isNaN(sm) ? 0 : sm) + px;
    breakdown.push([name, us(lg), us(sm), us(px), us(sum), (m((r) => r.boxBusy) * 100).toFixed(0)]);
  }
  if (rpsRuns.size) {
    console.log("\nCPU per answer at max RPS (direct: the simulator is the target):");
    printTable(breakdown);
  }
  // Added latency is measured at one common rate: half of the router's max RPS.
  const rate = arg("rate", 0) || Math.max(50, Math.floor((rps.get("tuna router")?.rps ?? 1000) / 2));
  // A target whose own max is below the common rate would only measure its queue (seconds of backlog, and a
  // saturated box for everyone else): it is measured at half of its own max instead, against direct at that rate.
  const rateFor = (t: Target) => {
    const own = rps.get(t.name)?.rps;
    return own !== undefined && own < rate ? Math.max(10, Math.floor(own / 2)) : rate;
  };
  // Latency per round (each sorted); a target is compared with direct in the same round at the same rate.
  const lat = await latencyRounds(targets, rateFor, rate);
  console.log("");

  // As for RPS, the median round counts (one burst of outside load on a shared box moves one round, not the
  // result); every round's added p99 and the p99 of all rounds pooled are printed below the table.
  const rows = [["target", "max RPS", "errors", "CPU µs/req", `p50 ms @${rate}/s`, `p99 ms @${rate}/s`, "added p50 ms", "added p99 ms"]];
  const notes: string[] = [];
  const perRound: string[] = [];
  const pooled = (rounds: number[][]) => rounds.flat().sort((x, y) => x - y);
  for (const t of targets) {
    const rounds = lat.lat.get(t.name) ?? [];
    const r = rps.get(t.name);
    const tr = rateFor(t);
    const direct = (tr === rate ? lat.lat.get("direct") : lat.directAt.get(tr)) ?? [];
    if (tr !== rate) notes.push(`* ${t.name}: latency at ${tr}/s (half of its own max; ${rate}/s is above its max), added vs direct at ${tr}/s`);
    const isDirect = t.name === "direct";
    const added = (p: number) => rounds.map((l, i) => pct(l, p) - pct(direct[i] ?? [], p));
    if (!isDirect)
      perRound.push(`${t.name} ${added(99).map((x) => x.toFixed(2)).join("/")} (pooled ${(pct(pooled(rounds), 99) - pct(pooled(direct), 99)).toFixed(2)})`);
    rows.push([
      `${t.name}${tr !== rate ? " *" : ""}`, r ? r.rps.toFixed(0) : "-", String(r?.errors ?? "-"), r ? r.cpuUsPerReq.toFixed(0) : "-",
      median(rounds.map((l) => pct(l, 50))).toFixed(3), median(rounds.map((l) => pct(l, 99))).toFixed(3),
      isDirect ? "-" : median(added(50)).toFixed(3), isDirect ? "-" : median(added(99)).toFixed(3),
    ]);
  }
  printTable(rows);
  for (const n of notes) console.log(n);
  console.log(`added p99 ms per round: ${perRound.join("; ")}`);
  console.log(`latency after ${WARMUP_MS / 1000} s of the same load per run, left out (--warmup-s); p99 within those warm-ups, per round: ${targets.map((t) => `${t.name} ${(lat.warmupP99s.get(t.name) ?? []).map((x) => x.toFixed(1)).join("/")} ms`).join("; ")}`);
  const rr = rps.get("tuna router")?.rps ?? 0;
  const fr = rps.get("bare node:http proxy")?.rps;
  if (fr) console.log(`\nrouter / bare node:http proxy RPS = ${(rr / fr).toFixed(2)} (the router does auth, limits, routing, metrics and usage on top)`);
  const nr = rps.get("nginx proxy_pass")?.rps;
  if (nr) console.log(`router / nginx RPS = ${(rr / nr).toFixed(2)} (target ≥ 0.70)`);
  const rc = rps.get("tuna router")?.cpuUsPerReq;
  const nc = rps.get("nginx proxy_pass")?.cpuUsPerReq;
  if (rc && nc) console.log(`CPU per request: router ${rc.toFixed(0)} µs vs nginx ${nc.toFixed(0)} µs → one router core ≈ ${(1e6 / rc).toFixed(0)} req/s, one nginx worker ≈ ${(1e6 / nc).toFixed(0)} req/s (noise-resistant capacity)`);
  const pr = rps.get("portkey gateway")?.rps;
  const pc = rps.get("portkey gateway")?.cpuUsPerReq;
  if (pr) console.log(`router / portkey RPS = ${(rr / pr).toFixed(2)} (target ≥ 2.0); CPU per request: router ${rc?.toFixed(0)} µs vs portkey ${pc?.toFixed(0)} µs`);
  else console.log("router / portkey RPS: n/a (portkey not measured)");

  const s = await streamRun(targets[1].url.replace("/v1/chat/completions", ""), router.proc.pid ?? 0);
  console.log(`\n${STREAMS} concurrent SSE streams (40 tokens at 20 tok/s) through the router: ${s.completed} completed, ${s.failed} failed in ${s.seconds.toFixed(1)} s; router RSS idle ${s.idleRss.toFixed(0)} MB, peak ${s.peakRss.toFixed(0)} MB (target ≤ 250 MB)`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    // SIGTERM, not SIGKILL: nginx's master must stop its workers, or they outlive the bench.
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  });
