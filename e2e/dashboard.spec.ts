import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, type Page, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";


/** Confirms the open <dialog>, typing `text` first when it asks for it. */
async function confirmDialog(page: Page, button: string, text?: string) {
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  if (text) await dialog.getByRole("textbox").fill(text);
  await dialog.getByRole("button", { name: button }).click();
  await expect(dialog).toBeHidden();
}

test("GPU catalog: every GPU × provider price, spot prices, savings, cheapest highlighted", async ({ page }) => {
  await signUp(page, "Cat Admin", uniqueEmail("catalog"));
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "GPU catalog" }).click();
  const table = page.getByTestId("catalog-table");
  await expect(table).toBeVisible();
  const h100 = page.getByTestId("catalog-row-H100");
  await expect(h100).toBeVisible();
  // Exactly one highlighted cheapest serverless cell per priced GPU, and a savings figure from spot.
  await expect(h100.locator("[data-testid^=cheapest-]")).toHaveCount(1);
  await expect(page.getByTestId("savings-H100")).toContainText(/cheaper|more|same/);
  await expect(page.getByTestId("savings-T4")).toContainText(/cheaper/);
  await page.getByLabel("Filter GPUs").fill("A100");
  await expect(table.locator("tbody tr")).toHaveCount(2);
  await page.getByLabel("Filter GPUs").fill("");
  await shot(page, "catalog");
});

test("vault, API keys, alerts and settings: main flows", async ({ page }) => {
  await signUp(page, "Vera Admin", uniqueEmail("vault"));

  // Vault: add (metadata only afterwards), test, rotate, delete.
  await page.goto("/vault");
  await expect(page.getByText("No credentials yet")).toBeVisible();
  await page.getByLabel("Kind").selectOption("huggingface");
  await page.getByLabel("Label").fill("HF read token");
  await page.getByLabel("Value", { exact: true }).fill("hf_abcdefghijklmnopWXYZ");
  await page.getByRole("button", { name: "Save credential" }).click();
  const secret = page.getByTestId("secret-HF read token");
  await expect(secret).toContainText("••••WXYZ");
  await expect(secret).toContainText("version 1");
  await expect(page.locator("body")).not.toContainText("hf_abcdefghijklmnop");
  await secret.getByRole("button", { name: "Test" }).click();
  // No provider can confirm a Hugging Face token here: the test says so instead of passing.
  await expect(page.getByTestId("secret-test-result")).toContainText("Could not verify");
  await secret.getByRole("button", { name: "Rotate" }).click();
  await page.getByLabel("New value for HF read token").fill("hf_qrstuvwxyzabcdefNEW4");
  await page.getByRole("button", { name: "Save new version" }).click();
  await expect(secret).toContainText("version 2");
  await expect(secret).toContainText("••••NEW4");
  await shot(page, "vault");
  await secret.getByRole("button", { name: "Delete" }).click();
  await confirmDialog(page, "Delete credential");
  await expect(page.getByText("No credentials yet")).toBeVisible();

  // API keys: the key is shown once, with limits; revoke.
  await page.goto("/api-keys");
  await expect(page.getByText("No API keys yet")).toBeVisible();
  await page.getByLabel("Label").fill("ci pipeline");
  await page.getByLabel("Requests per minute (empty = no limit)").fill("60");
  await page.getByLabel("Max concurrent requests (empty = no limit)").fill("4");
  await page.getByRole("button", { name: "Create key" }).click();
  const key = await page.getByTestId("new-api-key").inputValue();
  expect(key).toMatch(/^tuna_sk_[A-Za-z0-9_-]{40,}$/);
  const row = page.getByTestId("key-ci pipeline");
  await expect(row).toContainText("60 rpm");
  await expect(row).toContainText("4 concurrent");
  await expect(row.getByTestId("key-status")).toHaveText("active");
  await shot(page, "api-keys-created");
  await page.getByRole("button", { name: "Done" }).click();
  await expect(page.getByTestId("new-api-key")).toHaveCount(0);
  await page.reload();
  await expect(page.locator("body")).not.toContainText(key);
  await row.getByRole("button", { name: "Limits" }).click();
  await page.getByLabel("Requests / min").fill("120");
  await page.getByRole("button", { name: "Save limits" }).click();
  await expect(row).toContainText("120 rpm");
  await row.getByRole("button", { name: "Revoke" }).click();
  await confirmDialog(page, "Revoke key");
  await expect(row.getByTestId("key-status")).toHaveText("revoked");
  await shot(page, "api-keys");

  // Alerts: a JSON webhook on loopback receives the test message; the last delivery is shown.
  const received: Array<{ body: string }> = [];
  const hook = createServer((req: IncomingMessage, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ body });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", () => r()));
  try {
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    await page.goto("/alerts");
    await expect(page.getByText("No alert channels yet")).toBeVisible();
    await page.getByLabel("Name").fill("ops webhook");
    await page.getByLabel("Kind").selectOption("webhook");
    await page.getByLabel("Webhook URL").fill(url);
    await page.getByLabel("Spot preempted").uncheck();
    await page.getByRole("button", { name: "Add channel" }).click();
    const channel = page.getByTestId("channel-ops webhook");
    await expect(channel).toBeVisible();
    await expect(channel).not.toContainText("Spot preempted");
    await expect(channel.getByTestId("last-delivery")).toContainText("none yet");
    await channel.getByRole("button", { name: "Send test" }).click();
    await expect(channel.getByTestId("test-result")).toContainText("Test delivered");
    await expect(channel.getByTestId("last-delivery")).toContainText("delivered");
    expect(received.length).toBeGreaterThan(0);
    expect(received[0].body).toContain("Tuna test alert");
    await channel.getByRole("button", { name: "Deliveries" }).click();
    await expect(channel.getByRole("table")).toContainText("test");
    await shot(page, "alerts");
  } finally {
    hook.close();
  }

  // Settings: approval policy and a team budget.
  await page.goto("/settings");
  await page.getByLabel("Cost threshold, USD per hour (empty = none)").fill("5");
  await page.getByLabel("H100", { exact: true }).check();
  await page.getByRole("button", { name: "Save policy" }).click();
  await expect(page.getByText("Policy saved.")).toBeVisible();
  await page.reload();
  await expect(page.getByLabel("Cost threshold, USD per hour (empty = none)")).toHaveValue("5");
  await expect(page.getByLabel("H100", { exact: true })).toBeChecked();
  await expect(page.getByText("No budgets set")).toBeVisible();
  await page.getByLabel("Monthly limit (USD)").fill("100");
  await page.getByRole("button", { name: "Set budget" }).click();
  await expect(page.getByTestId("budgets-list")).toContainText("$0.00 of $100.00");
  await shot(page, "settings");
});

test("new deployment form, approvals inbox and deployments list", async ({ page, browser }) => {
  await signUp(page, "Ann Admin", uniqueEmail("approver"));
  const dev = await inviteMember(page, browser, "developer", "Dev Eloper");
  const d = dev.page;

  // The form: live quote, provider comparison, cheapest reason, errors next to fields, approval notice.
  await d.goto("/deployments");
  await expect(d.getByText("No deployments yet")).toBeVisible();
  await d.getByRole("link", { name: "New deployment" }).first().click();
  await d.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await d.getByLabel("GPU", { exact: true }).selectOption("H100");
  const comparison = d.getByTestId("provider-comparison");
  await expect(comparison).toContainText("cheapest");
  await expect(d.getByTestId("provider-reason")).toContainText(/cheapest serverless provider for H100/);
  await expect(d.getByTestId("plan-cost")).toContainText("/h");
  await expect(d.getByTestId("approval-notice")).toContainText("requested by a developer");
  await shot(d, "deployment-new");

  // Spot-only without a cloud: the error sits next to the clouds.
  await d.getByLabel("Spot only").check();
  for (const cloud of ["aws", "gcp", "azure"]) {
    const box = d.getByRole("checkbox", { name: cloud });
    if (await box.isChecked()) await box.uncheck();
  }
  await expect(d.locator("#d-clouds-error")).toContainText("choose at least one spot cloud");
  // Invalid slug: a zod error next to the name field.
  await d.getByLabel("Hybrid").check();
  await d.getByLabel("Name (optional)", { exact: true }).fill("Bad Slug!");
  await expect(d.locator("#d-slug-error")).toBeVisible();
  await shot(d, "deployment-new-errors");

  // A valid request on the local simulator: it waits for approval.
  await d.getByLabel("Name (optional)", { exact: true }).fill("qwen-review");
  await d.getByLabel("GPU", { exact: true }).selectOption("L4");
  await d.getByLabel("Serverless provider").selectOption("local");
  await expect(d.getByTestId("approval-notice")).toBeVisible();
  await d.getByRole("button", { name: "Request approval and deploy" }).click();
  await expect(d.getByRole("heading", { name: "qwen-review", level: 1 })).toBeVisible();
  await expect(d.getByTestId("detail-status")).toHaveText("pending approval");
  await expect(d.getByTestId("pending-approval")).toBeVisible();
  await expect(d.getByTestId("timeline")).toContainText("request");
  const detailUrl = d.url();

  // Someone outside the team learns nothing from the URL.
  const outsider = await browser.newContext();
  const o = await outsider.newPage();
  await signUp(o, "Otto Outsider", uniqueEmail("outsider"));
  await o.goto(detailUrl);
  await expect(o.getByRole("alert").filter({ hasText: /\S/ })).toContainText("not found");
  await expect(o.locator("body")).not.toContainText("qwen-review");
  await outsider.close();

  // The admin sees it in the inbox and rejects it with a comment.
  await page.goto("/approvals");
  const card = page.getByTestId("approval-qwen-review");
  await expect(card).toContainText("requested by a developer");
  await expect(card).toContainText(dev.email);
  await shot(page, "approvals");
  await card.getByLabel(/Comment/).fill("Use the shared deployment instead.");
  await card.getByRole("button", { name: "Reject" }).click();
  await expect(page.getByText("Nothing is waiting for approval")).toBeVisible();
  await page.getByRole("button", { name: "Rejected" }).click();
  await expect(card.getByTestId("approval-status")).toHaveText("rejected");
  await expect(card).toContainText("Use the shared deployment instead.");

  // The list: status badge, cost per hour, server-side filters.
  await page.goto("/deployments");
  const row = page.getByTestId("deployment-row-qwen-review");
  await expect(row.getByTestId("deployment-status")).toHaveText(/rejected|pending approval/);
  await expect(row).toContainText("/h");
  await expect(row).toContainText(dev.email);
  await page.getByLabel("Owner").selectOption({ label: dev.email });
  await page.getByLabel("Provider").selectOption("local");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(row).toBeVisible();
  await page.getByLabel("Status").selectOption("active");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.getByText("No deployments match these filters")).toBeVisible();
  // Filters live in the URL: a reload keeps them (list and form), Back returns to the previous ones.
  await expect(page).toHaveURL(/[?&]status=active(&|$)/);
  await page.reload();
  await expect(page.getByText("No deployments match these filters")).toBeVisible();
  await expect(page.getByLabel("Status")).toHaveValue("active");
  await expect(page.getByLabel("Provider")).toHaveValue("local");
  await page.goBack();
  await expect(row).toBeVisible();
  await expect(page.getByLabel("Status")).toHaveValue("");
  await expect(page.getByLabel("Provider")).toHaveValue("local");
  // A link with a value the list does not know is read as unset, not sent to the server.
  await page.goto("/deployments?status=bogus&provider=local");
  await expect(row).toBeVisible();
  await expect(page.getByLabel("Status")).toHaveValue("");
  await page.getByLabel("Status").selectOption("active");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page.getByText("No deployments match these filters")).toBeVisible();
  await page.getByLabel("Status").selectOption("");
  await page.getByLabel("GPU").selectOption("L4");
  await page.getByLabel("Sort").selectOption("slug");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(row).toBeVisible();
  await shot(page, "deployments");

  // Members and audit pages, for the screenshot set.
  await page.goto("/members");
  await expect(page.getByTestId("members-table")).toContainText(dev.email);
  await shot(page, "members");
  await page.goto("/audit");
  await expect(page.getByTestId("audit-action").first()).toBeVisible();
  await shot(page, "audit-log");
  await page.goto("/");
  await shot(page, "overview-dashboard");

  // Laptop width: the list and the form stay usable without horizontal page scroll.
  await page.setViewportSize({ width: 1024, height: 720 });
  await page.goto("/deployments/new");
  await expect(page.getByLabel("Model id (Hugging Face)")).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await shot(page, "deployment-new-laptop");
  await dev.ctx.close();
});
