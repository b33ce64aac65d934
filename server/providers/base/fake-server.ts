import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ExecResult, ProviderContext } from "./types";

/**
 * Test-only scaffolding shared by the provider fakes (`<provider>/fake.ts`, `server/skypilot/fake.ts`): a
 * loopback HTTP server on port 0, request reading, JSON answers, failure injection, and the bookkeeping of
 * fake CLIs. It holds no provider behaviour: routes, auth, validation and error envelopes stay in each fake
 * so each one keeps following its provider's documented API.
 */

/** What an HTTP fake keeps of each request it received (fakes keep the subset they need). */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
  /** Raw body (form-encoded token requests). */
  raw: string;
}

/** A request as it arrived, body read (not yet parsed: fakes differ in when they parse and how they refuse). */
export interface IncomingRequest {
  method: string;
  url: URL;
  /** `url.pathname`. */
  path: string;
  /** Single-valued query (last value wins). */
  query: Record<string, string>;
  /** Single-valued headers, lower-cased names. */
  headers: Record<string, string>;
  raw: string;
}

export async function readIncoming(req: IncomingMessage): Promise<IncomingRequest> {
  const url = new URL(req.url ?? "/", "http://fake");
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString("utf8");
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
  return { method: req.method ?? "GET", url, path: url.pathname, query: Object.fromEntries(url.searchParams), headers, raw };
}

/** What `parseJsonBody` returns for text that is not JSON. */
export const INVALID_JSON: unique symbol = Symbol("invalid JSON");

/** `raw` parsed as JSON; `undefined` when empty; `INVALID_JSON` when it does not parse. */
export function parseJsonBody(raw: string): unknown {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return INVALID_JSON;
  }
}

/** A JSON answer (`body === undefined`: no body and no content-type, e.g. 204). */
export function sendJson(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

/** An answer a test asked for instead of the real one. */
export interface InjectedFailure {
  status: number;
  /** The body to send as is; absent: the fake's own error envelope. */
  body?: unknown;
  headers?: Record<string, string>;
}

interface PendingFailure extends InjectedFailure {
  matches: (method: string, path: string) => boolean;
  times: number;
}

/**
 * Base of the HTTP fakes: listens on 127.0.0.1:0, hands each request to `handle` (an exception becomes the
 * fake's own 500 via `internalError`), closes every connection on `close()`, and keeps injected failures.
 */
export abstract class FakeHttpServer<R = RecordedRequest> {
  /** Every request received, in order. */
  readonly requests: R[] = [];
  url = "";
  private server?: Server;
  private injected: PendingFailure[] = [];

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<unknown>;

  /** The answer when `handle` throws, in the provider's error envelope. */
  protected abstract internalError(res: ServerResponse, err: unknown): void;

  /** Starts listening; returns the origin (`http://127.0.0.1:<port>`). */
  protected async listen(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err) => this.internalError(res, err));
    });
    this.server = server;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /** Make the next `times` (default 1) calls matching method + path answer `status` (and `body`/`headers`). */
  failNext(method: string, path: RegExp, opts: { status: number; times?: number; body?: unknown; headers?: Record<string, string> }): void {
    this.failWhen((m, p) => m === method && path.test(p), opts);
  }

  protected failWhen(matches: (method: string, path: string) => boolean, opts: InjectedFailure & { times?: number }): void {
    this.injected.push({ matches, times: opts.times ?? 1, status: opts.status, body: opts.body, headers: opts.headers });
  }

  /** The first pending failure for this call, used up by one; `undefined` when none applies. */
  protected takeFailure(method: string, path: string): InjectedFailure | undefined {
    const f = this.injected.find((x) => x.times > 0 && x.matches(method, path));
    if (!f) return undefined;
    f.times--;
    return { status: f.status, body: f.body, headers: f.headers };
  }

  /** Forgets recorded requests and pending failures. */
  protected clearRecorded(): void {
    this.requests.length = 0;
    this.injected = [];
  }
}

/** An HTTP fake that also fakes the provider's CLI (`ctx.exec`): keeps the CLI calls next to the requests. */
export abstract class FakeHttpServerWithCli<R = RecordedRequest> extends FakeHttpServer<R> {
  /** Every CLI run received, in order. */
  readonly calls: FakeCliCall[] = [];

  /** Path prefix of the API on the fake's origin (e.g. "/v1"), part of `url`. */
  protected readonly apiPrefix: string = "";

  /** Starts listening; returns `url` (origin + `apiPrefix`). */
  async start(): Promise<string> {
    this.url = `${await this.listen()}${this.apiPrefix}`;
    return this.url;
  }

  /** Every CLI run as a `cmd a b c` string. */
  commandLines(): string[] {
    return commandLinesOf(this.calls);
  }

  /** Forgets recorded requests, CLI calls and pending failures. */
  protected clearRecorded(): void {
    super.clearRecorded();
    this.calls.length = 0;
  }
}

/** Per-key queues of canned outcomes (`fail("deploy", 2, …)`): each use takes the next one. */
export class OutcomeQueues<T> {
  private readonly queues = new Map<string, T[]>();

  add(key: string, times: number, item: T): void {
    const list = this.queues.get(key) ?? [];
    for (let i = 0; i < times; i++) list.push(item);
    this.queues.set(key, list);
  }

  next(key: string): T | undefined {
    return this.queues.get(key)?.shift();
  }

  clear(): void {
    this.queues.clear();
  }
}

// ---------------------------------------------------------------- fake CLIs

export interface FakeCliCall {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Files the command read (relative name → content), captured at call time. */
  files: Record<string, string>;
}

type ExecOpts = Parameters<NonNullable<ProviderContext["exec"]>>[2];

/** A successful CLI run printing `stdout`. */
export function cliOk(stdout: string): ExecResult {
  return { code: 0, stdout, stderr: "" };
}

/** A failed CLI run printing `stdout` (as the CLIs print their errors). */
export function cliFail(stdout: string, code = 1): ExecResult {
  return { code, stdout, stderr: "" };
}

/** What spawning a binary that is not installed throws. */
export function cliNotInstalled(cmd: string): Error {
  return Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: "ENOENT" });
}

/** The click-style answer to an unknown sub-command. */
export function cliNoSuchCommand(name: string): ExecResult {
  return { code: 2, stdout: "", stderr: `Error: No such command '${name}'.\n` };
}

/** Records one call of a fake CLI in `calls` (args and env copied) and returns it, to add the files it reads. */
export function recordCliCall(calls: FakeCliCall[], cmd: string, args: string[], opts: ExecOpts): FakeCliCall {
  const call: FakeCliCall = { cmd, args: [...args], env: { ...(opts.env ?? {}) }, cwd: opts.cwd, files: {} };
  calls.push(call);
  return call;
}

/** Every call as a `cmd a b c` string. */
export function commandLinesOf(calls: FakeCliCall[]): string[] {
  return calls.map((c) => [c.cmd, ...c.args].join(" "));
}
