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
 * Fake Cerebrium: the REST app routes (`/v3/projects/{project}/apps[/{appId}]`, the version provider-apis.md §7
 * confirms; Bearer service-account token, 401/404 JSON errors) on loopback, and a fake `cerebrium` CLI whose `deploy` reads cerebrium.toml,
 * authenticates from `CEREBRIUM_SERVICE_ACCOUNT_TOKEN` / `CEREBRIUM_PROJECT_ID` and creates the app.
 * App ids are `<project>-<name>` (provider-apis.md §7, unverified upstream: kept here in one place).
 * A path outside those routes gets the gateway's own 404 (`GATEWAY_NOT_FOUND`), not the API's "App … not
 * found", as a real API gateway answers a route it does not know.
 */

export type { FakeCliCall };

/** The body an API gateway sends for a route it does not know (distinct from the API's own 404s). */
export const GATEWAY_NOT_FOUND = { message: "Not Found" };

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
  /** The management API version the fake serves; a test sets another to play "the API moved". */
  apiVersion = "v3";
  /** While true, REST requests are recorded and then never answered (until `reset`/`close`). */
  stallRequests = false;
  private readonly stalled: Array<() => void> = [];
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
    this.apiVersion = "v3";
    this.releaseStalled();
    this.deployFailures.length = 0;
  }

  async close(): Promise<void> {
    this.releaseStalled();
    await super.close();
  }

  private releaseStalled(): void {
    this.stallRequests = false;
    for (const release of this.stalled.splice(0)) release();
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
    if (this.stallRequests) {
      // Headers never sent; released (and the socket closed) by reset/close.
      await new Promise<void>((r) => this.stalled.push(r));
      res.destroy();
      return;
    }
    if (headers.authorization !== `Bearer ${this.token}`) return sendJson(res, 401, { message: "Unauthorized" });
    const injected = this.takeFailure(method, url.pathname);
    if (injected) return sendJson(res, injected.status, injected.body ?? { message: `HTTP ${injected.status}` }, injected.headers);
    const m = /^\/([^/]+)\/projects\/([^/]+)\/apps(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || m[1] !== this.apiVersion) return sendJson(res, 404, GATEWAY_NOT_FOUND);
    const [, , project, appId] = m;
    if (project !== this.projectId) return sendJson(res, 404, { message: `Project ${project} not found` });
    if (!appId) {
      if (method === "GET") return sendJson(res, 200, [...this.apps.values()].map((a) => ({ id: a.id, name: a.name, status: a.status })));
      return sendJson(res, 405, { message: "Method not allowed" });
    }
    const app = this.apps.get(decodeURIComponent(appId));
    if (!app) return sendJson(res, 404, { message: `App ${appId} not found` });
    if (method === "GET") return sendJson(res, 200, { id: app.id, name: app.name, status: app.status, replicas: app.replicas, projectId: this.projectId });
    if (method === "DELETE") {
      this.apps.delete(app.id);
      return sendJson(res, 200, { message: "App deleted" });
    }
    return sendJson(res, 405, { message: "Method not allowed" });
  }
}
