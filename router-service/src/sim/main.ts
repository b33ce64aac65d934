// CLI for the simulator: `npm run sim -- --port <n> --model <name> [...]`.
import { numArg, parseArgs } from "../args.js";
import { FAULT_MODES, type FaultMode, startSimulator } from "./simulator.js";

let sim: Awaited<ReturnType<typeof startSimulator>>;
try {
  const args = parseArgs(process.argv.slice(2), [
    "port", "host", "model", "ttft-ms", "tokens-per-s", "cold-start-ms", "max-concurrency", "default-max-tokens", "fault",
    "fault-delay-ms", "fault-status", "fault-after-chunks",
    // Not read here: the local provider tags its simulators' command lines with it (server/providers/local).
    "tuna-resource",
  ]);
  const models = (args.model ?? "sim-model").split(",").map((s) => s.trim()).filter(Boolean);
  const faultMode = (args.fault ?? "none") as FaultMode;
  if (!FAULT_MODES.includes(faultMode)) throw new Error(`--fault must be one of ${FAULT_MODES.join(", ")} (got "${args.fault}")`);
  sim = await startSimulator({
    port: numArg(args, "port", 0),
    host: args.host ?? "127.0.0.1",
    model: models,
    ttftMs: numArg(args, "ttft-ms", 0),
    tokensPerS: numArg(args, "tokens-per-s", 0),
    coldStartMs: numArg(args, "cold-start-ms", 0),
    maxConcurrency: numArg(args, "max-concurrency", 0),
    defaultMaxTokens: numArg(args, "default-max-tokens", 16),
    fault: { mode: faultMode, delayMs: numArg(args, "fault-delay-ms"), status: numArg(args, "fault-status"), afterChunks: numArg(args, "fault-after-chunks") },
    // A preempted instance disappears, like a spot VM reclaimed by the cloud.
    onPreemptExit: () => process.exit(0),
  });
} catch (err) {
  process.stderr.write(`sim: ${(err as Error).message}\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify({ event: "listening", port: sim.port })}\n`);

for (const sig of ["SIGTERM", "SIGINT"] as const)
  process.on(sig, () => {
    void sim.close().then(() => process.exit(0));
  });
