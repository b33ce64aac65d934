import { expect, test } from "@playwright/test";
import { shot, signUp, uniqueEmail } from "./helpers";

test("sign-up → team → invite → accept → role change → audit entries", async ({ page, browser }) => {
  const ownerEmail = uniqueEmail("owner");
  await signUp(page, "Olivia Owner", ownerEmail);
  await expect(page.getByRole("heading", { name: "Olivia's team" })).toBeVisible();
  await shot(page, "overview");

  // Create a second team through the team switcher.
  await page.getByTestId("team-switcher").click();
  await page.getByRole("link", { name: "+ New team…" }).click();
  await page.getByLabel("Team name").fill("Platform");
  await page.getByRole("button", { name: "Create team" }).click();
  await expect(page.getByRole("heading", { name: "Members", level: 1 })).toBeVisible();
  await expect(page.getByTestId("team-switcher")).toContainText("Platform (admin)");

  // Invite a developer by link.
  await page.getByLabel("Role", { exact: true }).selectOption("developer");
  await page.getByRole("button", { name: "Create invite link" }).click();
  const link = await page.getByTestId("invite-link").inputValue();
  expect(link).toMatch(/\/invite\/inv_/);
  await shot(page, "members-invite");

  // A second person signs up in their own browser context and accepts.
  const ctx2 = await browser.newContext();
  const page2 = await ctx2.newPage();
  const devEmail = uniqueEmail("dev");
  await signUp(page2, "Dan Developer", devEmail);
  await page2.goto(link);
  await expect(page2.getByText("You have been invited to join")).toBeVisible();
  await page2.getByRole("button", { name: "Join Platform" }).click();
  await expect(page2.getByTestId("team-switcher")).toContainText("Platform (developer)");
  // The invite link is single use.
  await page2.goto(link);
  await expect(page2.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("This invitation has already been used.");

  // The owner sees the new member and makes them a viewer.
  await page.goto("/members");
  const roleSelect = page.getByTestId(`role-${devEmail}`);
  await expect(roleSelect).toHaveValue("developer");
  await roleSelect.selectOption("viewer");
  await page.getByTestId(`change-role-${devEmail}`).click();
  await page.getByRole("dialog").getByRole("button", { name: "Change role" }).click();
  await expect(page.getByTestId(`change-role-${devEmail}`)).toHaveCount(0);
  await expect(page.getByTestId(`role-${devEmail}`)).toHaveValue("viewer");

  // The owner cannot demote themselves while they are the only admin.
  await page.getByTestId(`role-${ownerEmail}`).selectOption("viewer");
  await page.getByTestId(`change-role-${ownerEmail}`).click();
  await page.getByRole("dialog").getByRole("button", { name: "Change role" }).click();
  await expect(page.getByRole("alert").filter({ hasText: /\S/ })).toContainText("The last admin cannot be demoted");

  // The audit log shows every step, newest first, and its chain verifies.
  await page.goto("/audit");
  await expect(page.getByTestId("audit-action").first()).toHaveText("member.role.change");
  const actions = await page.getByTestId("audit-action").allTextContents();
  expect(actions.slice(0, 4)).toEqual(["member.role.change", "member.join", "member.invite", "team.create"]);
  await page.getByRole("button", { name: "Verify integrity" }).click();
  await expect(page.getByText(/Chain intact: 4 entries verified/)).toBeVisible();
  await shot(page, "audit");

  // The viewer does not see the audit log and cannot manage members.
  await page2.reload();
  await expect(page2.getByRole("link", { name: "Audit log" })).toHaveCount(0);
  await page2.goto("/members");
  await expect(page2.getByText("Only admins can invite members or change roles.")).toBeVisible();
  await expect(page2.getByRole("button", { name: "Create invite link" })).toHaveCount(0);
  await ctx2.close();
});

test("signed out, a page's link leads to sign-in and back to that page, query included", async ({ browser, page }) => {
  const email = uniqueEmail("returning");
  await signUp(page, "Rita Returning", email);
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto("/deployments?status=active");
  await expect(p).toHaveURL(/\/signin\?callbackUrl=%2Fdeployments%3Fstatus%3Dactive$/);
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password").fill("a-very-good-password");
  await p.getByRole("button", { name: "Sign in" }).click();
  await expect(p).toHaveURL(/\/deployments\?status=active$/);
  await expect(p.getByLabel("Status")).toHaveValue("active");
  // A callbackUrl to another site is not followed.
  await ctx.clearCookies();
  await p.goto("/signin?callbackUrl=https%3A%2F%2Fevil.example%2F");
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password").fill("a-very-good-password");
  await p.getByRole("button", { name: "Sign in" }).click();
  await expect(p.getByTestId("current-user")).toHaveText(email);
  expect(new URL(p.url()).host).toBe(new URL(page.url()).host);
  await ctx.close();
});

test("sign-in errors do not reveal whether an account exists", async ({ page }) => {
  await page.goto("/signin");
  await page.getByLabel("Email").fill(uniqueEmail("nobody"));
  await page.getByLabel("Password").fill("wrong-password-123");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("Email or password is incorrect.");
  await shot(page, "signin-error");
});

test("a form that submits in JavaScript cannot be submitted before the page has hydrated (no silent native GET)", async ({ page }) => {
  await signUp(page, "Hana Hydrate", uniqueEmail("hydrate"));
  // The page's JavaScript never arrives: it never hydrates, as on a slow network or a busy server.
  await page.route("**/_next/static/chunks/**", (route) => route.abort());
  await page.goto("/teams/new");
  await page.getByLabel("Team name").fill("Never sent");
  await expect(page.getByRole("button", { name: "Create team" })).toBeDisabled();
  await page.unroute("**/_next/static/chunks/**");
  await page.reload();
  await expect(page.getByRole("button", { name: "Create team" })).toBeEnabled();
});

test("before hydration, credentials can neither be submitted nor end up in a URL", async ({ page }) => {
  await page.route("**/_next/static/chunks/**", (route) => route.abort());
  await page.goto("/signup");
  await page.getByLabel("Password").fill("secret-password-123");
  await expect(page.getByRole("button", { name: "Create account" })).toBeDisabled();
  // Even a native submission (the Enter key in a field) would POST: fields never go into the query string.
  await page.getByLabel("Password").press("Enter");
  await page.waitForLoadState();
  expect(page.url()).not.toContain("secret-password-123");
  await page.goto("/signin");
  await expect(page.getByRole("button", { name: "Sign in" })).toBeDisabled();
  for (const form of await page.locator("form").all()) expect(await form.getAttribute("method")).toBe("post");
});
