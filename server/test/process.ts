import { readFileSync } from "node:fs";

/**
 * Whether a process is running. A child that exited but is not reaped yet by this test process is a
 * zombie and counts as gone (signal 0 alone would call it alive and make "nothing left running" flaky).
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
