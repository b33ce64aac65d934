import { expect, type Page, test } from "@playwright/test";
import pg from "pg";
import { fillServerlessDeployment, signUp, uniqueEmail } from "./helpers";

test.setTimeout(300_000);

async function deployServerless(page: Page, slug: string, budget?: string): Promise<string> {
  await fillServerlessDeployment(page, slug, budget);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.getByRole("heading", { name: slug, level: 1 })).toBeVisible();
  return page.url().split("/deployments/")[1];
}

test("a destroyed deployment says so, offers no snippet or running cost, and stays apart from its replacement", async ({ page }) => {
  const email = uniqueEmail("ended");
  await signUp(page, "Eda Ended", email);
  const oldId = await deployServerless(page, "qwen3-0-6b");
  await expect(page.getByTestId("detail-status")).toHaveText("active", { timeout: 180_000 });
  await expect(page.getByTestId("snippet-curl")).toBeVisible();
  await page.getByTestId("destroy-button").click();
  await page.getByRole("dialog").getByRole("textbox").fill("qwen3-0-6b");
  await page.getByRole("dialog").getByRole("button", { name: "Destroy deployment" }).click();
  await expect(page.getByTestId("detail-status")).toHaveText("destroyed", { timeout: 120_000 });

  // What it is, when and by whom; its history and cost; nothing to call and no estimate.
  await expect.soft(page.getByTestId("ended-summary")).toContainText(/Destroyed .* by /);
  await expect.soft(page.getByTestId("ended-summary")).toContainText(`by ${email}`);
  await expect.soft(page.getByTestId("timeline")).toContainText("destroy");
  await expect.soft(page.getByRole("heading", { name: "Traffic and cost" })).toBeVisible();
  await expect.soft(page.getByTestId("stat-cost")).toContainText("$");
  await expect.soft(page.getByText("not serving yet")).toHaveCount(0);
  await expect.soft(page.getByTestId("snippet-curl")).toHaveCount(0);
  await expect.soft(page.getByTestId("endpoint-url")).toHaveCount(0);
  // The header's running-cost estimate (the timeline keeps the quote it was requested with, as history).
  await expect.soft(page.getByText(/^Estimated .* while serving$/)).toHaveCount(0);

  // Its replacement under the same name.
  const newId = await deployServerless(page, "qwen3-0-6b");
  expect(newId).not.toBe(oldId);

  // The list: no hourly cost for the destroyed row, the live one keeps its own.
  await page.goto("/deployments");
  const rows = page.getByTestId("deployment-row-qwen3-0-6b");
  await expect.soft(rows).toHaveCount(2);
  const destroyedRow = rows.filter({ has: page.getByTestId("deployment-status").getByText("destroyed", { exact: true }) });
  const liveRow = rows.filter({ has: page.getByRole("link", { name: "qwen3-0-6b" }) }).filter({ hasNot: page.getByTestId("deployment-status").getByText("destroyed", { exact: true }) });
  await expect.soft(destroyedRow).toHaveCount(1);
  await expect.soft(destroyedRow).not.toContainText("/h");
  await expect.soft(liveRow).toContainText("/h");

  // The Overview: two rows that say which is which and link to the right deployment.
  await page.goto("/");
  const top = page.getByRole("region", { name: "Top deployments by spend this month" });
  const oldRow = top.getByRole("listitem").filter({ has: page.locator(`a[href="/deployments/${oldId}"]`) });
  const newRow = top.getByRole("listitem").filter({ has: page.locator(`a[href="/deployments/${newId}"]`) });
  await expect.soft(oldRow).toHaveCount(1);
  await expect.soft(newRow).toHaveCount(1);
  await expect.soft(oldRow).toContainText("destroyed");
  await expect.soft(newRow).toContainText(/queued|deploying|active/);
  await expect.soft(newRow).not.toContainText("destroyed");
  await oldRow.getByRole("link", { name: "qwen3-0-6b" }).click();
  await expect(page).toHaveURL(new RegExp(`/deployments/${oldId}$`));
  await expect(page.getByTestId("detail-status")).toHaveText("destroyed");
});

test("a budget at 100% shows on the Overview and on the deployment it blocks, linking to Settings", async ({ page }) => {
  await signUp(page, "Bo Blocked", uniqueEmail("blocked"));
  const id = await deployServerless(page, "qwen-capped", "1");
  await page.goto("/");
  await expect(page.getByTestId("spend-month")).toBeVisible();
  await expect(page.getByTestId("budget-blocked")).toHaveCount(0);

  // The evaluator records the 100% threshold for the month (see server/usage/budgets.ts): that state is what
  // makes the router answer 429 insufficient_quota. Reaching it with real spend takes hours of GPU time here.
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const now = new Date();
    const period = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
    const r = await client.query(`UPDATE "Budget" SET "alertsSent" = jsonb_build_object($1::text, '[80, 90, 100]'::jsonb) WHERE scope = 'deployment' AND "targetId" = $2`, [period, id]);
    expect(r.rowCount).toBe(1);
  } finally {
    await client.end();
  }

  await page.reload();
  await expect(page.getByTestId("spend-month")).toBeVisible();
  const banner = page.getByTestId("budget-blocked");
  await expect.soft(banner).toContainText("Monthly budget of deployment qwen-capped ($1.00) reached");
  await expect.soft(banner).toContainText("429 insufficient_quota");
  await expect.soft(banner.getByRole("link", { name: "Review budgets in Settings" })).toHaveAttribute("href", "/settings#budgets-heading");

  await page.goto(`/deployments/${id}`);
  const onDetail = page.getByTestId("budget-blocked");
  await expect.soft(onDetail).toContainText("Monthly budget of deployment qwen-capped ($1.00) reached");
  await expect.soft(onDetail.getByRole("link", { name: "Review budgets in Settings" })).toHaveAttribute("href", "/settings#budgets-heading");
});
