import { expect, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";

test("settings: an admin renames the team, and the team switcher shows the new name at once and after a reload", async ({ page }) => {
  await signUp(page, "Rita Rename", uniqueEmail("rename"));
  const switcher = page.getByTestId("team-switcher");
  await expect(switcher).toContainText("Rita's team (admin)");

  await page.goto("/settings");
  const form = page.getByRole("form", { name: "Team name" });
  const name = form.getByLabel("Name", { exact: true });
  await expect(name).toHaveValue("Rita's team");

  // Too short (spaces do not count): a sentence next to the field, and nothing renamed.
  await name.fill(" x ");
  await form.getByRole("button", { name: "Save name" }).click();
  await expect(page.locator("#team-name-error")).toHaveText("Use at least 2 characters.");
  await expect(name).toHaveAttribute("aria-invalid", "true");
  await expect(switcher).toContainText("Rita's team (admin)");
  // Typing again clears the message about the previous attempt.
  await name.fill("Tuna Platform");
  await expect(page.locator("#team-name-error")).toHaveCount(0);

  await form.getByRole("button", { name: "Save name" }).click();
  await expect(form.getByRole("status")).toHaveText("Team renamed to “Tuna Platform”.");
  await expect(switcher).toContainText("Tuna Platform (admin)");
  await expect(switcher).not.toContainText("Rita's team");
  await shot(page, "settings-team-renamed");

  await page.reload();
  await expect(page.getByTestId("team-switcher")).toContainText("Tuna Platform (admin)");
  await expect(page.getByRole("form", { name: "Team name" }).getByLabel("Name", { exact: true })).toHaveValue("Tuna Platform");
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Tuna Platform", level: 1 })).toBeVisible();
});

test("settings: a viewer sees the team's name and a disabled Rename that says why", async ({ page, browser }) => {
  await signUp(page, "Otto Owner", uniqueEmail("owner"));
  const viewer = await inviteMember(page, browser, "viewer", "Vera Viewer");
  const v = viewer.page;
  await v.goto("/settings");
  const section = v.getByRole("region", { name: "Team name" });
  await expect(section.getByTestId("team-name")).toHaveText("Otto's team");
  const rename = section.getByRole("button", { name: "Rename team" });
  await expect(rename).toBeDisabled();
  await expect(rename).toHaveAccessibleDescription("Only admins can rename the team (needs “team.update”).");
  await expect(v.getByRole("form", { name: "Team name" })).toHaveCount(0);
  await expect(v.getByRole("button", { name: "Save name" })).toHaveCount(0);
  await shot(v, "viewer-settings-team-name");
  await viewer.ctx.close();
});

test("members: Remove asks first, naming the member and the team; the last admin's Leave is refused with the reason", async ({ page, browser }) => {
  await signUp(page, "Mia Manager", uniqueEmail("members"));
  const dev = await inviteMember(page, browser, "developer", "Dan Dev");
  await dev.ctx.close();

  await page.goto("/members");
  const table = page.getByTestId("members-table");
  const devRow = table.getByRole("row").filter({ hasText: dev.email });
  await expect(devRow).toBeVisible();

  await devRow.getByRole("button", { name: "Remove" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByRole("heading")).toHaveText(`Remove Dan Dev (${dev.email}) from Mia's team?`);
  // Opened from a table cell that does not wrap: the dialog still wraps its text instead of clipping it.
  expect(await dialog.evaluate((d) => d.scrollWidth <= d.clientWidth)).toBe(true);
  await shot(page, "members-remove-confirm");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(dialog).toBeHidden();
  await expect(devRow).toBeVisible();

  await devRow.getByRole("button", { name: "Remove" }).click();
  await dialog.getByRole("button", { name: "Remove member" }).click();
  await expect(dialog).toBeHidden();
  await expect(table.getByText(dev.email)).toHaveCount(0);
  await page.reload();
  await expect(page.getByTestId("members-table")).toBeVisible();
  await expect(page.getByTestId("members-table").getByText(dev.email)).toHaveCount(0);

  // Now the only admin: leaving is refused, and the page says why instead of failing silently.
  await page.getByTestId("members-table").getByRole("button", { name: "Leave" }).click();
  await expect(dialog.getByRole("heading")).toHaveText("Leave Mia's team?");
  await dialog.getByRole("button", { name: "Leave team" }).click();
  await expect(page.getByRole("alert").filter({ hasText: /\S/ })).toHaveText("The last admin cannot leave the team. Make another member an admin first.");
  await expect(page).toHaveURL(/\/members$/);
  await expect(page.getByTestId("team-switcher")).toContainText("Mia's team (admin)");
  await shot(page, "members-last-admin-leave");
});

test("before hydration, no form on any page can be submitted (a native submit would drop what was typed)", async ({ page }) => {
  await signUp(page, "Hugo Hydrate", uniqueEmail("hydrate-all"));
  // The page's JavaScript never arrives: what the server rendered is all there is.
  await page.route("**/_next/static/chunks/**", (route) => route.abort());
  const formsSeen: string[] = [];
  for (const path of ["/", "/deployments", "/deployments/new", "/approvals", "/api-keys", "/vault", "/alerts", "/members", "/audit", "/settings", "/teams/new"]) {
    await page.goto(path);
    await expect(page.getByTestId("current-user")).toBeVisible();
    for (const form of await page.locator("form").all()) {
      formsSeen.push(`${path} ${await form.getAttribute("aria-label")}`);
      expect(await form.getAttribute("method"), `${path}: forms declare method=post`).toBe("post");
      for (const submit of await form.locator('button[type="submit"], button:not([type]), input[type="submit"]').all()) {
        await expect(submit, `${path}: "${await submit.textContent()}" before hydration`).toBeDisabled();
      }
    }
  }
  // The forms an admin sees without waiting for data are all server-rendered, so all were checked above.
  for (const expected of ["/deployments Filter deployments", "/api-keys Create an API key", "/vault Add a credential", "/alerts Add an alert channel", "/members Invite a member", "/audit Filter the audit log", "/settings Team name", "/settings Set a budget"]) {
    expect(formsSeen).toContain(expected);
  }
  await page.unroute("**/_next/static/chunks/**");
  await page.goto("/settings");
  await expect(page.getByRole("button", { name: "Save name" })).toBeEnabled();
  await expect(page.getByRole("button", { name: "Set budget" })).toBeEnabled();
});
