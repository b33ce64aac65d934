// Load generator for bench/router, run as its own process so its work and pauses are not the bench
// orchestrator's: keep-alive HTTP/1.1 over plain sockets, one pre-built request, a response parser for
// content-length and chunked bodies. Much cheaper per request than node:http's client, so it leaves the
// proxies under test the CPU and adds little jitter of its own to the latencies it measures.
//
//   node --import tsx bench/router/loadgen.ts '<json spec>'   → one JSON line on stdout
// spec: { url, headers, body, mode: "closed" | "open", connections, durationMs, warmupMs?, rate? }
//   closed: `connections` workers send back to back; reports { n, errors, ms, total, cpuMs } (total:
//           answers including the warm-up's, for CPU per request over the whole run; cpuMs: this process's
//           own user+system CPU over the same span).
//   open:   `rate` requests/s on a fixed schedule (a request that finds no idle connection waits in a queue
//           and its wait counts); reports { n, errors, ms, latencies, warmupP99 } with latencies in ms, sorted.
// Both modes first run the same load for `warmupMs` and leave it out of what they report (steady state, as
// wrk2 leaves out its calibration period): this process starts cold and opens its connections then, and
// the first tens of milliseconds of every run measured the start of the generator as much as the target.
// The open mode reports the warm-up's own p99 as `warmupP99`, so what was left out stays visible, and between
// warm-up and measurement it waits for every answer and collects its own heap (see `open`).
import { connect, type Socket } from "node:net";

interface Spec {
  url: string;
  headers: Record<string, string>;
  body: string;
  mode: "closed" | "open";
  connections: number;
  durationMs: number;
  warmupMs?: number;
  rate?: number;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** One keep-alive connection with at most one request in flight. */
class Conn {
  private socket: Socket;
  private buf: Buffer | undefined;
  private sentAt = 0;
  private done: ((ok: boolean, ms: number) => void) | undefined;
  closed = false;

  constructor(
    private host: string,
    private port: number,
    private request: Buffer,
  ) {
    this.socket = this.open();
  }

  private open(): Socket {
    const s = connect(this.port, this.host);
    s.setNoDelay(true);
    s.on("data", (d: Buffer) => this.onData(d));
    s.on("error", () => undefined);
    s.on("close", () => {
      this.closed = true;
      this.finish(false);
    });
    return s;
  }

  send(startedAt: number, done: (ok: boolean, ms: number) => void): void {
    if (this.closed) {
      this.closed = false;
      this.buf = undefined;
      this.socket = this.open();
    }
    this.sentAt = startedAt;
    this.done = done;
    this.socket.write(this.request);
  }

  private finish(ok: boolean): void {
    const done = this.done;
    this.done = undefined;
    this.buf = undefined;
    done?.(ok, performance.now() - this.sentAt);
  }

  private onData(d: Buffer): void {
    const buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    this.buf = buf;
    const headEnd = buf.indexOf(CRLFCRLF);
    if (headEnd < 0) return;
    const head = buf.toString("latin1", 0, headEnd).toLowerCase();
    const status = Number(head.slice(9, 12));
    const bodyStart = headEnd + 4;
    const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
    if (cl) {
      if (buf.length < bodyStart + Number(cl[1])) return;
    } else if (/\r\ntransfer-encoding:\s*chunked/.test(head)) {
      if (!chunkedComplete(buf, bodyStart)) return;
    } else return; // read-until-close: finished by the close handler
    if (/\r\nconnection:\s*close/.test(head)) this.socket.destroy();
    this.finish(status === 200);
  }

  destroy(): void {
    this.done = undefined;
    this.socket.destroy();
  }
}

/** Whether a chunked body starting at `at` is complete (last chunk and the empty trailer line seen). */
function chunkedComplete(buf: Buffer, at: number): boolean {
  let pos = at;
  for (;;) {
    const eol = buf.indexOf("\r\n", pos);
    if (eol < 0) return false;
    const size = Number.parseInt(buf.toString("latin1", pos, eol), 16);
    if (Number.isNaN(size)) return false;
    // The last chunk, then optional trailer lines, then an empty line.
    if (size === 0) return buf.indexOf(CRLFCRLF, eol) >= 0;
    pos = eol + 2 + size + 2;
    if (pos > buf.length) return false;
  }
}

function buildRequest(spec: Spec): { host: string; port: number; request: Buffer } {
  const u = new URL(spec.url);
  const body = Buffer.from(spec.body);
  let head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n`;
  for (const [k, v] of Object.entries(spec.headers)) head += `${k}: ${v}\r\n`;
  return { host: u.hostname, port: Number(u.port), request: Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), body]) };
}

async function closed(spec: Spec): Promise<{ n: number; errors: number; ms: number; total: number; cpuMs: number }> {
  const { host, port, request } = buildRequest(spec);
  const cpu0 = process.cpuUsage();
  let n = 0;
  let total = 0;
  let errors = 0;
  const start = performance.now() + (spec.warmupMs ?? 0);
  const conns = Array.from({ length: spec.connections }, () => new Conn(host, port, request));
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((resolve) => {
          const next = () => {
            if (performance.now() - start >= spec.durationMs) return resolve();
            const sentAt = performance.now();
            c.send(sentAt, (ok) => {
              // Errors count in the warm-up too; answers only after it.
              if (!ok) errors++;
              else {
                total++;
                if (sentAt >= start) n++;
              }
              next();
            });
          };
          next();
        }),
    ),
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.destroy();
  // The generator's own CPU over the load (warm-up included, like `total`), for the bench's CPU breakdown.
  return { n, errors, ms, total, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function open(spec: Spec): Promise<{ n: number; errors: number; ms: number; latencies: number[]; warmupP99: number }> {
  const { host, port, request } = buildRequest(spec);
  const rate = spec.rate ?? 1000;
  const idle: Conn[] = Array.from({ length: spec.connections }, () => new Conn(host, port, request));
  const all = [...idle];
  const maxConns = spec.connections * 4;
  let errors = 0;

  /** Sends `rate` requests/s for `ms` on a fixed schedule and resolves once every answer is in. */
  const phase = (ms: number, out: number[]) => {
    const queue: number[] = [];
    let sent = 0;
    let inflight = 0;
    const start = performance.now();
    const dispatch = (c: Conn, at: number) => {
      inflight++;
      c.send(at, (ok, took) => {
        inflight--;
        if (!ok) errors++;
        else out.push(took);
        const q = queue.shift();
        if (q !== undefined) dispatch(c, q);
        else idle.push(c);
      });
    };
    return new Promise<number>((resolve) => {
      const tick = () => {
        const now = performance.now();
        const elapsed = now - start;
        if (elapsed < ms) {
          const due = Math.floor((elapsed / 1000) * rate);
          while (sent < due) {
            sent++;
            let c = idle.pop();
            if (!c && all.length < maxConns) {
              c = new Conn(host, port, request);
              all.push(c);
            }
            if (c) dispatch(c, now);
            else queue.push(now);
          }
        } else if (inflight === 0 && queue.length === 0) return resolve(now - start);
        // A timer, not setImmediate: a spinning generator would take a core from the proxy under test.
        setTimeout(tick, 1);
      };
      tick();
    });
  };

  const warmup: number[] = [];
  if (spec.warmupMs) await phase(spec.warmupMs, warmup);
  // Between warm-up and measurement, with nothing in flight: a full collection of this process's own heap
  // (when started with --expose-gc). A fresh generator otherwise reaches its first old-space collection
  // about 1.5 s into the measured load, and that pause (4–10 ms here) landed in every target's p99.
  (globalThis as { gc?: () => void }).gc?.();
  const latencies: number[] = [];
  const ms = await phase(spec.durationMs, latencies);
  for (const c of all) c.destroy();
  warmup.sort((a, b) => a - b);
  const warmupP99 = warmup.length ? warmup[Math.min(warmup.length - 1, Math.floor(0.99 * warmup.length))] : Number.NaN;
  return { n: latencies.length, errors, ms, latencies: latencies.sort((a, b) => a - b), warmupP99 };
}

const spec = JSON.parse(process.argv[2] ?? "{}") as Spec;
(spec.mode === "open" ? open(spec) : closed(spec))
  .then((r) => process.stdout.write(`${JSON.stringify(r)}\n`))
  .catch((err) => {
    process.stderr.write(`loadgen: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
