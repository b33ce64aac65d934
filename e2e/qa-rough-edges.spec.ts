import { expect, type Page, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";

/**
 * tRPC procedure paths requested from now on by the page at `path` (batched calls name several, comma-separated).
 * Requests of the page being left (a late query of the Overview the invite landed on, seen in CI) are not the new
 * page's: the page a request comes from is its Referer.
 */
function recordProcedures(page: Page, path: string): string[] {
  const seen: string[] = [];
  page.on("request", (r) => {
    const m = new URL(r.url()).pathname.match(/^\/api\/trpc\/(.+)$/);
    const from = r.headers().referer;
    if (m && from && new URL(from).pathname === path) seen.push(...decodeURIComponent(m[1]!).split(","));
  });
  return seen;
}

test("audit log: a viewer gets the permission notice and no member list; From after To is a field error, not a query", async ({ page, browser }) => {
  const adminEmail = uniqueEmail("audit-admin");
  await signUp(page, "Ada Audit", adminEmail);
  const viewer = await inviteMember(page, browser, "viewer", "Vic Viewer");
  const v = viewer.page;

  const viewerCalls = recordProcedures(v, "/audit");
  await v.goto("/audit");
  await expect(v.getByText("Your role cannot see the audit log (needs “audit.read”).")).toBeVisible();
  await expect(v.getByRole("form", { name: "Filter the audit log" })).toHaveCount(0);
  await expect(v.getByText(adminEmail)).toHaveCount(0);
  await expect(v.getByRole("alert").filter({ hasText: /\S/ })).toHaveCount(0);
  expect(viewerCalls.filter((p) => p === "team.members" || p.startsWith("audit."))).toEqual([]);
  await shot(v, "viewer-audit");
  await viewer.ctx.close();

  await page.goto("/audit");
  await expect(page.getByTestId("audit-table")).toBeVisible();
  const adminCalls = recordProcedures(page, "/audit");
  await page.getByLabel("From", { exact: true }).fill("2026-03-02");
  await page.getByLabel("To", { exact: true }).fill("2026-03-01");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.locator("#f-to-error")).toHaveText("Must be on or after the From date.");
  await expect(page.getByLabel("To", { exact: true })).toHaveAttribute("aria-invalid", "true");
  await page.waitForTimeout(500);
  expect(adminCalls.filter((p) => p === "audit.list")).toEqual([]);
  await shot(page, "audit-inverted-dates");
  // The same day twice is that whole day: a valid filter, queried.
  await page.getByLabel("To", { exact: true }).fill("2026-03-02");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.locator("#f-to-error")).toHaveCount(0);
  await expect(page.getByText("No audit entries match these filters")).toBeVisible();
  expect(adminCalls.filter((p) => p === "audit.list").length).toBeGreaterThan(0);
  // The filters are in the URL: a reload shows the same (empty) result with the dates still filled in.
  await expect(page).toHaveURL(/[?&]from=2026-03-02&to=2026-03-02(&|$)/);
  await page.reload();
  await expect(page.getByText("No audit entries match these filters")).toBeVisible();
  await expect(page.getByLabel("From", { exact: true })).toHaveValue("2026-03-02");
  await page.goBack();
  await expect(page.getByTestId("audit-table")).toBeVisible();
  await expect(page.getByLabel("From", { exact: true })).toHaveValue("");
});

test("members: revoking an invitation asks first", async ({ page }) => {
  await signUp(page, "Ivy Inviter", uniqueEmail("invites"));
  await page.goto("/members");
  await page.getByLabel("Email (optional, for your records)").fill("guest@example.test");
  await page.getByRole("button", { name: "Create invite link" }).click();
  await expect(page.getByTestId("invite-link")).toHaveValue(/\/invite\//);
  const pending = page.getByText(/guest@example\.test · /);
  await expect(pending).toBeVisible();

  await page.getByRole("button", { name: "Revoke" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toContainText("Revoke the invitation for guest@example.test?");
  await shot(page, "revoke-invite-confirm");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(dialog).toBeHidden();
  await expect(pending).toBeVisible();

  await page.getByRole("button", { name: "Revoke" }).click();
  await dialog.getByRole("button", { name: "Revoke invitation" }).click();
  await expect(page.getByText("No pending invitations")).toBeVisible();
});

test("forms: plain field errors, a spaces-only password, a bad model id and a taken slug before submit", async ({ page, browser }) => {
  await page.goto("/signup");
  await page.getByLabel("Name").fill("Wes Whitespace");
  await page.getByLabel("Email").fill(uniqueEmail("spaces"));
  await page.getByLabel("Password").fill(" ".repeat(10));
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("Use some letters, digits or symbols, not only spaces.")).toBeVisible();
  await expect(page).toHaveURL(/\/signup/);

  await signUp(page, "Ana Admin", uniqueEmail("forms"));
  await page.goto("/api-keys");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.locator("#key-label-error")).toHaveText("Enter a label.");

  // A deployment waiting for approval holds its slug.
  const dev = await inviteMember(page, browser, "developer", "Dee Dev");
  const d = dev.page;
  await d.goto("/deployments/new");
  await d.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await d.getByLabel("Name (optional)", { exact: true }).fill("taken-slug");
  await d.getByLabel("Serverless only").check();
  await d.getByLabel("Serverless provider").selectOption("local");
  await expect(d.getByTestId("approval-notice")).toBeVisible();
  await d.getByRole("button", { name: "Request approval and deploy" }).click();
  await expect(d.getByTestId("detail-status")).toHaveText("pending approval");
  await dev.ctx.close();

  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("🐟🐟");
  await expect(page.locator("#d-model-error")).toContainText("Use a Hugging Face model id such as Qwen/Qwen3-0.6B");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Serverless only").check();
  await page.getByLabel("Serverless provider").selectOption("local");
  await expect(page.getByText("No approval needed: it starts right away.")).toBeVisible();
  await page.getByLabel("Name (optional)", { exact: true }).fill("taken-slug");
  await expect(page.locator("#d-slug-error")).toContainText("A deployment named \"taken-slug\" already exists in this team");
  await expect(page.getByText("No approval needed: it starts right away.")).toHaveCount(0);
  await shot(page, "deployment-new-slug-taken");
  await page.getByLabel("Name (optional)", { exact: true }).fill("free-slug");
  await expect(page.getByText("No approval needed: it starts right away.")).toBeVisible();
  await expect(page.locator("#d-slug-error")).toHaveCount(0);
  await expect(page).toHaveURL(/\/deployments\/new$/);
});
