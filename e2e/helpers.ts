import { expect, type Page } from "@playwright/test";
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
