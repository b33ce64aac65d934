import { expect, type Page, test } from "@playwright/test";
import pg from "pg";
import { shot, signUp, uniqueEmail } from "./helpers";

/**
 * Linking a GitHub/Google account needs the provider's OAuth server, which cannot be reached here: the rows are
 * written as next-auth's adapter and linkAccount event would leave them (a label and a link date, or, for a
 * link made before those were recorded, neither).
 */
async function linkAccounts(email: string) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(`SELECT id FROM "User" WHERE email = $1`, [email]);
    expect(rows).toHaveLength(1);
    const userId = rows[0].id;
    const suffix = userId.slice(-8);
    await client.query(
      `INSERT INTO "Account" (id, "userId", type, provider, "providerAccountId", label, "linkedAt") VALUES
        ($1, $2, 'oauth', 'github', $3, 'octocat-e2e', '2026-03-03T12:00:00Z'),
        ($4, $2, 'oauth', 'google', $5, NULL, NULL)`,
      [`e2e-gh-${suffix}`, userId, `gh-${suffix}`, `e2e-go-${suffix}`, `go-${suffix}`],
    );
    return { github: `e2e-gh-${suffix}`, google: `e2e-go-${suffix}` };
  } finally {
    await client.end();
  }
}

async function accountRowExists(id: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    return (await client.query(`SELECT 1 FROM "Account" WHERE id = $1`, [id])).rowCount === 1;
  } finally {
    await client.end();
  }
}

const card = (page: Page) => page.getByRole("region", { name: "Sign-in methods" });

test("sign-in methods: linked GitHub/Google accounts are listed, and one is removed with the password", async ({ page }) => {
  const email = uniqueEmail("methods");
  await signUp(page, "Sina Signin", email, "the-first-password");

  await page.goto("/settings");
  await expect(card(page).getByText("No GitHub or Google account signs in as you.")).toBeVisible();
  await expect(card(page).getByTestId("sign-in-password")).toHaveText("Password: set");

  const ids = await linkAccounts(email);
  await page.reload();
  const items = card(page).getByTestId("linked-account");
  await expect(items).toHaveCount(2);
  // Oldest first: the link from before dates were recorded, then GitHub.
  await expect(items.nth(0)).toContainText("Google account, linked before this was recorded");
  await expect(items.nth(1)).toContainText(/GitHub — octocat-e2e, linked (3 Mar 2026|Mar 3, 2026)/);
  await shot(page, "settings-sign-in-methods");

  // A wrong password is refused next to its field, and the account stays.
  await card(page).getByRole("button", { name: "Remove GitHub — octocat-e2e" }).click();
  const confirm = card(page).getByRole("form", { name: "Remove GitHub — octocat-e2e" });
  await expect(confirm.getByLabel("Current password")).toBeFocused();
  await confirm.getByLabel("Current password").fill("not-my-password");
  await confirm.getByRole("button", { name: "Remove", exact: true }).click();
  await expect(page.locator("#unlink-current-password-error")).toHaveText("Your current password is not correct.");
  expect(await accountRowExists(ids.github)).toBe(true);
  await shot(page, "settings-sign-in-method-confirm");

  await confirm.getByLabel("Current password").fill("the-first-password");
  await confirm.getByRole("button", { name: "Remove", exact: true }).click();
  await expect(card(page).getByRole("status")).toHaveText("GitHub — octocat-e2e removed. Every other session was signed out. This browser stays signed in.");
  await expect(items).toHaveCount(1);
  await expect(items.filter({ hasText: "octocat-e2e" })).toHaveCount(0);
  expect(await accountRowExists(ids.github)).toBe(false);
  await shot(page, "settings-sign-in-method-removed");

  // This browser is still signed in after a reload, and the list is as the server has it.
  await page.reload();
  await expect(page.getByTestId("current-user")).toHaveText(email);
  await expect(card(page).getByTestId("linked-account")).toHaveCount(1);
  await expect(card(page).getByTestId("linked-account")).toContainText("Google account, linked before this was recorded");
});
