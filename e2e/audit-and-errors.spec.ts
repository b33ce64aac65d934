import { readFileSync } from "node:fs";
import { expect, test } from "@playwright/test";
import { shot, signUp, uniqueEmail } from "./helpers";

const CANT_REACH = "Can't reach Tuna. Check your connection and try again.";
const UNAVAILABLE = "Tuna is not responding right now. Try again in a moment.";
const RAW = /Failed to fetch|NetworkError|Load failed|Unexpected token|is not valid JSON/;

// One account for both halves: signing up costs seconds (scrypt), and the audit page is where the network drops.
test("audit log: targets by name, a filter that ignores case, a CSV export of what is filtered; then the network drops", async ({ page, browser }) => {
  await signUp(page, "Ada Audit", uniqueEmail("audit"));
  await page.goto("/audit");
  const table = page.getByTestId("audit-table");
  await expect(page.getByTestId("audit-action").first()).toHaveText("team.create");
  // Targets by name, the id underneath (and in the tooltip).
  const teamTarget = table.getByRole("row").filter({ hasText: "team.create" }).getByTestId("audit-target");
  await expect(teamTarget).toContainText("Team Ada's team");
  const teamId = (await teamTarget.getByTestId("audit-target-id").textContent()) ?? "";
  expect(teamId).toMatch(/^c[a-z0-9]{20,}$/);
  await expect(teamTarget).toHaveAttribute("title", `team ${teamId}`);

  // "TEAM" finds team.create (actions are lowercase).
  await page.getByLabel("Action starts with").fill("  TEAM ");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page).toHaveURL(/action=TEAM/);
  await expect(page.getByTestId("audit-action")).toHaveText(["team.create"]);

  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const file = await download;
  expect(file.suggestedFilename()).toMatch(/^tuna-audit-adas-team[a-z0-9-]*-\d{4}-\d{2}-\d{2}\.csv$/);
  const csv = readFileSync((await file.path()) ?? "", "utf8");
  const lines = csv.split("\r\n");
  expect(lines[0]).toBe("seq,time,actor,actor_id,action,target_type,target_id,target_name,ip,user_agent,details,prev_hash,hash");
  expect(lines.slice(1, -1)).toHaveLength(1);
  expect(lines[1]).toContain(`,team.create,team,${teamId},Ada's team,`);
  expect(lines[1]).toMatch(/,[0-9a-f]{64},[0-9a-f]{64}$/);
  await expect(page.getByTestId("audit-export-result")).toHaveText(`Exported 1 entry to ${file.suggestedFilename()}.`);
  // The export is itself in the log.
  await page.getByLabel("Action starts with").fill("audit");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.getByTestId("audit-action")).toHaveText(["audit.export"]);
  await page.getByLabel("Action starts with").fill("  TEAM ");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.getByTestId("audit-action")).toHaveText(["team.create"]);
  await shot(page, "audit-export");

  // The network drops: a mutation (no retries) says so in plain words, not the browser's.
  await page.route("**/api/trpc/**", (route) => route.abort("internetdisconnected"));
  await page.getByRole("button", { name: "Verify integrity" }).click();
  await expect(page.getByRole("alert").filter({ hasText: CANT_REACH })).toBeVisible();
  await expect(page.locator("body")).not.toContainText(RAW);

  // A reverse proxy answers its own HTML page instead of Tuna's JSON.
  await page.unroute("**/api/trpc/**");
  await page.route("**/api/trpc/**", (route) => route.fulfill({ status: 502, contentType: "text/html", body: "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>" }));
  await page.getByRole("button", { name: "Verify integrity" }).click();
  await expect(page.getByRole("alert").filter({ hasText: UNAVAILABLE })).toBeVisible();
  await expect(page.locator("body")).not.toContainText(RAW);

  // A page whose data cannot load (after React Query's retries) says the same, with Retry.
  await page.route("**/api/trpc/**", (route) => route.abort("connectionrefused"));
  await page.goto("/api-keys");
  await expect(page.getByRole("alert").filter({ hasText: CANT_REACH }).first()).toBeVisible({ timeout: 20_000 });
  await expect(page.locator("body")).not.toContainText(RAW);
  await shot(page, "errors-cant-reach");

  // Signing in while Tuna is unreachable: a message on the form, not the browser's error page.
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto("/signin");
  await p.route("**/api/auth/**", (route) => route.abort("internetdisconnected"));
  await p.getByLabel("Email").fill("someone@example.test");
  await p.getByLabel("Password").fill("a-very-good-password");
  await p.getByRole("button", { name: "Sign in" }).click();
  await expect(p.getByRole("alert").filter({ hasText: /\S/ })).toHaveText(CANT_REACH);
  await expect(p).toHaveURL(/\/signin$/);
  await expect(p.getByRole("button", { name: "Sign in" })).toBeEnabled();
  await ctx.close();
});

test("signing out stays on the host the user is on, even when NEXTAUTH_URL names another", async ({ page, baseURL }) => {
  // run-e2e.ts sets NEXTAUTH_URL to http://127.0.0.1:<port>; the same server answers as localhost too.
  const other = new URL(baseURL ?? "");
  expect(other.hostname).toBe("127.0.0.1");
  other.hostname = "localhost";
  const origin = other.origin;
  const email = uniqueEmail("host");
  await page.goto(`${origin}/signup`);
  await page.getByLabel("Name").fill("Hugo Host");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("a-very-good-password");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByTestId("current-user")).toHaveText(email);
  expect(new URL(page.url()).origin).toBe(origin);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(`${origin}/signin`);
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  // Signed out on this host for real: a dashboard page leads back to sign-in.
  await page.goto(`${origin}/audit`);
  await expect(page).toHaveURL(`${origin}/signin?callbackUrl=%2Faudit`);
});
