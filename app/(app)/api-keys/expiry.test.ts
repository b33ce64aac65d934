import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { dateInputValueOfExpiry, expiryFromDateInput, isInvalidExpiry } from "./expiry";

// Node re-reads TZ whenever it is assigned, so one process can play browsers in several time zones.
const originalTz = process.env.TZ;
afterEach(() => {
  if (originalTz === undefined) delete process.env.TZ;
  else process.env.TZ = originalTz;
});

const ZONES = ["America/Los_Angeles", "Pacific/Honolulu", "UTC", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland", "Pacific/Kiritimati"];
const DAYS = ["2026-12-15", "2027-01-01", "2027-03-14", "2027-11-07", "2028-02-29", "2027-12-31"];

describe("API key expiry day ↔ instant", () => {
  for (const tz of ZONES) {
    test(`the day shown is the day saved, save after save (TZ=${tz})`, () => {
      process.env.TZ = tz;
      for (const day of DAYS) {
        let shown = day;
        // What the Limits form does on every "Save limits": read the day from the stored instant, save it again.
        for (let save = 0; save < 3; save++) {
          const saved = expiryFromDateInput(shown);
          assert.ok(saved);
          shown = dateInputValueOfExpiry(saved);
          assert.equal(shown, day, `save ${save + 1} of ${day} in ${tz}`);
        }
      }
    });
  }

  test("a key expires at the end of the chosen day in the browser's zone (America/Los_Angeles)", () => {
    process.env.TZ = "America/Los_Angeles";
    const saved = expiryFromDateInput("2026-12-15");
    // 23:59:59 PST (UTC−8) is 07:59:59 UTC the next day: the instant the old UTC reading turned into "12-16".
    assert.equal(saved?.toISOString(), "2026-12-16T07:59:59.000Z");
    assert.equal(dateInputValueOfExpiry(saved), "2026-12-15");
    assert.equal(dateInputValueOfExpiry(saved?.toISOString()), "2026-12-15");
  });

  test("a key saved in one zone shows its local day in another", () => {
    process.env.TZ = "Pacific/Auckland";
    const saved = expiryFromDateInput("2026-12-15");
    assert.equal(saved?.toISOString(), "2026-12-15T10:59:59.000Z");
    process.env.TZ = "America/Los_Angeles";
    assert.equal(dateInputValueOfExpiry(saved), "2026-12-15");
    process.env.TZ = "Asia/Tokyo";
    assert.equal(dateInputValueOfExpiry(saved), "2026-12-15");
  });

  test("empty means no expiry; text that is not a day is an invalid date, not a silent 'never'", () => {
    process.env.TZ = "America/Los_Angeles";
    assert.equal(expiryFromDateInput(""), null);
    assert.equal(expiryFromDateInput("  "), null);
    assert.equal(dateInputValueOfExpiry(null), "");
    assert.equal(isInvalidExpiry(expiryFromDateInput("")), false);
    assert.equal(isInvalidExpiry(expiryFromDateInput("2026-12-15")), false);
    for (const bad of ["2026-02-31", "2026-13-01", "15/12/2026", "tomorrow"]) {
      assert.equal(isInvalidExpiry(expiryFromDateInput(bad)), true, bad);
    }
  });
});
