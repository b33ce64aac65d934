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
