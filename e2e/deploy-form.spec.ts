import { type Browser, expect, type Page, test } from "@playwright/test";
import { shot, signUp, uniqueEmail } from "./helpers";

/** The admin creates an admin invite link; a new person signs up in their own context and joins with it. */
async function inviteAdmin(admin: Page, browser: Browser, name: string) {
  await admin.goto("/members");
  await admin.locator("#invite-role").selectOption("admin");
  await admin.getByRole("button", { name: "Create invite link" }).click();
  const link = await admin.getByTestId("invite-link").inputValue();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signUp(page, name, uniqueEmail("admin2"));
  await page.goto(link);
  await page.getByRole("button", { name: /^Join / }).click();
  await expect(page.getByTestId("team-switcher")).toContainText("(admin)");
  return ctx;
}

test("spot-only shows the provider it quotes; the spot comparison highlights the cloud the estimate prices", async ({ page }) => {
  await signUp(page, "Ada Admin", uniqueEmail("ada"));
  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("GPU", { exact: true }).selectOption("L4");
  await page.getByLabel("Serverless provider").selectOption("local");
  const estimate = page.getByTestId("plan-estimate");
  const comparison = page.getByTestId("provider-comparison");
  const highlighted = comparison.locator("tr[aria-current='true']");

  // Hybrid on the simulator: spot is priced at the cheapest cloud's L4 spot price (GCP $0.22), and that row is
  // the highlighted one, not AWS ($0.28).
  await expect(estimate).toContainText("illustrative: gcp spot price");
  await expect(highlighted).toHaveCount(1);
  await expect(highlighted).toContainText("gcp");
  await expect(highlighted).toContainText("$0.22");
  await expect(highlighted).toContainText("in estimate");
  await expect(comparison.getByRole("row").filter({ hasText: "aws" })).not.toHaveAttribute("aria-current", "true");

  // Spot only: the select keeps the simulator (its spot side), and the quote says the same.
  await page.getByLabel("Spot only").check();
  const provider = page.getByLabel("Spot provider");
  await expect(provider).toHaveValue("local-spot");
  await expect(provider.locator("option:checked")).toHaveText("Local simulator (spot)");
  await expect(estimate).toContainText("local-spot simulator");
  await expect(highlighted).toContainText("gcp");
  await shot(page, "deploy-form-spot-only-local");

  // The mode's default is SkyPilot: the estimate follows, on the chosen cloud (AWS); adding GCP moves it there.
  await provider.selectOption("cheapest");
  await expect(provider.locator("option:checked")).toHaveText("Default (SkyPilot)");
  await expect(estimate).toContainText(/aws spot 1 replica\(s\) × 1 L4 × \$0\.28/);
  await expect(estimate).not.toContainText("simulator");
  await expect(highlighted).toContainText("aws");
  await page.getByRole("checkbox", { name: "gcp" }).check();
  await expect(estimate).toContainText(/gcp spot 1 replica\(s\) × 1 L4 × \$0\.22/);
  await expect(highlighted).toHaveCount(1);
  await expect(highlighted).toContainText("gcp");
  await expect(comparison.getByRole("row").filter({ hasText: "aws" })).toContainText("chosen");

  // Back to hybrid from the spot simulator: the serverless simulator, shown and quoted.
  await provider.selectOption("local-spot");
  await page.getByLabel("Hybrid").check();
  const svl = page.getByLabel("Serverless provider");
  await expect(svl).toHaveValue("local");
  await expect(svl.locator("option:checked")).toHaveText("Local simulator (serverless)");
  await expect(estimate).toContainText(/local 1 warm worker/);
  // A provider the other mode does not offer falls back to that mode's default.
  await page.getByLabel("Spot only").check();
  await provider.selectOption("skyserve");
  await page.getByLabel("Serverless only").check();
  await expect(svl).toHaveValue("cheapest");
  await expect(svl.locator("option:checked")).toHaveText("Cheapest for this GPU");
});

test("min warm workers above max workers: a plain sentence next to Max workers", async ({ page }) => {
  await signUp(page, "Ada Admin", uniqueEmail("ada"));
  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Serverless provider").selectOption("local");
  await page.getByLabel("Min warm workers").fill("3");
  await page.getByLabel("Max workers").fill("2");
  await expect(page.locator("#d-maxWorkers-error")).toHaveText("Max workers (2) cannot be fewer than the min warm workers (3).");
  await expect(page.getByLabel("Max workers")).toHaveAttribute("aria-invalid", "true");
  await expect(page.locator("body")).not.toContainText(/invalid deployment spec|serverlessScaling|tuna:/);
  await shot(page, "deploy-form-scaling-error");
  await page.getByLabel("Max replicas").fill("0");
  await page.getByLabel("Max workers").fill("3");
  await expect(page.locator("#d-maxReplicas-error")).toHaveText("Max replicas must be at least 1.");
  await expect(page.locator("#d-maxWorkers-error")).toHaveCount(0);
  // Submitting says the same, in the same place.
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.locator("#d-maxReplicas-error")).toHaveText("Max replicas must be at least 1.");
  await expect(page.locator("body")).not.toContainText(/invalid deployment spec|spotScaling|tuna:/);
  await expect(page).toHaveURL(/\/deployments\/new$/);
});

test("a sole admin's request over the threshold: the form and the approvals card say nobody else can approve it", async ({ page, browser }) => {
  await signUp(page, "Ada Admin", uniqueEmail("ada"));
  await page.goto("/settings");
  await page.getByLabel("Cost threshold, USD per hour (empty = none)").fill("0.5");
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByText("Policy saved.")).toBeVisible();

  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Name (optional)", { exact: true }).fill("solo-big");
  await page.getByLabel("GPU", { exact: true }).selectOption("L4");
  await page.getByLabel("Serverless provider").selectOption("local");
  const notice = page.getByTestId("approval-notice");
  await expect(notice).toContainText("threshold");
  const warning = notice.getByTestId("no-other-approver");
  await expect(warning).toContainText("this team has no other admin");
  await expect(warning.getByRole("link", { name: "Invite an admin in Members" })).toHaveAttribute("href", "/members");
  await shot(page, "deploy-form-sole-admin");
  await page.getByRole("button", { name: "Request approval and deploy" }).click();
  await expect(page.getByRole("heading", { name: "solo-big", level: 1 })).toBeVisible();
  await expect(page.getByTestId("detail-status")).toHaveText("pending approval");

  // The approvals card: not a dead end.
  await page.goto("/approvals");
  const card = page.getByTestId("approval-solo-big");
  const stuck = card.getByTestId("approval-no-other-approver");
  await expect(stuck).toContainText("You requested this, and this team has no other admin to approve it");
  await expect(stuck.getByRole("link", { name: "Invite an admin in Members" })).toHaveAttribute("href", "/members");
  await expect(card.getByRole("button", { name: "Approve" })).toBeDisabled();
  await shot(page, "approvals-sole-admin");

  // Once another admin joins, the request is theirs to approve: no warning on the card or the form.
  const ctx = await inviteAdmin(page, browser, "Bea Admin");
  try {
    await page.goto("/approvals");
    await expect(card).toBeVisible();
    await expect(card.getByText("another admin must approve it")).toBeVisible();
    await expect(stuck).toHaveCount(0);
    await page.goto("/deployments/new");
    await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
    await page.getByLabel("Name (optional)", { exact: true }).fill("solo-big-2");
    await page.getByLabel("Serverless provider").selectOption("local");
    await expect(page.getByTestId("approval-notice")).toContainText("threshold");
    await expect(page.getByTestId("no-other-approver")).toHaveCount(0);
  } finally {
    await ctx.close();
  }
});
