import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { dataDir } from "../../lib/keys";

/**
 * Process and state-file plumbing of the local provider. Each resource is one simulator process in its own
 * process group, described by `<stateDir>/<resourceName>.json`, so status/destroy work from any process and
 * after a restart of the control plane.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, "../../..");

/** Beside the rest of the embedded default's state (TUNA_DATA_DIR, `.tuna/` by default), unless set apart. */
export function stateDir(): string {
  return process.env.TUNA_LOCAL_PROVIDER_DIR ?? path.join(dataDir(), "local-provider");
}

export function simulatorPath(): string {
  return process.env.TUNA_LOCAL_SIM_PATH ?? path.join(REPO_ROOT, "router-service", "src", "sim", "main.ts");
}

export const localStateSchema = z.object({
  version: z.literal(1),
  resourceName: z.string(),
  kind: z.enum(["serverless", "spot"]),
  pid: z.number().int().positive(),
  /** 0 until the simulator reported the port it listens on. */
  port: z.number().int().min(0).max(65_535),
  model: z.string(),
  logFile: z.string(),
  startedAt: z.string(),
  preemptedAt: z.string().optional(),
  destroyedAt: z.string().optional(),
});
export type LocalState = z.infer<typeof localStateSchema>;

export function stateFileFor(resourceName: string): string {
  return path.join(stateDir(), `${resourceName}.json`);
}

export function readState(file: string): LocalState | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const parsed = localStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`local provider: state file ${file} is not valid: ${parsed.error.message}`);
  return parsed.data;
}

/** Atomic write (rename), so a reader in another process never sees half a file. */
export function writeState(file: string, state: LocalState): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function removeFile(file: string): void {
  rmSync(file, { force: true });
}

/** Marker on the simulator's command line: identifies our process when a pid might have been reused. */
export function resourceMarker(resourceName: string): string {
  return `--tuna-resource=${resourceName}`;
}

/**
 * True when `pid` is a live (non-zombie) process that is the simulator of `resourceName`. Where /proc is
 * missing (macOS) the marker cannot be checked and a live pid is trusted.
 */
export function isOurProcessAlive(pid: number, resourceName: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const proc = `/proc/${pid}`;
  if (!existsSync("/proc/self")) return true;
  try {
    const stat = readFileSync(`${proc}/stat`, "utf8");
    const stateChar = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (stateChar === "Z" || stateChar === "X") return false;
    const cmdline = readFileSync(`${proc}/cmdline`, "utf8").split("\0");
    return cmdline.includes(resourceMarker(resourceName));
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** SIGTERM the process group, wait, then SIGKILL. Returns once the process is gone. */
export async function killProcessGroup(pid: number, resourceName: string, graceMs = 3000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig); // the simulator leads its own group (spawned detached)
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  if (!isOurProcessAlive(pid, resourceName)) return;
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isOurProcessAlive(pid, resourceName)) return;
    await sleep(50);
  }
  signal("SIGKILL");
  const hard = Date.now() + 2000;
  while (Date.now() < hard && isOurProcessAlive(pid, resourceName)) await sleep(50);
}

/**
 * Stops every simulator recorded in `dir` (a local-provider state folder) that still runs, and returns how many
 * it stopped. For test runners that throw their data folder away: what they started must not outlive them.
 */
export async function stopAllSimulators(dir: string = stateDir()): Promise<number> {
  let names: string[];
  try {
    // turbopackIgnore: a runtime folder, not a source dependency (else the build traces the whole project).
    names = readdirSync(/*turbopackIgnore: true*/ dir).filter((n) => n.endsWith(".json"));
  } catch {
    return 0;
  }
  let stopped = 0;
  await Promise.all(
    names.map(async (n) => {
      let s: LocalState | undefined;
      try {
        s = readState(path.join(dir, n));
      } catch {
        return; // not a state file we can read: nothing of ours to stop
      }
      if (!s || !isOurProcessAlive(s.pid, s.resourceName)) return;
      await killProcessGroup(s.pid, s.resourceName, 1000);
      stopped++;
    }),
  );
  return stopped;
}

export interface SpawnedSimulator {
  child: ChildProcess;
  pid: number;
  logFile: string;
}

export function spawnSimulator(opts: {
  resourceName: string;
  model: string;
  coldStartMs: number;
  ttftMs: number;
  tokensPerS: number;
}): SpawnedSimulator {
  const dir = stateDir();
  mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, `${opts.resourceName}.log`);
  const fd = openSync(logFile, "w", 0o600);
  try {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        simulatorPath(),
        // Port 0: the simulator binds a free port and reports it, so there is no pick-then-bind race.
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        // `=` form: a model name starting with "--" must not be read as a flag.
        `--model=${opts.model}`,
        "--cold-start-ms",
        String(opts.coldStartMs),
        "--ttft-ms",
        String(opts.ttftMs),
        "--tokens-per-s",
        String(opts.tokensPerS),
        resourceMarker(opts.resourceName),
      ],
      { cwd: REPO_ROOT, detached: true, stdio: ["ignore", fd, fd], env: process.env },
    );
    if (child.pid === undefined) throw new Error("local provider: could not start the simulator (no pid)");
    child.unref();
    return { child, pid: child.pid, logFile };
  } finally {
    closeSync(fd);
  }
}

/** The port from the simulator's `{"event":"listening","port":n}` line, once it is in the log. */
export function listeningPort(logFile: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const ev = JSON.parse(line) as { event?: unknown; port?: unknown };
      if (ev.event === "listening" && typeof ev.port === "number") return ev.port;
    } catch {
      /* not our line */
    }
  }
  return undefined;
}

export function logTail(logFile: string, chars = 600): string {
  try {
    const t = readFileSync(logFile, "utf8").trim();
    return t.length > chars ? `…${t.slice(-chars)}` : t;
  } catch {
    return "";
  }
}
