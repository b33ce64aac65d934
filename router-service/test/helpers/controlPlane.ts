// A fake of the control plane's router endpoints, following the contract in DESIGN.md §3.6:
// GET /api/router/config (Bearer router token, ETag / If-None-Match) and POST /api/router/usage
// (UsageReport body, deduped by batchId).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { type UsageReport, usageReportSchema } from "../../src/contract.js";

export interface FakeControlPlane {
  url: string;
  token: string;
  setSnapshot(body: unknown, etag?: string): void;
  configDown: boolean;
  usageDown: boolean;
  polls: number;
  notModified: number;
  reports: Map<string, UsageReport>;
  rejectedReports: number;
  close(): Promise<void>;
}

export async function startControlPlane(token = "router-token-secret"): Promise<FakeControlPlane> {
  let body = "{}";
  let etag = '"0"';
  const cp: FakeControlPlane = {
    url: "", token, configDown: false, usageDown: false, polls: 0, notModified: 0, reports: new Map(), rejectedReports: 0,
    setSnapshot(b: unknown, tag?: string) {
      body = JSON.stringify(b);
      etag = tag ?? `"${(b as { version?: number }).version ?? Math.random()}-${body.length}"`;
    },
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    if (req.method === "GET" && req.url === "/api/router/config") {
      cp.polls++;
      if (cp.configDown) return void res.writeHead(503).end();
      if (req.headers["if-none-match"] === etag) {
        cp.notModified++;
        return void res.writeHead(304, { etag }).end();
      }
      res.writeHead(200, { "content-type": "application/json", etag });
      return void res.end(body);
    }
    if (req.method === "POST" && req.url === "/api/router/usage") {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        if (cp.usageDown) return void res.writeHead(503).end();
        const parsed = usageReportSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        if (!parsed.success) {
          cp.rejectedReports++;
          return void res.writeHead(400).end();
        }
        cp.reports.set(parsed.data.batchId, parsed.data);
        res.writeHead(202).end();
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cp.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cp.close = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return cp;
}

export function totalRequests(cp: FakeControlPlane): number {
  let n = 0;
  for (const r of cp.reports.values()) for (const e of r.entries) n += e.requests;
  return n;
}
