import { readFileSync } from "node:fs";
import path from "node:path";
import { cliNoSuchCommand, cliNotInstalled, cliOk, commandLinesOf, type FakeCliCall, OutcomeQueues, recordCliCall } from "../base/fake-server";
import type { ExecResult, ProviderContext } from "../base/types";

/**
 * A fake `modal` CLI for tests (provider-apis.md §6: "fake the CLI, not an HTTP API"). It checks the token
 * env vars, keeps apps, secrets and volumes, reads the files the provider wrote (so tests can assert the
 * exact app that was deployed), prints deploy output in Modal's format, and can fail a command N times.
 */

export type { FakeCliCall };

/**
 * Options each sub-command accepts (provider-apis.md §6), with how many values each takes. Anything else is a
 * click usage error (exit 2), as the real CLI answers an option or command its version does not have.
 */
const OPTIONS: Record<string, Record<string, number>> = {
  deploy: { "--name": 1, "--env": 1, "-e": 1 },
  "app list": { "--json": 0, "--env": 1, "-e": 1 },
  "app stop": { "--yes": 0, "-y": 0, "--env": 1, "-e": 1 },
  "secret create": { "--from-json": 1, "--force": 0, "--env": 1, "-e": 1 },
  "secret list": { "--json": 0, "--env": 1, "-e": 1 },
  "secret delete": { "--yes": 0, "-y": 0, "--env": 1, "-e": 1 },
  "volume list": { "--json": 0, "--env": 1, "-e": 1 },
  "volume delete": { "--yes": 0, "-y": 0, "--env": 1, "-e": 1 },
};

/** Click's usage error: usage line, help hint, the error; exit 2. */
function usageError(usage: string, help: string, error: string): ExecResult {
  return { code: 2, stdout: "", stderr: `Usage: ${usage}\nTry '${help} --help' for help.\n\nError: ${error}\n` };
}

export interface FakeModalApp {
  id: string;
  name: string;
  state: "deployed" | "stopped";
  tasks: number;
  source: string;
  /** Environment its containers get from the attached secrets, as of the last deploy (which restarts them). */
  env: Record<string, string>;
}

export class FakeModalCli {
  readonly calls: FakeCliCall[] = [];
  readonly apps = new Map<string, FakeModalApp>();
  readonly secrets = new Map<string, Record<string, string>>();
  readonly volumes = new Set<string>();
  installed = true;
  workspace = "tuna-team";
  /** When false, deploy prints no `=> https://…modal.run` line (only the dashboard link). */
  printWebUrl = true;
  /** Sub-commands ("secret delete") this CLI version lacks: `modal secret delete` is "No such command 'delete'". */
  readonly missingCommands = new Set<string>();
  /** "sub option" pairs this CLI version lacks (`removeOption`); clear it to restore them. */
  readonly missingOptions = new Set<string>();
  private readonly failures = new OutcomeQueues<{ code: number; stderr: string | (() => string) }>();
  private nextId = 1;

  constructor(
    readonly tokenId = "ak-fake-token-id-1234",
    readonly tokenSecret = "as-fake-token-secret-5678",
  ) {}

  /**
   * The next `times` runs of `modal <sub>` (e.g. "deploy", "app stop") exit `code` with `stderr` (a function
   * is called at run time, e.g. to echo a secret the fake holds by then).
   */
  fail(sub: string, times: number, stderr: string | (() => string), code = 1): void {
    this.failures.add(sub, times, { code, stderr });
  }

  /** Simulates a CLI version where `sub` has no `option`: using it is a usage error (exit 2). */
  removeOption(sub: string, option: string): void {
    this.missingOptions.add(`${sub} ${option}`);
  }

  liveApps(): FakeModalApp[] {
    return [...this.apps.values()].filter((a) => a.state === "deployed");
  }

  setTasks(name: string, tasks: number): void {
    const app = this.apps.get(name);
    if (!app) throw new Error(`fake modal: no app ${name}`);
    app.tasks = tasks;
  }

  /** Args of every call, as `modal a b c` strings. */
  commandLines(): string[] {
    return commandLinesOf(this.calls);
  }

  readonly exec: NonNullable<ProviderContext["exec"]> = async (cmd, args, opts) => {
    const call = recordCliCall(this.calls, cmd, args, opts);
    if (!this.installed || cmd !== "modal") throw cliNotInstalled(cmd);
    if (args[0] === "--version") return cliOk("modal client version: 1.2.1\n");

    const group = args[0] === "app" || args[0] === "secret" || args[0] === "volume";
    const sub = group ? `${args[0]} ${args[1]}` : args[0];
    if (this.missingCommands.has(sub) || !OPTIONS[sub]) {
      return group ? usageError(`modal ${args[0]} [OPTIONS] COMMAND [ARGS]...`, `modal ${args[0]}`, `No such command '${args[1]}'.`) : cliNoSuchCommand(args.join(" "));
    }
    const usage = this.checkOptions(sub, args.slice(group ? 2 : 1));
    if (usage) return usage;
    const failure = this.failures.next(sub);
    if (failure) return { code: failure.code, stdout: "", stderr: typeof failure.stderr === "function" ? failure.stderr() : failure.stderr };

    if (call.env.MODAL_TOKEN_ID !== this.tokenId || call.env.MODAL_TOKEN_SECRET !== this.tokenSecret) {
      return { code: 1, stdout: "", stderr: "Error: Token validation failed: invalid token id or secret (AuthError)\n" };
    }
    const read = (rel: string) => {
      const content = readFileSync(path.resolve(opts.cwd ?? ".", rel), "utf8");
      call.files[rel] = content;
      return content;
    };

    switch (sub) {
      case "deploy":
        return this.deploy(read(args[1]));
      case "app list":
        return cliOk(
          JSON.stringify(
            [...this.apps.values()].map((a) => ({
              "App ID": a.id,
              Description: a.name,
              State: a.state,
              Tasks: String(a.tasks),
              "Created at": "2026-11-27 02:00:00+00:00",
              "Stopped at": a.state === "stopped" ? "2026-11-27 03:00:00+00:00" : null,
            })),
          ),
        );
      case "secret list":
        return cliOk(JSON.stringify([...this.secrets.keys()].map((name) => ({ Name: name, "Created at": "2026-11-27 02:00:00+00:00", "Created by": "tuna", "Last used at": null }))));
      case "volume list":
        return cliOk(JSON.stringify([...this.volumes].map((name) => ({ Name: name, "Created at": "2026-11-27 02:00:00+00:00", "Created by": "tuna" }))));
      case "app stop": {
        const app = this.apps.get(args[2]);
        if (!app || app.state === "stopped") return { code: 1, stdout: "", stderr: `Error: Could not find a deployed app named '${args[2]}'\n` };
        app.state = "stopped";
        app.tasks = 0;
        return cliOk(`Stopped app ${app.id}\n`);
      }
      case "secret create": {
        const name = args[2];
        const fromJson = args[args.indexOf("--from-json") + 1];
        if (this.secrets.has(name) && !args.includes("--force")) return { code: 1, stdout: "", stderr: `Error: Secret '${name}' already exists\n` };
        this.secrets.set(name, JSON.parse(read(fromJson)) as Record<string, string>);
        return cliOk(`Created secret '${name}'\n`);
      }
      case "secret delete":
        if (!this.secrets.delete(args[2])) return { code: 1, stdout: "", stderr: `Error: Secret '${args[2]}' not found\n` };
        return cliOk("");
      case "volume delete":
        if (!this.volumes.delete(args[2])) return { code: 1, stdout: "", stderr: `Error: Volume '${args[2]}' not found\n` };
        return cliOk("");
      default:
        return cliNoSuchCommand(args.join(" "));
    }
  };

  /** Unknown options (or ones removed with `removeOption`) and a missing option value are usage errors. */
  private checkOptions(sub: string, rest: string[]): ExecResult | undefined {
    const known = OPTIONS[sub];
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i];
      if (!a.startsWith("-")) continue;
      if (known[a] === undefined || this.missingOptions.has(`${sub} ${a}`)) return usageError(`modal ${sub} [OPTIONS] ARGS...`, `modal ${sub}`, `No such option: ${a}`);
      if (known[a] > 0 && (i + 1 >= rest.length || rest[i + 1].startsWith("-"))) return usageError(`modal ${sub} [OPTIONS] ARGS...`, `modal ${sub}`, `Option '${a}' requires an argument.`);
      i += known[a];
    }
    return undefined;
  }

  private deploy(source: string): ExecResult {
    const literal = (name: string) => {
      const m = new RegExp(`^${name} = (.+)$`, "m").exec(source);
      return m ? (JSON.parse(m[1]) as unknown) : undefined;
    };
    const name = literal("APP_NAME");
    if (typeof name !== "string" || !/modal\.App\(APP_NAME\)/.test(source)) return { code: 1, stdout: "", stderr: "Error: no modal.App found in app.py\n" };
    if (!/@modal\.web_server\(/.test(source)) return { code: 1, stdout: "", stderr: "Error: app has no web endpoint\n" };
    const env: Record<string, string> = {};
    for (const s of (literal("SECRET_NAMES") as string[] | undefined) ?? []) {
      const values = this.secrets.get(s);
      if (!values) return { code: 1, stdout: "", stderr: `Error: Secret '${s}' not found in environment 'main'\n` };
      Object.assign(env, values);
    }
    for (const m of source.matchAll(/modal\.Volume\.from_name\(("[^"]*"), create_if_missing=True\)/g)) this.volumes.add(JSON.parse(m[1]) as string);
    const existing = this.apps.get(name);
    const app: FakeModalApp = existing && existing.state === "deployed" ? existing : { id: `ap-${this.nextId++}`, name, state: "deployed", tasks: 0, source, env };
    app.source = source;
    app.env = env;
    this.apps.set(name, app);
    const url = `https://${this.workspace}--${name}-serve.modal.run`;
    return cliOk(
      [
        "✓ Created objects.",
        `├── 🔨 Created mount ${path.join("/tmp", "app.py")}`,
        this.printWebUrl ? `└── 🔨 Created web function serve => ${url}` : "└── 🔨 Created web function serve",
        `✓ App deployed in 3.1s! 🎉`,
        "",
        `View Deployment: https://modal.com/apps/${this.workspace}/main/deployed/${name}`,
        "",
      ].join("\n"),
    );
  }
}
