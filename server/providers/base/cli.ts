import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ProviderError, redact } from "./errors";
import type { ExecResult, ProviderContext } from "./types";

/**
 * Running provider CLIs (`modal`, `truss`, `cerebrium`) as subprocesses. Shared by the CLI-driven providers
 * (Modal, Baseten, Cerebrium); tests replace `ctx.exec` with a fake.
 *
 * The default runner gives the child a minimal environment (PATH, HOME, locale) plus what the caller passes,
 * so credentials reach only that subprocess and the control plane's own secrets (database URL, master key)
 * never reach a third-party CLI.
 */

type ExecFn = NonNullable<ProviderContext["exec"]>;

const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"];

export const spawnExec: ExecFn = (cmd, args, opts) =>
  new Promise<ExecResult>((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k] as string;
    Object.assign(env, opts.env ?? {});
    // Cast: some typings (Next.js) make NODE_ENV a required ProcessEnv key; the child does not need it.
    const child = spawn(cmd, args, { cwd: opts.cwd, env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGTERM");
        }, opts.timeoutMs)
      : undefined;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: timedOut ? 124 : (code ?? 1), stdout, stderr: timedOut ? `${stderr}\ntimed out after ${opts.timeoutMs} ms` : stderr });
    });
    // A child that never started (ENOENT) or ignores stdin closes the pipe: that is not our error to raise.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });

export interface CliCall {
  provider: string;
  /** What to tell the user when the CLI is not installed. */
  installHint: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
  /** Values scrubbed from any error text. */
  secrets: Array<string | undefined>;
}

/** Runs a CLI; a missing binary (ENOENT, exit 127) becomes a `cli_missing` ProviderError. */
export async function runCli(ctx: ProviderContext, call: CliCall): Promise<ExecResult> {
  const exec = ctx.exec ?? spawnExec;
  let res: ExecResult;
  try {
    res = await exec(call.cmd, call.args, { cwd: call.cwd, env: call.env, input: call.input, timeoutMs: call.timeoutMs });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw cliMissing(call);
    throw new ProviderError({
      provider: call.provider,
      code: "failed",
      message: redact(`${call.cmd} ${call.args[0] ?? ""} could not run: ${(err as Error).message}`, call.secrets),
    });
  }
  if (res.code === 127 && /not found|No such file/i.test(res.stderr)) throw cliMissing(call);
  return res;
}

function cliMissing(call: CliCall): ProviderError {
  return new ProviderError({ provider: call.provider, code: "cli_missing", message: `the \`${call.cmd}\` CLI is not installed on the control plane (${call.installHint})` });
}

const ANSI_SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** Removes terminal colour codes (CLIs print them even with --no-color at times). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_SGR, "");
}

/** The last meaningful lines of a CLI's output, secrets removed, for error messages. */
export function cliOutputTail(res: ExecResult, secrets: Array<string | undefined>, maxLines = 8): string {
  const text = `${res.stderr}\n${res.stdout}`
    .split("\n")
    .map((l) => stripAnsi(l).trimEnd())
    .filter((l) => l.trim())
    .slice(-maxLines)
    .join(" | ");
  return redact(text, secrets).slice(0, 1500);
}

/** A 0700 temp dir holding the given files (0600), removed after `fn` whatever happens. */
export async function withTempFiles<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), "tuna-"));
  try {
    for (const [rel, content] of Object.entries(files)) {
      const target = path.join(dir, rel);
      if (!target.startsWith(dir + path.sep)) throw new Error(`refusing to write outside the temp dir: ${rel}`);
      await writeFile(target, content, { mode: 0o600 });
    }
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
