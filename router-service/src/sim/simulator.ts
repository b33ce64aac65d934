// A vLLM-like OpenAI-compatible backend for tests, benchmarks and the `local` provider.
// Deterministic output and exact `usage` so callers can assert token accounting.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export const FAULT_MODES = [
  "none", "down", "slow", "error5xx", "close-mid-stream", "stall-mid-stream", "close-after-head", "stall-after-head", "preempt",
] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface Fault {
  mode: FaultMode;
  /**
   * slow: extra delay before headers; close-after-head: time from the head to the close (default 20);
   * stall-after-head: time from the head to the body (default 1000); preempt: grace period before exit (ms).
   */
  delayMs?: number;
  /** error5xx: status to answer (default 500). */
  status?: number;
  /**
   * close-mid-stream / stall-mid-stream: events of a stream written before the socket is destroyed, or before
   * the stream goes silent with its connection left open (default 2).
   */
  afterChunks?: number;
}

export interface SimulatorOptions {
  port?: number;
  host?: string;
  /** Served model names; the first is echoed when a request names none. */
  model?: string | string[];
  ttftMs?: number;
  /** 0 = emit all tokens at once. */
  tokensPerS?: number;
  coldStartMs?: number;
  /** Requests above this wait in a FIFO queue, like vLLM's waiting queue. 0 = unbounded. */
  maxConcurrency?: number;
  fault?: Fault;
  /** Tokens generated when the request has no max_tokens. */
  defaultMaxTokens?: number;
  /** Called when a preempt fault finishes its grace period (CLI: exit the process). */
  onPreemptExit?: () => void;
}

export interface SimulatorStats {
  requests: number;
  inflight: number;
  queued: number;
  completed: number;
  probes: number;
  /** TCP connections accepted (shows whether clients reuse their keep-alive connections). */
  connections: number;
  byPath: Record<string, number>;
  /** Headers of the most recent inference request (lets tests check what a proxy forwarded). */
  lastHeaders: Record<string, string | string[] | undefined>;
  lastBody: unknown;
  fault: Fault;
}

export interface SimulatorHandle {
  port: number;
  url: string;
  close(): Promise<void>;
  setFault(fault: Fault): void;
  stats(): SimulatorStats;
}

const WORDS = ["tuna", " swims", " fast", " in", " the", " open", " sea", " under", " spot", " light"];

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function promptText(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) {
    let s = "";
    for (const m of body.messages as Array<{ content?: unknown }>) {
      if (typeof m?.content === "string") s += m.content;
      else if (Array.isArray(m?.content))
        for (const part of m.content as Array<{ text?: unknown }>) if (typeof part?.text === "string") s += part.text;
    }
    return s;
  }
  if (typeof body.prompt === "string") return body.prompt;
  if (Array.isArray(body.prompt)) return body.prompt.filter((p) => typeof p === "string").join("");
  if (typeof body.input === "string") return body.input;
  if (Array.isArray(body.input)) return body.input.filter((p) => typeof p === "string").join("");
  return "";
}

// No timer for a zero delay: Node clamps setTimeout(0) to 1 ms, which would put a millisecond of timer
// latency (and its jitter) into every answer of a "fast" simulator.
const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());

export function startSimulator(opts: SimulatorOptions = {}): Promise<SimulatorHandle> {
  const models = Array.isArray(opts.model) ? opts.model : [opts.model ?? "sim-model"];
  const ttftMs = opts.ttftMs ?? 0;
  const tokensPerS = opts.tokensPerS ?? 0;
  const maxConcurrency = opts.maxConcurrency ?? 0;
  const defaultMaxTokens = opts.defaultMaxTokens ?? 16;
  const readyAt = Date.now() + (opts.coldStartMs ?? 0);
  let fault: Fault = opts.fault ?? { mode: "none" };
  let preemptTimer: NodeJS.Timeout | undefined;
  const sockets = new Set<Socket>();
  const waiting: Array<() => void> = [];
  const stats: SimulatorStats = {
    requests: 0, inflight: 0, queued: 0, completed: 0, probes: 0, connections: 0, byPath: {}, lastHeaders: {}, lastBody: null,
    fault,
  };
  let created = Math.floor(Date.now() / 1000);
  let seq = 0;

  const acquireSlot = async (): Promise<void> => {
    if (maxConcurrency <= 0 || stats.inflight < maxConcurrency) {
      stats.inflight++;
      return;
    }
    stats.queued++;
    await new Promise<void>((resolve) => waiting.push(resolve));
    stats.queued--;
    stats.inflight++;
  };
  const releaseSlot = () => {
    stats.inflight--;
    const next = waiting.shift();
    if (next) next();
  };

  /**
   * close-after-head / stall-after-head, for streaming and non-streaming answers alike: the response head goes
   * out on its own, as uvicorn (vLLM) sends a stream's head before prefill; then the connection is dropped
   * before any body byte (a spot VM preempted mid-prefill), or the body waits `delayMs` (a stalled prefill).
   * False when the response was dropped.
   */
  const headThenFault = async (res: http.ServerResponse, f: Fault): Promise<boolean> => {
    if (f.mode !== "close-after-head" && f.mode !== "stall-after-head") return true;
    res.flushHeaders();
    if (f.mode === "close-after-head") {
      const sock = res.socket;
      setTimeout(() => sock?.destroy(), f.delayMs ?? 20);
      return false;
    }
    // Unref'd: a stall must not keep a closed simulator's process alive.
    await new Promise<void>((r) => setTimeout(r, f.delayMs ?? 1000).unref());
    return !res.destroyed;
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    const payload = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
    res.end(payload);
  };
  const errorBody = (message: string, type: string, code: string | null) => ({ error: { message, type, param: null, code } });

  const applyFault = (f: Fault, keep?: Socket) => {
    fault = f;
    stats.fault = f;
    if (preemptTimer) clearTimeout(preemptTimer);
    preemptTimer = undefined;
    // Going down kills open connections too (streams in flight), except the one asking for it.
    if (f.mode === "down") for (const s of sockets) if (s !== keep) s.destroy();
    if (f.mode === "preempt") {
      preemptTimer = setTimeout(() => {
        for (const s of sockets) s.destroy();
        if (opts.onPreemptExit) opts.onPreemptExit();
        else server.close();
      }, f.delayMs ?? 2000);
      preemptTimer.unref();
    }
  };

  const server = http.createServer(async (req, res) => {
    const url = req.url ?? "/";
    const path = url.split("?")[0];

    // Control endpoints keep working under every fault so tests can heal the simulator.
    if (path === "/_sim/fault" && req.method === "POST") {
      const body = await readJson(req);
      const mode = (body as Fault | null)?.mode;
      if (!body || !(FAULT_MODES as readonly string[]).includes(String(mode)))
        return json(res, 400, errorBody("invalid fault", "invalid_request_error", null));
      applyFault(body as Fault, req.socket);
      return json(res, 200, { ok: true, fault });
    }
    if (path === "/_sim/stats") return json(res, 200, stats);

    if (fault.mode === "down") {
      req.socket.destroy();
      return;
    }
    if (fault.mode === "preempt") return json(res, 503, errorBody("instance is being preempted", "server_error", null));

    const ready = Date.now() >= readyAt;
    if (path === "/health") {
      stats.probes++;
      res.writeHead(ready ? 200 : 503).end();
      return;
    }
    if (path === "/v1/models" && req.method === "GET") {
      stats.probes++;
      if (!ready) return json(res, 503, errorBody("model is loading", "server_error", null));
      return json(res, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created, owned_by: "tuna-sim", max_model_len: 8192 })),
      });
    }

    const kind =
      path === "/v1/chat/completions" ? "chat" : path === "/v1/completions" ? "text" : path === "/v1/embeddings" ? "embed" : null;
    if (!kind || req.method !== "POST") return json(res, 404, errorBody(`no route ${req.method} ${path}`, "invalid_request_error", null));

    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    stats.lastHeaders = { ...req.headers };
    const body = await readJson(req);
    stats.lastBody = body;
    if (!ready) return json(res, 503, errorBody("model is loading", "server_error", null));
    if (!body || typeof body !== "object") return json(res, 400, errorBody("invalid JSON body", "invalid_request_error", null));
    const b = body as Record<string, unknown>;
    const model = typeof b.model === "string" && b.model ? b.model : models[0];
    if (!models.includes(model))
      return json(res, 404, errorBody(`The model \`${model}\` does not exist.`, "NotFoundError", "model_not_found"));

    if (fault.mode === "error5xx") {
      await sleep(fault.delayMs ?? 0);
      return json(res, fault.status ?? 500, errorBody("simulated upstream failure", "server_error", null));
    }

    await acquireSlot();
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        releaseSlot();
        stats.completed++;
      }
    };
    res.on("close", release);
    try {
      if (fault.mode === "slow") await sleep(fault.delayMs ?? 1000);
      const promptTokens = estimateTokens(promptText(b));
      const id = `sim-${++seq}`;
      created = Math.floor(Date.now() / 1000);

      if (kind === "embed") {
        await sleep(ttftMs);
        const inputs = Array.isArray(b.input) ? b.input : [b.input];
        return json(res, 200, {
          object: "list",
          model,
          data: inputs.map((_, index) => ({ object: "embedding", index, embedding: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8] })),
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        });
      }

      const maxTokens = typeof b.max_tokens === "number" ? b.max_tokens : typeof b.max_completion_tokens === "number" ? b.max_completion_tokens : defaultMaxTokens;
      const n = Math.max(0, Math.floor(maxTokens));
      const usage = { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n };
      const perTokenMs = tokensPerS > 0 ? 1000 / tokensPerS : 0;
      const stream = b.stream === true;

      if (!stream) {
        await sleep(ttftMs + perTokenMs * n);
        if (res.destroyed) return;
        let text = "";
        for (let i = 0; i < n; i++) text += WORDS[i % WORDS.length];
        const payload =
          kind === "chat"
            ? {
                id: `chatcmpl-${id}`, object: "chat.completion", created, model,
                choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "length", logprobs: null }],
                usage,
              }
            : { id: `cmpl-${id}`, object: "text_completion", created, model, choices: [{ index: 0, text, finish_reason: "length", logprobs: null }], usage };
        const f = fault;
        if (midStream(f) || f.mode === "close-after-head" || f.mode === "stall-after-head") {
          const s = JSON.stringify(payload);
          res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
          if (!(await headThenFault(res, f))) return;
          if (midStream(f)) {
            // Headers and part of the body, then a hard close (the client sees a truncated response) or silence
            // with the connection left open (a frozen VM that never resets it).
            res.write(s.slice(0, Math.floor(s.length / 2)));
            if (f.mode === "close-mid-stream") setImmediate(() => res.socket?.destroy());
            return;
          }
          res.end(s);
          return;
        }
        return json(res, 200, payload);
      }

      const includeUsage = (b.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      if (!(await headThenFault(res, fault))) return;
      const chunk = (delta: Record<string, unknown>, finish: string | null, text?: string) =>
        kind === "chat"
          ? { id: `chatcmpl-${id}`, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] }
          : { id: `cmpl-${id}`, object: "text_completion", created, model, choices: [{ index: 0, text: text ?? "", finish_reason: finish, logprobs: null }] };
      await sleep(ttftMs);
      let written = 0;
      const f = fault;
      const cutAfter = midStream(f) ? (f.afterChunks ?? 2) : Number.POSITIVE_INFINITY;
      const write = (obj: unknown): boolean => {
        if (res.destroyed) return false;
        if (written >= cutAfter) {
          // close: let the written chunks reach the peer first, then drop the connection like a crashed server.
          // stall: write nothing more and leave the connection open until the peer gives up.
          const sock = res.socket;
          if (f.mode === "close-mid-stream") setTimeout(() => sock?.destroy(), 20);
          return false;
        }
        written++;
        res.write(`data: ${JSON.stringify(obj)}\n\n`);
        return true;
      };
      if (kind === "chat" && !write(chunk({ role: "assistant", content: "" }, null))) return;
      for (let i = 0; i < n; i++) {
        if (i > 0 && perTokenMs > 0) await sleep(perTokenMs);
        const w = WORDS[i % WORDS.length];
        if (!write(chunk(kind === "chat" ? { content: w } : {}, null, w))) return;
      }
      if (!write(chunk({}, "length"))) return;
      if (includeUsage && !write({ id: `chatcmpl-${id}`, object: kind === "chat" ? "chat.completion.chunk" : "text_completion", created, model, choices: [], usage }))
        return;
      if (!res.destroyed) res.end("data: [DONE]\n\n");
    } finally {
      if (res.writableEnded || res.destroyed) release();
    }
  });
  server.keepAliveTimeout = 65_000;
  server.on("connection", (s: Socket) => {
    // "down" is enforced per request (socket destroyed before any byte) so /_sim/* stays reachable.
    sockets.add(s);
    stats.connections++;
    s.on("close", () => sockets.delete(s));
  });

  // A fault given at start behaves as one set later (a preempt notice starts its countdown now).
  if (opts.fault) applyFault(opts.fault);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        setFault: (f: Fault) => applyFault(f),
        stats: () => ({ ...stats }),
        close: () =>
          new Promise<void>((r) => {
            if (preemptTimer) clearTimeout(preemptTimer);
            for (const s of sockets) s.destroy();
            server.close(() => r());
            // Already closed (e.g. after preempt) still resolves.
            if (!server.listening) r();
          }),
      });
    });
  });
}

/** close-mid-stream / stall-mid-stream: part of the body, then the connection is dropped or goes silent. */
function midStream(f: Fault): boolean {
  return f.mode === "close-mid-stream" || f.mode === "stall-mid-stream";
}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (chunks.length === 0) return resolve(null);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        resolve(null);
      }
    });
    req.on("error", () => resolve(null));
  });
}
