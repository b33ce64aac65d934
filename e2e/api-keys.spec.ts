import { expect, test } from "@playwright/test";
import { signUp, uniqueEmail } from "./helpers";

// West of UTC, where reading the expiry back as a UTC day moved it one day later on every save.
test.use({ timezoneId: "America/Los_Angeles" });

test("a key's expiry stays on the chosen day however often its limits are saved", async ({ page }) => {
  await signUp(page, "Kim Keys", uniqueEmail("keys-expiry"));
  expect(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone)).toBe("America/Los_Angeles");
  const year = new Date().getFullYear() + 1;
  const day = `${year}-12-15`;

  await page.goto("/api-keys");
  await page.getByLabel("Label").fill("expiring");
  await page.getByLabel("Expires on (optional)").fill(day);
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-api-key")).toBeVisible();
  const row = page.getByTestId("key-expiring");
  await expect(row).toContainText(`12/15/${year}`);

  const limits = page.getByRole("form", { name: "Limits of expiring" });
  for (let save = 1; save <= 3; save++) {
    await row.getByRole("button", { name: "Limits" }).click();
    await expect(limits.getByLabel("Expires on"), `before save ${save}`).toHaveValue(day);
    await limits.getByLabel("Requests / min").fill(String(100 + save));
    await limits.getByRole("button", { name: "Save limits" }).click();
    await expect(limits).toHaveCount(0);
    // The list has reloaded with this save before the form is opened again.
    await expect(row).toContainText(`${100 + save} rpm`);
    await expect(row).toContainText(`12/15/${year}`);
  }
  await page.reload();
  await row.getByRole("button", { name: "Limits" }).click();
  await expect(limits.getByLabel("Expires on")).toHaveValue(day);
});

test("submitting Create key twice before the first answer creates one key", async ({ page }) => {
  await signUp(page, "Dee Double", uniqueEmail("keys-double"));
  await page.goto("/api-keys");
  await page.getByLabel("Label").fill("double");
  const form = page.getByRole("form", { name: "Create an API key" });
  // Two submits in the same task: the button cannot have re-rendered as disabled in between.
  await form.evaluate((f: HTMLFormElement) => {
    f.requestSubmit();
    f.requestSubmit();
  });
  await expect(page.getByTestId("new-api-key")).toHaveValue(/^tuna_sk_/);
  await page.waitForLoadState("networkidle");
  await page.reload();
  await expect(page.getByTestId("keys-table")).toBeVisible();
  await expect(page.getByTestId("key-double")).toHaveCount(1);

  // The same through the mouse.
  await page.getByLabel("Label").fill("double-click");
  await page.getByRole("button", { name: "Create key" }).dblclick();
  await expect(page.getByTestId("new-api-key")).toHaveValue(/^tuna_sk_/);
  await page.waitForLoadState("networkidle");
  await page.reload();
  await expect(page.getByTestId("key-double-click")).toHaveCount(1);
  await expect(page.getByTestId("keys-table").locator("tbody tr")).toHaveCount(2);
});
