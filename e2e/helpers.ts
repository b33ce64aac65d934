import { type Browser, expect, type Page } from "@playwright/test";
import { randomBytes } from "node:crypto";

export function uniqueEmail(label: string) {
  return `${label}-${randomBytes(4).toString("hex")}@example.test`;
}

export async function signUp(page: Page, name: string, email: string, password = "a-very-good-password") {
  await page.goto("/signup");
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByTestId("current-user")).toHaveText(email);
}

export async function shot(page: Page, name: string) {
  await page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });
}

/** The admin creates an invite link for `role`; a new person signs up in their own context and joins. */
export async function inviteMember(admin: Page, browser: Browser, role: "developer" | "viewer", name: string) {
  await admin.goto("/members");
  await admin.locator("#invite-role").selectOption(role);
  await admin.getByRole("button", { name: "Create invite link" }).click();
  const link = await admin.getByTestId("invite-link").inputValue();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const email = uniqueEmail(role);
  await signUp(page, name, email);
  await page.goto(link);
  await page.getByRole("button", { name: /^Join / }).click();
  await expect(page.getByTestId("team-switcher")).toContainText(`(${role})`);
  return { ctx, page, email };
}

/** Fills New deployment for a serverless-only deployment on the local provider (not submitted). */
export async function fillServerlessDeployment(page: Page, slug: string, budget?: string) {
  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Name (optional)", { exact: true }).fill(slug);
  await page.getByLabel("Serverless only").check();
  await page.getByLabel("Serverless provider").selectOption("local");
  await expect(page.getByText("No approval needed: it starts right away.")).toBeVisible();
  if (budget !== undefined) await page.getByLabel(/^Monthly budget for this deployment/).fill(budget);
}
