// CLI: `npm run router -- --config <file.json> --port <n>`, or config from the control plane via env.
import { resolve } from "node:path";
import { intOption, parseArgs } from "./args.js";
import { createLogger } from "./log.js";
import { startRouter } from "./server.js";

const FLAGS = [
  "config", "port", "host", "redis", "ratelimit-fail-mode", "max-inflight", "max-body-bytes", "headers-timeout-ms",
  "request-timeout-ms", "keep-alive-timeout-ms", "shutdown-timeout-ms", "state-dir", "usage-flush-ms", "max-spool-files",
  "config-poll-ms", "router-id", "log-level", "help",
] as const;
const env = process.env;
let args: Record<string, string>;
try {
  args = parseArgs(process.argv.slice(2), FLAGS);
} catch (err) {
  createLogger(env.LOG_LEVEL).fatal({ err: (err as Error).message }, "router failed to start");
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`usage: npm run router -- [${FLAGS.filter((f) => f !== "help").map((f) => `--${f}`).join("] [")}]\nevery option and environment variable: router-service/README.md ("Running")\n`);
  process.exit(0);
}
// `npm run router` runs in the workspace folder; relative paths are meant from where the user typed it.
const userCwd = env.INIT_CWD ?? process.cwd();
const fromUser = (p: string | undefined) => (p === undefined ? undefined : resolve(userCwd, p));
const logger = createLogger(args["log-level"] ?? env.LOG_LEVEL);

const failMode = (args["ratelimit-fail-mode"] ?? env.TUNA_RATELIMIT_FAIL_MODE ?? "open") as "open" | "closed";
if (failMode !== "open" && failMode !== "closed") {
  logger.fatal("--ratelimit-fail-mode must be open or closed");
  process.exit(2);
}

try {
  const router = await startRouter({
    port: intOption(args, "port", { env: "PORT", fallback: 8080, min: 0, max: 65535 }),
    host: args.host ?? env.HOST ?? "0.0.0.0",
    configPath: fromUser(args.config ?? env.TUNA_ROUTER_CONFIG),
    controlPlaneUrl: env.TUNA_CONTROL_PLANE_URL,
    routerToken: env.TUNA_ROUTER_TOKEN,
    adminToken: env.TUNA_ROUTER_ADMIN_TOKEN,
    metricsToken: env.TUNA_METRICS_TOKEN,
    redisUrl: args.redis ?? env.REDIS_URL,
    rateLimitFailMode: failMode,
    maxInflight: intOption(args, "max-inflight", { env: "TUNA_MAX_INFLIGHT", min: 1 }),
    maxBodyBytes: intOption(args, "max-body-bytes", { env: "TUNA_MAX_BODY_BYTES", min: 1 }),
    headersTimeoutMs: intOption(args, "headers-timeout-ms", { min: 1 }),
    requestTimeoutMs: intOption(args, "request-timeout-ms", { min: 1 }),
    keepAliveTimeoutMs: intOption(args, "keep-alive-timeout-ms", { min: 1 }),
    shutdownTimeoutMs: intOption(args, "shutdown-timeout-ms", { env: "TUNA_SHUTDOWN_TIMEOUT_MS", min: 0 }),
    stateDir: fromUser(args["state-dir"] ?? env.TUNA_ROUTER_STATE_DIR ?? ".tuna/router"),
    usageFlushMs: intOption(args, "usage-flush-ms", { env: "TUNA_USAGE_FLUSH_MS", min: 1 }),
    maxSpoolFiles: intOption(args, "max-spool-files", { min: 1 }),
    configPollMs: intOption(args, "config-poll-ms", { env: "TUNA_CONFIG_POLL_MS", min: 1 }),
    routerId: args["router-id"] ?? env.TUNA_ROUTER_ID,
    allowPrivateUrls: env.TUNA_ALLOW_PRIVATE_URLS,
    logger,
  });
  process.stdout.write(`${JSON.stringify({ event: "listening", port: router.port })}\n`);
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ sig }, "signal received");
    router.close().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err: String(err) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
} catch (err) {
  logger.fatal({ err: (err as Error).message }, "router failed to start");
  process.exit(1);
}
