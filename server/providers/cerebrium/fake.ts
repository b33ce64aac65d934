import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import {
  cliFail,
  cliNoSuchCommand,
  cliNotInstalled,
  cliOk,
  FakeHttpServerWithCli,
  type FakeCliCall,
  type RecordedRequest,
  readIncoming,
  recordCliCall,
  sendJson,
} from "../base/fake-server";
import type { ProviderContext } from "../base/types";

/**
 * Fake Cerebrium: the REST app routes (`/v2/projects/{project}/apps[/{appId}]`, Bearer service-account
 * token, 401/404 JSON errors) on loopback, and a fake `cerebrium` CLI whose `deploy` reads cerebrium.toml,
 * authenticates from `CEREBRIUM_SERVICE_ACCOUNT_TOKEN` / `CEREBRIUM_PROJECT_ID` and creates the app.
 * App ids are `<project>-<name>` (provider-apis.md §7, unverified upstream: kept here in one place).
 */

export type { FakeCliCall };

export interface FakeCerebriumApp {
  id: string;
  name: string;
  status: string;
  replicas: number;
  config: string;
}

export class FakeCerebrium extends FakeHttpServerWithCli<Pick<RecordedRequest, "method" | "path" | "headers">> {
  readonly apps = new Map<string, FakeCerebriumApp>();
  cliInstalled = true;
  private readonly deployFailures: Array<{ stdout: string; createApp: boolean }> = [];

  constructor(
    readonly token = "cbr_fake_service_account_token_31337",
    readonly projectId = "p-1a2b3c4d",
  ) {
    super();
  }

  protected internalError(res: ServerResponse, err: unknown): void {
    sendJson(res, 500, { message: String(err) });
  }

  reset(): void {
    this.clearRecorded();
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

  readonly exec: NonNullable<ProviderContext["exec"]> = async (cmd, args, opts) => {
    const call = recordCliCall(this.calls, cmd, args, opts);
    if (!this.cliInstalled || cmd !== "cerebrium") throw cliNotInstalled(cmd);
    if (args[0] === "--version") return cliOk("cerebrium 2.1.3\n");
    if (args[0] !== "deploy") return cliNoSuchCommand(args[0]);
    if (call.env.CEREBRIUM_SERVICE_ACCOUNT_TOKEN !== this.token) return cliFail("Error: 401 Unauthorized: invalid or expired service account token\n");
    if (call.env.CEREBRIUM_PROJECT_ID !== this.projectId) return cliFail("Error: no project configured (project not found)\n");
    let toml: string;
    try {
      toml = readFileSync(path.join(opts.cwd ?? ".", "cerebrium.toml"), "utf8");
      call.files["cerebrium.toml"] = toml;
      call.files["main.py"] = readFileSync(path.join(opts.cwd ?? ".", "main.py"), "utf8");
    } catch {
      return cliFail("Error: cerebrium.toml not found in the current directory\n");
    }
    const name = /^name = (".*")$/m.exec(toml);
    if (!name) return cliFail("Error: [cerebrium.deployment] name is required\n");
    for (const section of ["[cerebrium.deployment]", "[cerebrium.runtime.custom]", "[cerebrium.hardware]", "[cerebrium.scaling]"]) {
      if (!toml.includes(`\n${section}\n`)) return cliFail(`Error: missing ${section}\n`);
    }
    const appName = JSON.parse(name[1]) as string;
    const region = JSON.parse(/^region = (".*")$/m.exec(toml)?.[1] ?? '"us-east-1"') as string;
    const failure = this.deployFailures.shift();
    if (!failure || failure.createApp) {
      const id = `${this.projectId}-${appName}`;
      this.apps.set(id, { id, name: appName, status: "ready", replicas: 0, config: toml });
    }
    if (failure) return cliFail(failure.stdout);
    return cliOk(
      [
        "🚀 Building app...",
        "✅ App built successfully",
        `App Dashboard: https://dashboard.cerebrium.ai/projects/${this.projectId}/apps/${this.projectId}-${appName}`,
        `Endpoint: POST https://api.aws.${region}.cerebrium.ai/v4/${this.projectId}/${appName}/{function_name}`,
        "",
      ].join("\n"),
    );
  };

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, method, headers } = await readIncoming(req);
    this.requests.push({ method, path: url.pathname, headers });
    if (headers.authorization !== `Bearer ${this.token}`) return sendJson(res, 401, { message: "Unauthorized" });
    const m = /^\/v2\/projects\/([^/]+)\/apps(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return sendJson(res, 404, { message: "Not found" });
    if (m[1] !== this.projectId) return sendJson(res, 404, { message: `Project ${m[1]} not found` });
    if (!m[2]) {
      if (method === "GET") return sendJson(res, 200, [...this.apps.values()].map((a) => ({ id: a.id, name: a.name, status: a.status })));
      return sendJson(res, 405, { message: "Method not allowed" });
    }
    const app = this.apps.get(decodeURIComponent(m[2]));
    if (!app) return sendJson(res, 404, { message: `App ${m[2]} not found` });
    if (method === "GET") return sendJson(res, 200, { id: app.id, name: app.name, status: app.status, replicas: app.replicas, projectId: this.projectId });
    if (method === "DELETE") {
      this.apps.delete(app.id);
      return sendJson(res, 200, { message: "App deleted" });
    }
    return sendJson(res, 405, { message: "Method not allowed" });
  }
}
