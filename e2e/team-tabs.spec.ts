import { expect, type Page, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";

async function switchTeam(page: Page, label: string) {
  await page.getByTestId("team-switcher").click();
  await page.getByRole("button", { name: label, exact: true }).click();
  await expect(page.getByTestId("team-switcher")).toContainText(label);
}

async function createKey(page: Page, label: string) {
  await page.getByLabel("Label").fill(label);
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-api-key")).toHaveValue(/^tuna_sk_/);
}

test("two tabs: each acts on the team it shows, and a tab whose team was taken away says so", async ({ page, browser }) => {
  await signUp(page, "Ada Admin", uniqueEmail("ada"));
  // Bob signs up (his personal team, admin) and joins Ada's team as a developer: the cookie now selects Ada's.
  const bob = await inviteMember(page, browser, "developer", "Bob Builder");
  const tabA = bob.page;
  await tabA.goto("/api-keys");
  await expect(tabA.getByTestId("team-switcher")).toContainText("Ada's team (developer)");

  // Tab B, same browser: switches to Bob's own team, which changes the cookie both tabs share.
  const tabB = await bob.ctx.newPage();
  await tabB.goto("/");
  await switchTeam(tabB, "Bob's team (admin)");

  // Tab A still shows Ada's team, so that is where its key goes.
  await createKey(tabA, "created-in-tab-A");
  await expect(tabA.getByTestId("team-switcher")).toContainText("Ada's team (developer)");
  await expect(tabA.getByTestId("key-created-in-tab-A")).toBeVisible();
  // Moving around the tab keeps its team: the members are Ada's team's.
  const navA = tabA.getByRole("navigation", { name: "Main" });
  await navA.getByRole("link", { name: "Members" }).click();
  await expect(tabA.getByTestId("members-table")).toContainText("Ada Admin");
  await expect(tabA.getByTestId("team-switcher")).toContainText("Ada's team (developer)");
  await navA.getByRole("link", { name: "API keys" }).click();
  await expect(tabA.getByTestId("key-created-in-tab-A")).toBeVisible();

  await page.goto("/api-keys");
  await expect(page.getByTestId("key-created-in-tab-A")).toBeVisible();
  await tabB.goto("/api-keys");
  await expect(tabB.getByTestId("team-switcher")).toContainText("Bob's team (admin)");
  await expect(tabB.getByText("No API keys yet")).toBeVisible();
  await createKey(tabB, "bob-own-key");
  await shot(tabA, "team-tabs-tab-a");

  // Ada removes Bob. His tab A, still showing Ada's team, creates nothing anywhere (his own team is the
  // cookie's now) and says what happened instead of showing his own team's keys.
  await page.goto("/members");
  await page.getByTestId("members-table").getByRole("row").filter({ hasText: bob.email }).getByRole("button", { name: "Remove" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Remove member" }).click();
  await expect(page.getByTestId("members-table").getByText(bob.email)).toHaveCount(0);

  await tabA.getByLabel("Label").fill("after-removal");
  await tabA.getByRole("button", { name: "Create key" }).click();
  const lost = tabA.getByTestId("team-lost");
  await expect(lost).toContainText("You no longer have access to Ada's team");
  await expect(tabA.getByTestId("team-switcher")).toContainText("Ada's team (no access)");
  await expect(tabA.getByTestId("key-bob-own-key")).toHaveCount(0);
  await expect(tabA.getByTestId("key-created-in-tab-A")).toHaveCount(0);
  await tabB.reload();
  await expect(tabB.getByTestId("key-bob-own-key")).toBeVisible();
  await expect(tabB.getByTestId("key-after-removal")).toHaveCount(0);
  await page.goto("/api-keys");
  await expect(page.getByTestId("key-created-in-tab-A")).toBeVisible();
  await expect(page.getByTestId("key-after-removal")).toHaveCount(0);
  await shot(tabA, "team-tabs-removed");
  await lost.getByRole("button", { name: "Open Bob's team" }).click();
  await expect(tabA.getByTestId("team-switcher")).toContainText("Bob's team (admin)");
  await tabA.goto("/api-keys");
  await expect(tabA.getByTestId("key-bob-own-key")).toBeVisible();
  await bob.ctx.close();
});

test("team switcher: arrow keys browse the teams without switching or leaving the page; Enter switches", async ({ page }) => {
  await signUp(page, "Kim Keys", uniqueEmail("keys"));
  await page.getByTestId("team-switcher").click();
  await page.getByRole("link", { name: "+ New team…" }).click();
  await page.getByLabel("Team name").fill("Second team");
  await page.getByRole("button", { name: "Create team" }).click();
  await expect(page.getByTestId("team-switcher")).toContainText("Second team (admin)");

  await page.goto("/api-keys");
  const switcher = page.getByTestId("team-switcher");
  const list = page.getByRole("group", { name: "Switch team" });
  await switcher.focus();
  // Opens on the current team; then every entry in turn, wrapping around.
  await page.keyboard.press("ArrowDown");
  await expect(switcher).toHaveAttribute("aria-expanded", "true");
  await expect(list.getByRole("button", { name: "Second team (admin)" })).toBeFocused();
  await page.keyboard.press("ArrowDown");
  await expect(list.getByRole("link", { name: "+ New team…" })).toBeFocused();
  await page.keyboard.press("ArrowDown");
  await expect(list.getByRole("button", { name: "Kim's team (admin)" })).toBeFocused();
  await page.keyboard.press("ArrowUp");
  await expect(list.getByRole("link", { name: "+ New team…" })).toBeFocused();
  await page.keyboard.press("ArrowUp");
  await expect(list.getByRole("button", { name: "Second team (admin)" })).toBeFocused();
  // Nothing happened on the way: same page, same team (a navigation would have started by now).
  await page.waitForTimeout(500);
  await expect(page).toHaveURL(/\/api-keys$/);
  await expect(switcher).toContainText("Second team (admin)");

  await page.keyboard.press("Escape");
  await expect(switcher).toHaveAttribute("aria-expanded", "false");
  await expect(switcher).toBeFocused();

  // An explicit choice switches.
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowUp");
  await expect(list.getByRole("button", { name: "Kim's team (admin)" })).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(/\/$/);
  await expect(switcher).toContainText("Kim's team (admin)");
});

test("header at 390 px: compact, a long team name is cut short with the whole name in its title", async ({ page }) => {
  await signUp(page, "Nia Narrow", uniqueEmail("narrow"));
  const long = "Inference platform and reliability engineering (Europe-West)";
  expect(long).toHaveLength(60);
  await page.goto("/settings");
  const form = page.getByRole("form", { name: "Team name" });
  await form.getByLabel("Name", { exact: true }).fill(long);
  await form.getByRole("button", { name: "Save name" }).click();
  await expect(form.getByRole("status")).toContainText("Team renamed");

  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto("/api-keys");
  const switcher = page.getByTestId("team-switcher");
  await expect(switcher).toHaveAttribute("title", `${long} (admin)`);
  const header = await page.locator("header").boundingBox();
  expect(header?.height ?? Infinity, "header height at 390 px").toBeLessThanOrEqual(110);
  const box = await switcher.boundingBox();
  expect((box?.x ?? 0) + (box?.width ?? Infinity)).toBeLessThanOrEqual(390);
  expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
  // Every page stays one tap away: the navigation row scrolls sideways instead of wrapping.
  const nav = page.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Settings" }).click();
  await expect(page.getByRole("heading", { name: "Team settings", level: 1 })).toBeVisible();
  await expect(nav.getByRole("link", { name: "Settings" })).toBeInViewport();
  await shot(page, "header-390");

  // The switcher's list opens within the screen and names the user, whose address the narrow header leaves out.
  await switcher.click();
  const panel = page.getByRole("group", { name: "Switch team" });
  await expect(panel).toContainText("Signed in as");
  const p = await panel.boundingBox();
  expect((p?.x ?? 0) + (p?.width ?? Infinity)).toBeLessThanOrEqual(390);
});
