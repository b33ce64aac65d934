import { expect, type Page, test } from "@playwright/test";
import { fillServerlessDeployment, inviteMember, shot, signUp, uniqueEmail } from "./helpers";

test.setTimeout(300_000);

/** Sideways scrolling: the page is no wider than the window. */
async function pageWidth(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

test("members: arrow keys on a role picker change nothing; the change is sent only once confirmed", async ({ page, browser }) => {
  await signUp(page, "Ada Admin", uniqueEmail("roles-admin"));
  const bob = await inviteMember(page, browser, "developer", "Bob Builder");
  const sent: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("team.changeRole")) sent.push(r.url());
  });

  await page.goto("/members");
  const picker = page.getByTestId(`role-${bob.email}`);
  await expect(picker).toHaveValue("developer");
  // Browsing the options with the keyboard: the picker moves, nothing is sent, nothing is saved.
  await picker.focus();
  await page.keyboard.press("ArrowDown");
  await expect(picker).toHaveValue("viewer");
  await page.waitForTimeout(1500);
  expect(sent).toEqual([]);
  await page.reload();
  await expect(page.getByTestId(`role-${bob.email}`)).toHaveValue("developer");

  // Pick, then "Change role" asks, naming the member and the new role; Cancel sends nothing.
  await page.getByTestId(`role-${bob.email}`).selectOption("viewer");
  await page.getByTestId(`change-role-${bob.email}`).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByRole("heading")).toHaveText("Make Bob Builder a viewer?");
  await shot(page, "members-change-role-confirm");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  expect(sent).toEqual([]);
  // "Keep developer" puts the picker back.
  await page.getByRole("button", { name: "Keep developer" }).click();
  await expect(page.getByTestId(`role-${bob.email}`)).toHaveValue("developer");
  await expect(page.getByTestId(`change-role-${bob.email}`)).toHaveCount(0);

  // Confirmed: saved, and Bob is a viewer.
  await page.getByTestId(`role-${bob.email}`).selectOption("viewer");
  await page.getByTestId(`change-role-${bob.email}`).click();
  await dialog.getByRole("button", { name: "Change role" }).click();
  await expect(page.getByTestId(`change-role-${bob.email}`)).toHaveCount(0);
  expect(sent).toHaveLength(1);
  await page.reload();
  await expect(page.getByTestId(`role-${bob.email}`)).toHaveValue("viewer");
  await bob.page.reload();
  await expect(bob.page.getByTestId("team-switcher")).toContainText("(viewer)");
  await bob.ctx.close();
});

test("members: the permission table says when it could not load, and Retry loads it", async ({ page }) => {
  await signUp(page, "Pia Permissions", uniqueEmail("perm-table"));
  let fail = true;
  await page.route(/\/api\/trpc\/[^?]*team\.permissionTable/, (route) => (fail ? route.abort() : route.continue()));
  await page.goto("/members");
  const section = page.locator("section").filter({ has: page.getByRole("heading", { name: "What each role may do" }) });
  // The query retries twice, then gives up: an error with Retry, not a spinner forever.
  await expect(section.getByRole("alert")).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId("permission-table")).toHaveCount(0);
  fail = false;
  await section.getByRole("button", { name: "Retry" }).click();
  await expect(page.getByTestId("permission-table")).toBeVisible();
  await expect(section.getByRole("alert")).toHaveCount(0);
});

test("settings: a budget says which field to choose, and refuses less than $0.01", async ({ page }) => {
  await signUp(page, "Sol Settings", uniqueEmail("budget-form"));
  await page.goto("/settings");
  const form = page.getByRole("form", { name: "Set a budget" });
  await expect(page.getByText("No budgets set")).toBeVisible();

  // A deployment budget with no deployment to choose.
  await form.getByLabel("Applies to").selectOption("deployment");
  await form.getByLabel("Monthly limit (USD)").fill("5");
  await form.getByRole("button", { name: "Set budget" }).click();
  await expect(form.getByRole("alert")).toHaveText("Choose a deployment: there is no running or pending deployment yet.");
  await expect(form.getByLabel("Deployment")).toHaveAttribute("aria-invalid", "true");

  // A tenth of a cent is refused, in words, next to the limit; nothing is saved.
  await form.getByLabel("Applies to").selectOption("team");
  await expect(form.getByRole("alert")).toHaveCount(0);
  await form.getByLabel("Monthly limit (USD)").fill("0.001");
  await form.getByRole("button", { name: "Set budget" }).click();
  await expect(form.getByRole("alert")).toHaveText("A monthly limit must be at least $0.01.");
  await expect(page.getByText("No budgets set")).toBeVisible();

  // A cent is a budget.
  await form.getByLabel("Monthly limit (USD)").fill("0.01");
  await form.getByRole("button", { name: "Set budget" }).click();
  await expect(page.getByTestId("budgets-list")).toContainText("$0.01");
  await expect(form.getByRole("alert")).toHaveCount(0);
});

test("at 390 px wide the deployments list and a deployment's page do not scroll sideways; after Destroy the charts show its lifetime", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signUp(page, "Nia Narrow", uniqueEmail("narrow"));
  await fillServerlessDeployment(page, "narrow-qwen");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.getByRole("heading", { name: "narrow-qwen", level: 1 })).toBeVisible();
  const detailUrl = page.url();

  // The detail page, with its code snippet (long lines scroll inside their own box).
  await expect(page.getByTestId("snippet-curl")).toBeVisible();
  await expect(page.getByTestId("detail-status")).toHaveText("active", { timeout: 180_000 });
  await expect(page.getByRole("heading", { name: "Traffic and cost" })).toBeVisible();
  expect.soft(await pageWidth(page)).toBeLessThanOrEqual(390);
  await shot(page, "narrow-deployment-detail");

  // The list, with the deployment in it (its row has the Destroy action, under a visually hidden header).
  await page.goto("/deployments");
  await expect(page.getByTestId("deployment-row-narrow-qwen")).toBeVisible();
  expect.soft(await pageWidth(page)).toBeLessThanOrEqual(390);
  await shot(page, "narrow-deployments");

  // A live deployment's charts open on the last 15 minutes; once destroyed, on its lifetime, without a reload.
  await page.goto(detailUrl);
  const range = page.getByRole("group", { name: "Time range" });
  await expect(range.getByRole("button", { name: "15 min" })).toHaveAttribute("aria-pressed", "true");
  await page.getByTestId("destroy-button").click();
  await page.getByRole("dialog").getByRole("textbox").fill("narrow-qwen");
  await page.getByRole("dialog").getByRole("button", { name: "Destroy deployment" }).click();
  await expect(page.getByTestId("detail-status")).toHaveText("destroyed", { timeout: 120_000 });
  await expect(range.getByRole("button", { name: "Lifetime" })).toHaveAttribute("aria-pressed", "true");
  await expect(range.getByRole("button", { name: "15 min" })).toHaveAttribute("aria-pressed", "false");
  await expect(page.getByTestId("stat-cost")).toContainText("$");
  expect.soft(await pageWidth(page)).toBeLessThanOrEqual(390);
});
