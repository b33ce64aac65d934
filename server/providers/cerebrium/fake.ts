import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { ExecResult, ProviderContext } from "../base/types";

/**
 * Fake Cerebrium: the REST app routes (`/v2/projects/{project}/apps[/{appId}]`, Bearer service-account
 * token, 401/404 JSON errors) on loopback, and a fake `cerebrium` CLI whose `deploy` reads cerebrium.toml,
 * authenticates from `CEREBRIUM_SERVICE_ACCOUNT_TOKEN` / `CEREBRIUM_PROJECT_ID` and creates the app.
 * App ids are `<project>-<name>` (provider-apis.md §7, unverified upstream: kept here in one place).
 */

export interface FakeCliCall {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  files: Record<string, string>;
}

export interface FakeCerebriumApp {
  id: string;
  name: string;
  status: string;
  replicas: number;
  config: string;
}

export class FakeCerebrium {
  readonly requests: Array<{ method: string; path: string; headers: Record<string, string> }> = [];
  readonly calls: FakeCliCall[] = [];
  readonly apps = new Map<string, FakeCerebriumApp>();
  cliInstalled = true;
  url = "";
  private server?: Server;
  private readonly deployFailures: Array<{ stdout: string; createApp: boolean }> = [];

  constructor(
    readonly token = "cbr_fake_service_account_token_31337",
    readonly projectId = "p-1a2b3c4d",
  ) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  reset(): void {
    this.requests.length = 0;
    this.calls.length = 0;
    this.apps.clear();
    this.cliInstalled = true;
    this.deployFailures.length = 0;
  }

  /** The next deploy exits 1 (after creating the app when `createApp`: a build that failed late). */
  failDeploy(stdout: string, createApp = false): void {
    this.deployFailures.push({ stdout, createApp });
  }

  setApp(name: string, status: string, replicas: number): void {
    const app = this.apps.get(`${this.projectId}-${name}`);
    if (!app) throw new Error(`fake cerebrium: no app ${name}`);
    app.status = status;
    app.replicas = replicas;
  }

  commandLines(): string[] {
    return this.calls.map((c) => [c.cmd, ...c.args].join(" "));
  }

  readonly exec: NonNullable<ProviderContext["exec"]> = async (cmd, args, opts) => {
    const call: FakeCliCall = { cmd, args: [...args], env: { ...(opts.env ?? {}) }, cwd: opts.cwd, files: {} };
    this.calls.push(call);
    if (!this.cliInstalled || cmd !== "cerebrium") throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT" });
    if (args[0] === "--version") return ok("cerebrium 2.1.3\n");
    if (args[0] !== "deploy") return { code: 2, stdout: "", stderr: `Error: No such command '${args[0]}'.\n` };
    if (call.env.CEREBRIUM_SERVICE_ACCOUNT_TOKEN !== this.token) return { code: 1, stdout: "Error: 401 Unauthorized: invalid or expired service account token\n", stderr: "" };
    if (call.env.CEREBRIUM_PROJECT_ID !== this.projectId) return { code: 1, stdout: "Error: no project configured (project not found)\n", stderr: "" };
    let toml: string;
    try {
      toml = readFileSync(path.join(opts.cwd ?? ".", "cerebrium.toml"), "utf8");
      call.files["cerebrium.toml"] = toml;
      call.files["main.py"] = readFileSync(path.join(opts.cwd ?? ".", "main.py"), "utf8");
    } catch {
      return { code: 1, stdout: "Error: cerebrium.toml not found in the current directory\n", stderr: "" };
    }
    const name = /^name = (".*")$/m.exec(toml);
    if (!name) return { code: 1, stdout: "Error: [cerebrium.deployment] name is required\n", stderr: "" };
    for (const section of ["[cerebrium.deployment]", "[cerebrium.runtime.custom]", "[cerebrium.hardware]", "[cerebrium.scaling]"]) {
      if (!toml.includes(`\n${section}\n`)) return { code: 1, stdout: `Error: missing ${section}\n`, stderr: "" };
    }
    const appName = JSON.parse(name[1]) as string;
    const region = JSON.parse(/^region = (".*")$/m.exec(toml)?.[1] ?? '"us-east-1"') as string;
    const failure = this.deployFailures.shift();
    if (!failure || failure.createApp) {
      const id = `${this.projectId}-${appName}`;
      this.apps.set(id, { id, name: appName, status: "ready", replicas: 0, config: toml });
    }
    if (failure) return { code: 1, stdout: failure.stdout, stderr: "" };
    return ok(
      [
        "🚀 Building app...",
        "✅ App built successfully",
        `App Dashboard: https://dashboard.cerebrium.ai/projects/${this.projectId}/apps/${this.projectId}-${appName}`,
        `Endpoint: POST https://api.aws.${region}.cerebrium.ai/v4/${this.projectId}/${appName}/{function_name}`,
        "",
      ].join("\n"),
    );
  };

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for await (const _ of req) {
      // drain
    }
    const url = new URL(req.url ?? "/", "http://fake");
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    const method = req.method ?? "GET";
    this.requests.push({ method, path: url.pathname, headers });
    if (headers.authorization !== `Bearer ${this.token}`) return json(res, 401, { message: "Unauthorized" });
    const m = /^\/v2\/projects\/([^/]+)\/apps(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return json(res, 404, { message: "Not found" });
    if (m[1] !== this.projectId) return json(res, 404, { message: `Project ${m[1]} not found` });
    if (!m[2]) {
      if (method === "GET") return json(res, 200, [...this.apps.values()].map((a) => ({ id: a.id, name: a.name, status: a.status })));
      return json(res, 405, { message: "Method not allowed" });
    }
    const app = this.apps.get(decodeURIComponent(m[2]));
    if (!app) return json(res, 404, { message: `App ${m[2]} not found` });
    if (method === "GET") return json(res, 200, { id: app.id, name: app.name, status: app.status, replicas: app.replicas, projectId: this.projectId });
    if (method === "DELETE") {
      this.apps.delete(app.id);
      return json(res, 200, { message: "App deleted" });
    }
    return json(res, 405, { message: "Method not allowed" });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}

function ok(stdout: string): ExecResult {
  return { code: 0, stdout, stderr: "" };
}
