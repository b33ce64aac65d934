import { type ChildProcess, spawn } from "node:child_process";

export interface SupervisedSpec {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  name: string;
  /** Start it again when it exits on its own (default: its exit stops everything). */
  restart?: boolean;
}

export interface SupervisorHooks {
  /** Every child started, for the launcher's shutdown (removed again when a restarted one has exited). */
  children: ChildProcess[];
  isStopping: () => boolean;
  log: (msg: string) => void;
  /** Everything must stop, with this exit code. */
  stopAll: (code: number) => void;
  /** First restart delay, doubled per quick exit up to `maxDelayMs` (defaults 1 s and 30 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** An exit this soon after its start counts towards a crash loop (default 60 s)… */
  quickExitMs?: number;
  /** …and more than this many in a row stop everything (default 5). */
  maxQuickExits?: number;
}

/**
 * Runs a child for the life of the launcher. When it exits on its own, everything stops, except for a
 * `restart` child (the router): it is started again after 1, 2, 4… s (at most 30 s) while the dashboard and
 * the database stay up, unless it keeps exiting soon after its start; then everything stops, because a child
 * that cannot start is a configuration problem to fix, not to retry forever.
 */
export function supervise(spec: SupervisedSpec, hooks: SupervisorHooks): void {
  const base = hooks.baseDelayMs ?? 1000;
  const max = hooks.maxDelayMs ?? 30_000;
  const quickMs = hooks.quickExitMs ?? 60_000;
  const maxQuick = hooks.maxQuickExits ?? 5;
  let quickExits = 0;
  const start = () => {
    const startedAt = Date.now();
    const child = spawn(spec.cmd, spec.args, { cwd: spec.cwd, env: spec.env, stdio: "inherit" });
    hooks.children.push(child);
    child.on("exit", (code, signal) => {
      if (hooks.isStopping()) return;
      const how = code ?? signal;
      if (!spec.restart) {
        hooks.log(`${spec.name} exited (${how}); stopping`);
        hooks.stopAll(code ?? 1);
        return;
      }
      hooks.children.splice(hooks.children.indexOf(child), 1);
      quickExits = Date.now() - startedAt < quickMs ? quickExits + 1 : 1;
      if (quickExits > maxQuick) {
        hooks.log(`${spec.name} exited (${how}) ${quickExits} times in a row soon after starting; stopping`);
        hooks.stopAll(code || 1);
        return;
      }
      const delayMs = Math.min(max, base * 2 ** (quickExits - 1));
      hooks.log(`${spec.name} exited (${how}); restarting it in ${delayMs / 1000} s (the dashboard keeps running)`);
      setTimeout(() => {
        if (!hooks.isStopping()) start();
      }, delayMs);
    });
  };
  start();
}
