import { execFileSync } from "node:child_process";
import { expect, type Page, test } from "@playwright/test";
import { shot, signUp, uniqueEmail } from "./helpers";

async function signIn(page: Page, email: string, password: string) {
  await page.goto("/signin");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

/** A page of a signed-out browser is the sign-in form. */
async function expectSignedOut(page: Page) {
  await expect(page).toHaveURL(/\/signin(\?|$)/);
  await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
  await expect(page.getByTestId("current-user")).toHaveCount(0);
}

/** What an operator does: `npm run reset-password -- <email>` against the app's database; the link it printed. */
function operatorResetLink(email: string): string {
  const out = execFileSync("npm", ["run", "--silent", "reset-password", "--", email], { env: process.env, encoding: "utf8" });
  const link = out.split("\n").find((l) => l.startsWith("http"));
  if (!link) throw new Error(`no link in the script's output:\n${out}`);
  return link;
}

test("password: a change signs out the other browser and keeps this one; an operator's reset link sets a new one, once", async ({ page, browser }) => {
  const email = uniqueEmail("pw");
  await signUp(page, "Paula Password", email, "the-first-password");

  // A second browser, signed in before the change.
  const otherCtx = await browser.newContext();
  const other = await otherCtx.newPage();
  await signIn(other, email, "the-first-password");
  await expect(other.getByTestId("current-user")).toHaveText(email);

  await page.goto("/settings");
  const form = page.getByRole("form", { name: "Change password" });
  // A wrong current password: said next to that field, nothing changed.
  await form.getByLabel("Current password").fill("not-my-password");
  await form.getByLabel("New password", { exact: true }).fill("the-second-password");
  await form.getByLabel("New password again").fill("the-second-password");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(page.locator("#current-password-error")).toHaveText("Your current password is not correct.");
  // Too short: sign-up's rule.
  await form.getByLabel("Current password").fill("the-first-password");
  await form.getByLabel("New password", { exact: true }).fill("short");
  await form.getByLabel("New password again").fill("short");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(page.locator("#new-password-error")).toHaveText("Use at least 10 characters.");

  await form.getByLabel("New password", { exact: true }).fill("the-second-password");
  await form.getByLabel("New password again").fill("the-second-password");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(form.getByRole("status")).toHaveText("Password changed. Every other session was signed out. This browser stays signed in.");
  await shot(page, "settings-password-changed");

  // This browser stays in, also after a reload; the other one is out at its next navigation.
  await page.reload();
  await expect(page.getByTestId("current-user")).toHaveText(email);
  await other.goto("/settings");
  await expectSignedOut(other);
  // There, the old password no longer works and the new one does.
  await signIn(other, email, "the-first-password");
  await expect(other.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("Email or password is incorrect.");
  await signIn(other, email, "the-second-password");
  await expect(other.getByTestId("current-user")).toHaveText(email);

  // "Sign out everywhere else" from the other browser: this one is out, that one stays.
  await other.goto("/settings");
  const signOutOthers = other.getByRole("form", { name: "Sign out everywhere else" });
  // A copied cookie must not be enough: the password is asked for, and a wrong one is refused.
  await signOutOthers.getByLabel("Current password").fill("not-the-password");
  await signOutOthers.getByRole("button", { name: "Sign out everywhere else" }).click();
  await expect(signOutOthers.getByRole("alert")).toHaveText("Your current password is not correct.");
  await signOutOthers.getByLabel("Current password").fill("the-second-password");
  await signOutOthers.getByRole("button", { name: "Sign out everywhere else" }).click();
  await expect(other.getByRole("region", { name: "Password" }).getByRole("status")).toHaveText("Every other session was signed out. This browser stays signed in.");
  await page.goto("/");
  await expectSignedOut(page);
  await other.reload();
  await expect(other.getByTestId("current-user")).toHaveText(email);

  // Forgotten password: the sign-in page says what to do; the operator's link sets a new password.
  await expect(page.getByText("Forgot your password? Ask your Tuna operator to run npm run reset-password -- <email>.")).toBeVisible();
  const link = operatorResetLink(email);
  expect(link).toMatch(/\/reset-password\?token=[\w-]{43}$/);
  await page.goto(link);
  await page.getByLabel("New password", { exact: true }).fill("the-third-password");
  await page.getByLabel("New password again").fill("the-third-password");
  await page.getByRole("button", { name: "Set new password" }).click();
  await expect(page).toHaveURL(/\/signin\?notice=password-reset$/);
  await expect(page.getByRole("status")).toHaveText("Your new password is set, and every session was signed out. Sign in with the new password.");
  await shot(page, "signin-after-reset");
  await signIn(page, email, "the-second-password");
  await expect(page.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("Email or password is incorrect.");
  await signIn(page, email, "the-third-password");
  await expect(page.getByTestId("current-user")).toHaveText(email);

  // The reset signed out every session, the other browser's too; the link works only once.
  await other.goto("/");
  await expectSignedOut(other);
  await other.goto(link);
  await expect(other.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("This link has expired or was already used; ask your operator for a new one.");
  await expect(other.getByRole("button", { name: "Set new password" })).toHaveCount(0);
  await otherCtx.close();
});
