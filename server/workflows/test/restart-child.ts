// A runner process for the restart test: runs the probe functions until killed.
import { setLocalFunctions, startLocalRunner } from "../runner";
import { probeFunctions } from "./probe-functions";

setLocalFunctions(probeFunctions);
startLocalRunner({ pollMs: 50, leaseMs: 1000, cron: false, log: () => {} });
process.stdout.write("ready\n");
