// A runner process running the real functions (restart test): runs until killed.
import { startLocalRunner } from "../runner";

startLocalRunner({ pollMs: 50, leaseMs: 1500, cron: false, log: () => {} });
process.stdout.write("ready\n");
