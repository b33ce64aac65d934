/**
 * Test-only stand-in for Slack incoming webhooks (provider-apis.md §8): POST JSON to /services/T/B/<token>,
 * 200 "ok"; plain-text errors: 400 invalid_payload / no_text / invalid_blocks, 404 no_service for an
 * unknown webhook, and scripted responses (429 + Retry-After, 5xx, 410 …) queued per test.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface SlackPost {
  path: string;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

export interface Scripted {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

export class FakeSlack {
  readonly posts: SlackPost[] = [];
  /** Responses served before normal processing, one per request. */
  readonly script: Scripted[] = [];
  private readonly tokens = new Set<string>();
  private server: Server;
  url = "";

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const reply = (status: number, body: string, headers: Record<string, string> = {}) =>
          res.writeHead(status, { "content-type": "text/plain", ...headers }).end(body);
        const path = req.url ?? "";
        const token = /^\/services\/[^/]+\/[^/]+\/([^/]+)$/.exec(path)?.[1];
        if (req.method !== "POST" || !token || !this.tokens.has(token)) return reply(404, "no_service");
        let body: Record<string, unknown>;
        try {
          if (!/^application\/json/.test(req.headers["content-type"] ?? "")) throw new Error("content type");
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
        } catch {
          return reply(400, "invalid_payload");
        }
        this.posts.push({ path, contentType: req.headers["content-type"], body });
        const next = this.script.shift();
        if (next) return reply(next.status, next.body, next.headers);
        if (!body.text && !body.blocks && !body.attachments) return reply(400, "no_text");
        type Block = { type?: string; text?: { type?: string; text?: unknown }; fields?: Array<{ text?: unknown }> };
        const blocks = body.blocks as Block[] | undefined;
        if (blocks) {
          if (!Array.isArray(blocks) || blocks.length > 50) return reply(400, "invalid_blocks");
          for (const b of blocks) {
            if (b.type === "section" && typeof b.text?.text === "string" && b.text.text.length > 3000) return reply(400, "invalid_blocks");
            if (b.type === "section" && Array.isArray(b.fields) && (b.fields.length > 10 || b.fields.some((f) => String(f.text).length > 2000))) return reply(400, "invalid_blocks");
            if (b.type === "header" && (b.text?.type !== "plain_text" || String(b.text?.text).length > 150)) return reply(400, "invalid_blocks");
            if (!["header", "section", "actions", "context", "divider"].includes(String(b.type))) return reply(400, "invalid_blocks");
          }
        }
        return reply(200, "ok");
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** A fresh webhook URL (its token is the secret). */
  newWebhook(): string {
    const token = `${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    this.tokens.add(token);
    return `${this.url}/services/T0TEST/B0TEST/${token}`;
  }

  revoke(url: string): void {
    this.tokens.delete(url.split("/").pop() as string);
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
