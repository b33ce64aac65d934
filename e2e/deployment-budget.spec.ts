import { expect, test } from "@playwright/test";
import { fillServerlessDeployment as fillDeployment, signUp, uniqueEmail } from "./helpers";

test("new deployment: a bad budget is a field error and creates nothing; a budget that fails afterwards is reported", async ({ page }) => {
  await signUp(page, "Bea Budget", uniqueEmail("deploy-budget"));
  const creates: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("deployments.create")) creates.push(r.url());
  });

  // A negative budget: the error sits next to the field, nothing is requested.
  await fillDeployment(page, "qwen-negative", "-5");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  const budgetField = page.getByLabel(/^Monthly budget for this deployment/);
  await expect(page.locator("#d-budget-error")).toContainText("at least $0.01");
  await expect(budgetField).toBeFocused();
  await expect(budgetField).toHaveAttribute("aria-invalid", "true");
  expect(page.url()).toMatch(/\/deployments\/new$/);
  expect(creates).toHaveLength(0);
  await page.goto("/deployments");
  await expect(page.getByText("No deployments yet")).toBeVisible();

  // The deployment is created but setting its budget fails: the page says so and where to fix it.
  await page.route(/usage\.budgets\.set/, (route) => route.abort("failed"));
  await fillDeployment(page, "qwen-unbudgeted", "25");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  const notice = page.getByTestId("budget-not-set");
  await expect(notice).toContainText("Deployment “qwen-unbudgeted” was created, but its monthly budget was not set.");
  await expect(notice.getByRole("link", { name: "Set the budget in Settings" })).toHaveAttribute("href", "/settings#budgets-heading");
  // No second deployment from a second click.
  await expect(page.getByRole("button", { name: "Deploy", exact: true })).toBeDisabled();
  expect(creates).toHaveLength(1);
  await page.unroute(/usage\.budgets\.set/);
  await notice.getByRole("link", { name: "Open the deployment" }).click();
  await expect(page.getByRole("heading", { name: "qwen-unbudgeted", level: 1 })).toBeVisible();
  await page.goto("/settings");
  await expect(page.getByText("No budgets set")).toBeVisible();

  // A good budget is set and the form goes on to the deployment.
  await fillDeployment(page, "qwen-budgeted", "25");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.getByRole("heading", { name: "qwen-budgeted", level: 1 })).toBeVisible();
  await page.goto("/settings");
  await expect(page.getByTestId("budgets-list")).toContainText("qwen-budgeted");
  await expect(page.getByTestId("budgets-list")).toContainText("of $25.00");
});

test("new deployment: a GPU without a known price is said plainly, and no budget is allowed to look after it", async ({ page }) => {
  await signUp(page, "Una Unpriced", uniqueEmail("deploy-unpriced"));
  const creates: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("deployments.create")) creates.push(r.url());
  });
  const fillH200 = async (slug: string) => {
    await page.goto("/deployments/new");
    await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
    await page.getByLabel("Name (optional)", { exact: true }).fill(slug);
    await page.getByLabel("Spot only").check();
    await page.getByLabel("GPU", { exact: true }).selectOption("H200");
  };

  // No budget anywhere: the quote says which part has no price; a budget for this deployment is refused before creating it.
  await fillH200("h200-spot");
  await expect(page.getByTestId("unknown-prices")).toContainText("No known spot price for H200 on aws: its spend cannot be counted");
  const budgetField = page.getByLabel(/^Monthly budget for this deployment/);
  await budgetField.fill("25");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.locator("#d-budget-error")).toContainText("No known spot price for H200 on aws, so this deployment's budget could not be enforced");
  await expect(budgetField).toBeFocused();
  expect(creates).toHaveLength(0);
  // Without the budget it may be deployed.
  await budgetField.fill("");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.getByRole("heading", { name: "h200-spot", level: 1 })).toBeVisible();
  expect(creates).toHaveLength(1);

  // A team budget set now names what it cannot count, on saving and in the list.
  await page.goto("/settings");
  await page.getByLabel("Monthly limit (USD)").fill("100");
  await page.getByRole("button", { name: "Set budget" }).click();
  await expect(page.getByTestId("budget-set-warnings")).toContainText("Spend of h200-spot with no known price is not counted: no known spot price for H200 on aws.");
  await expect(page.getByTestId("budget-unpriced")).toContainText("Not counted, no known price: h200-spot (no known spot price for H200 on aws).");

  // With the team budget, the quote refuses such a deployment next to the GPU; a priced GPU is fine.
  await fillH200("h200-again");
  await expect(page.locator("#d-gpu-error")).toHaveText("No known spot price for H200 on aws, so the team's budget could not be enforced; choose another GPU or cloud.");
  await page.getByLabel("GPU", { exact: true }).selectOption("H100");
  await expect(page.locator("#d-gpu-error")).toHaveCount(0);
  await expect(page.getByTestId("plan-cost")).toContainText("/h");
  expect(creates).toHaveLength(1);
});
