// Boots a throwaway redis-server for a test ("we don't mock, we boot").
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { connect } from "node:net";
import { freePort, waitFor } from "./fixtures.js";

export interface RedisProc {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export async function startRedis(extra: string[] = [], cwd?: string): Promise<RedisProc> {
  const port = await freePort();
  const proc = spawn("/usr/bin/redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...extra], {
    stdio: "ignore",
    cwd,
  });
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.once("connect", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      }),
    10_000,
    50,
  );
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGKILL");
      await once(proc, "exit");
    },
  };
}

/** A real 3-master Redis Cluster on loopback (no replicas), created with redis-cli. */
export async function startRedisCluster(): Promise<{ url: string; nodes: RedisProc[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "tuna-rcluster-"));
  const nodes: RedisProc[] = [];
  for (let i = 0; i < 3; i++) {
    const cwd = mkdtempSync(join(dir, "n"));
    nodes.push(await startRedis(["--cluster-enabled", "yes", "--cluster-config-file", join(cwd, "nodes.conf"), "--cluster-node-timeout", "2000"], cwd));
  }
  const r = spawnSync("/usr/bin/redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
  // Wait until every node agrees the cluster is up.
  await waitFor(() => nodes.every((n) => /cluster_state:ok/.test(spawnSync("/usr/bin/redis-cli", ["-p", String(n.port), "cluster", "info"], { encoding: "utf8" }).stdout)), 15_000, 100);
  return {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`,
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
