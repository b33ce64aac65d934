import { expect, test } from "@playwright/test";
import { signUp, uniqueEmail } from "./helpers";

test("signing out ends the session everywhere its cookie was copied to; other sign-ins stay", async ({ page, browser }) => {
  const email = uniqueEmail("out");
  await signUp(page, "Otto Out", email, "the-first-password");
  await expect(page.getByTestId("current-user")).toHaveText(email);

  // A copy of this browser's cookies (malware, a shared machine's profile, a backup), used elsewhere.
  const copyCtx = await browser.newContext({ storageState: await page.context().storageState() });
  const copy = await copyCtx.newPage();
  await copy.goto("/deployments");
  await expect(copy.getByTestId("current-user")).toHaveText(email);

  // The same user signed in on another computer.
  const otherCtx = await browser.newContext();
  const other = await otherCtx.newPage();
  await other.goto("/signin");
  await other.getByLabel("Email").fill(email);
  await other.getByLabel("Password").fill("the-first-password");
  await other.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(other.getByTestId("current-user")).toHaveText(email);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/signin(\?|$)/);

  // The copy is signed out at its next navigation; the other computer is not.
  await copy.goto("/deployments");
  await expect(copy).toHaveURL(/\/signin(\?|$)/);
  await expect(copy.getByTestId("current-user")).toHaveCount(0);
  await other.goto("/deployments");
  await expect(other.getByTestId("current-user")).toHaveText(email);
  await copyCtx.close();
  await otherCtx.close();
});
