import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { z } from "zod";
import { gpuNames } from "../../catalog/gpus";
import { buildEngineArgs, engineCommandShell, engineNotes, validateSpec } from "../base/engine";
import { ProviderError } from "../base/errors";
import type {
  Component,
  ComponentKind,
  ComponentStatus,
  Credentials,
  DeploymentSpec,
  Finding,
  Plan,
  Provider,
  ProviderContext,
  ResourceRef,
} from "../base/types";
import {
  isOurProcessAlive,
  killProcessGroup,
  listeningPort,
  type LocalState,
  logTail,
  readState,
  REPO_ROOT,
  removeFile,
  simulatorPath,
  spawnSimulator,
  stateDir,
  stateFileFor,
  writeState,
} from "./process";

/**
 * The `local` provider: each component is a GPU simulator process (router-service/src/sim) on loopback.
 * It needs no account, so the embedded default and the end-to-end tests run the whole product with it.
 * `local` plays a serverless provider (short cold start), `local-spot` a spot fleet (long cold start,
 * can be preempted with `preemptLocal`).
 */

export interface LocalProviderOptions {
  kind: ComponentKind;
  /** Defaults: serverless 1500 ms (env TUNA_LOCAL_COLD_START_MS), spot 4000 ms (env TUNA_LOCAL_SPOT_COLD_START_MS). */
  coldStartMs?: number;
  /** Default 50 ms (env TUNA_LOCAL_TTFT_MS). */
  ttftMs?: number;
  /** Default 200 (env TUNA_LOCAL_TOKENS_PER_S). */
  tokensPerS?: number;
}

const simulatorRequestSchema = z.object({
  model: z.string().min(1),
  coldStartMs: z.number().int().min(0),
  ttftMs: z.number().int().min(0),
  tokensPerS: z.number().min(0),
});

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ProviderError({ provider: "local", code: "validation", message: `${name} must be a non-negative integer, got ${JSON.stringify(v)}` });
  return n;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function stateFileOf(ref: ResourceRef): string {
  const fromIds = ref.externalIds.stateFile;
  if (fromIds && existsSync(fromIds)) return fromIds;
  return stateFileFor(ref.resourceName);
}

function componentOf(name: string, kind: ComponentKind, state: LocalState, file: string): Component {
  return {
    provider: name,
    kind,
    endpointUrl: `http://127.0.0.1:${state.port}`,
    // The simulator has no upstream auth; it only listens on loopback.
    upstreamHeaders: {},
    externalIds: { pid: String(state.pid), port: String(state.port), stateFile: file },
  };
}

function assertResourceName(name: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
    throw new ProviderError({ provider: "local", code: "validation", message: `invalid resource name ${JSON.stringify(name)}` });
  }
}

export function createLocalProvider(opts: LocalProviderOptions): Provider {
  const kind = opts.kind;
  const name = kind === "serverless" ? "local" : "local-spot";
  const fail = (code: ConstructorParameters<typeof ProviderError>[0]["code"], message: string) =>
    new ProviderError({ provider: name, code, message });

  const provider: Provider = {
    name,
    displayName: kind === "serverless" ? "Local simulator (serverless)" : "Local simulator (spot)",
    kind,
    credentialsSchema: z.object({}) as unknown as z.ZodType<Credentials>,

    supportedGpus: () => gpuNames(),

    plan(input: DeploymentSpec): Plan {
      const spec = validateSpec(input);
      const coldStartMs =
        opts.coldStartMs ??
        (kind === "serverless" ? envInt("TUNA_LOCAL_COLD_START_MS") ?? 1500 : envInt("TUNA_LOCAL_SPOT_COLD_START_MS") ?? 4000);
      const simulator = {
        model: spec.servedModelName,
        coldStartMs,
        ttftMs: opts.ttftMs ?? envInt("TUNA_LOCAL_TTFT_MS") ?? 50,
        tokensPerS: opts.tokensPerS ?? envInt("TUNA_LOCAL_TOKENS_PER_S") ?? 200,
      };
      return {
        provider: name,
        kind,
        resourceName: `${spec.name}-${kind === "serverless" ? "svl" : "spot"}`,
        gpu: { catalogName: spec.gpu, providerGpuId: spec.gpu, count: spec.gpuCount },
        region: "local",
        request: { simulator, engineArgs: buildEngineArgs(spec) },
        files: { "engine-command.sh": `${engineCommandShell(spec)}\n` },
        env: {},
        secretEnv: [...spec.secretNames],
        notes: [
          `simulated ${kind} backend on 127.0.0.1 (cold start ${coldStartMs} ms); engine-command.sh is what a real GPU would run`,
          ...engineNotes(spec),
        ],
      };
    },

    async preflight(plan: Plan): Promise<Finding[]> {
      const findings: Finding[] = [];
      const sim = simulatorPath();
      if (!existsSync(sim)) {
        findings.push({ level: "error", code: "simulator_missing", message: `GPU simulator not found at ${sim}; set TUNA_LOCAL_SIM_PATH or restore router-service/src/sim/main.ts` });
      }
      try {
        createRequire(path.join(REPO_ROOT, "package.json")).resolve("tsx");
      } catch {
        findings.push({ level: "error", code: "cli_missing", message: "tsx is not installed in the repository; run npm install" });
      }
      try {
        await new Promise<void>((resolve, reject) => {
          const srv = net.createServer();
          srv.once("error", reject);
          srv.listen(0, "127.0.0.1", () => srv.close(() => resolve()));
        });
      } catch (err) {
        findings.push({ level: "error", code: "ports", message: `cannot bind a loopback port: ${(err as Error).message}` });
      }
      try {
        mkdirSync(stateDir(), { recursive: true });
      } catch (err) {
        findings.push({ level: "error", code: "state_dir", message: `cannot create ${stateDir()}: ${(err as Error).message}; set TUNA_LOCAL_PROVIDER_DIR` });
      }
      if (plan.provider !== name) {
        findings.push({ level: "error", code: "wrong_provider", message: `plan is for ${plan.provider}, not ${name}` });
      }
      findings.push({ level: "info", code: "no_credentials", message: "the local simulator needs no credentials" });
      return findings;
    },

    async deploy(plan: Plan, _creds: Credentials, ctx: ProviderContext = {}): Promise<Component> {
      assertResourceName(plan.resourceName);
      const parsed = simulatorRequestSchema.safeParse(plan.request.simulator);
      if (!parsed.success) throw fail("validation", `plan.request.simulator is invalid: ${parsed.error.message}`);
      const sim = parsed.data;
      if (!existsSync(simulatorPath())) throw fail("cli_missing", `GPU simulator not found at ${simulatorPath()}`);

      const file = stateFileFor(plan.resourceName);
      // Idempotent: a retried deploy step finds the simulator it already started.
      const existing = readState(file);
      if (existing && !existing.destroyedAt && existing.port > 0 && isOurProcessAlive(existing.pid, plan.resourceName)) {
        ctx.log?.("local: reusing running simulator", { resourceName: plan.resourceName, pid: existing.pid });
        return componentOf(name, kind, existing, file);
      }
      if (existing && isOurProcessAlive(existing.pid, plan.resourceName)) await killProcessGroup(existing.pid, plan.resourceName);

      const spawned = spawnSimulator({ resourceName: plan.resourceName, ...sim });
      let exited: string | undefined;
      spawned.child.once("exit", (code, signal) => {
        exited = signal ? `signal ${signal}` : `code ${code}`;
      });
      const state: LocalState = {
        version: 1,
        resourceName: plan.resourceName,
        kind,
        pid: spawned.pid,
        port: 0,
        model: sim.model,
        logFile: spawned.logFile,
        startedAt: new Date().toISOString(),
      };
      // Written before the port is known so destroy can stop a simulator whose deploy timed out.
      writeState(file, state);

      const timeoutMs = ctx.timeoutMs ?? 30_000;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const port = listeningPort(spawned.logFile);
        if (port) {
          state.port = port;
          writeState(file, state);
          ctx.log?.("local: simulator listening", { resourceName: plan.resourceName, pid: spawned.pid, port });
          return componentOf(name, kind, state, file);
        }
        if (exited || !isOurProcessAlive(spawned.pid, plan.resourceName)) {
          // The process can be gone a moment before Node reports its exit: give the exit code a moment to arrive.
          for (let i = 0; !exited && i < 40; i++) await sleep(25);
          throw fail("failed", `simulator exited before listening (${exited ?? "gone"}): ${logTail(spawned.logFile)}`);
        }
        if (Date.now() > deadline) {
          await killProcessGroup(spawned.pid, plan.resourceName);
          throw fail("timeout", `simulator did not report a port within ${timeoutMs} ms: ${logTail(spawned.logFile)}`);
        }
        await sleep(50);
      }
    },

    async status(ref: ResourceRef, _creds: Credentials, ctx: ProviderContext = {}): Promise<ComponentStatus> {
      const file = stateFileOf(ref);
      const state = readState(file);
      if (!state || state.destroyedAt) return { state: "gone" };
      const url = `http://127.0.0.1:${state.port}`;
      if (!isOurProcessAlive(state.pid, state.resourceName)) {
        return {
          state: "failed",
          message: state.preemptedAt
            ? `preempted at ${state.preemptedAt} (simulated spot reclaim)`
            : `simulator process ${state.pid} exited unexpectedly: ${logTail(state.logFile, 300)}`,
          replicas: { ready: 0, total: 1 },
        };
      }
      if (state.port === 0) return { state: "creating", message: "simulator starting", replicas: { ready: 0, total: 1 } };
      const doFetch = ctx.fetch ?? fetch;
      try {
        const res = await doFetch(`${url}/v1/models`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        if (res.ok) return { state: "ready", replicas: { ready: 1, total: 1 }, endpointUrl: url };
        if (/preempt/i.test(body)) return { state: "failed", message: "being preempted", replicas: { ready: 0, total: 1 }, endpointUrl: url };
        return { state: "creating", message: `model loading (HTTP ${res.status})`, replicas: { ready: 0, total: 1 }, endpointUrl: url };
      } catch (err) {
        return { state: "creating", message: `not answering yet: ${(err as Error).message}`, replicas: { ready: 0, total: 1 }, endpointUrl: url };
      }
    },

    async destroy(ref: ResourceRef): Promise<void> {
      const file = stateFileOf(ref);
      const state = readState(file);
      if (!state) return;
      await killProcessGroup(state.pid, state.resourceName);
      if (!state.destroyedAt) writeState(file, { ...state, destroyedAt: new Date().toISOString() });
    },

    async cleanupStorage(ref: ResourceRef): Promise<void> {
      const file = stateFileOf(ref);
      const state = readState(file);
      if (state) {
        // Never orphan a running simulator by forgetting its pid.
        await killProcessGroup(state.pid, state.resourceName);
        removeFile(state.logFile);
      }
      removeFile(file);
    },
  };
  return provider;
}

export const localServerless: Provider = createLocalProvider({ kind: "serverless" });
export const localSpot: Provider = createLocalProvider({ kind: "spot" });

/**
 * Simulates a spot reclaim: the simulator answers 503 for `graceMs`, then exits. Waits until it is gone.
 * Status then reports `failed` with "preempted".
 */
export async function preemptLocal(ref: ResourceRef, opts: { graceMs?: number } = {}): Promise<void> {
  const file = stateFileOf(ref);
  const state = readState(file);
  if (!state || state.destroyedAt) throw new ProviderError({ provider: "local-spot", code: "not_found", message: `${ref.resourceName} is not running` });
  const graceMs = opts.graceMs ?? 200;
  writeState(file, { ...state, preemptedAt: new Date().toISOString() });
  try {
    const res = await fetch(`http://127.0.0.1:${state.port}/_sim/fault`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mode: "preempt", delayMs: graceMs }),
      signal: AbortSignal.timeout(2000),
    });
    await res.arrayBuffer();
  } catch {
    /* not answering: the kill below is the reclaim */
  }
  const deadline = Date.now() + graceMs + 3000;
  while (Date.now() < deadline && isOurProcessAlive(state.pid, state.resourceName)) await sleep(50);
  // A cloud reclaim is not optional: make sure the instance is gone.
  await killProcessGroup(state.pid, state.resourceName, 500);
}

/** Polls `status` until ready (or failed/gone, or timeout). For tests and the embedded demo. */
export async function waitForLocalReady(provider: Provider, ref: ResourceRef, timeoutMs = 30_000): Promise<ComponentStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await provider.status(ref, {});
    if (s.state === "ready" || s.state === "failed" || s.state === "gone" || Date.now() > deadline) return s;
    await sleep(100);
  }
}
