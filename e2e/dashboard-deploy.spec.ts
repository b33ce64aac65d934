import { expect, test } from "@playwright/test";
import { shot, signUp, uniqueEmail } from "./helpers";

const ROUTER_URL = process.env.E2E_ROUTER_URL ?? "http://127.0.0.1:8080";

test.setTimeout(300_000);

test("deploy on the local provider → live timeline → traffic through the router shows in charts → destroy", async ({ page }) => {
  await signUp(page, "Dora Deployer", uniqueEmail("deploy"));

  // A key first, so the router has it by the time the deployment is serving.
  await page.goto("/api-keys");
  await page.getByLabel("Label").fill("e2e traffic");
  await page.getByRole("button", { name: "Create key" }).click();
  const apiKey = await page.getByTestId("new-api-key").inputValue();
  expect(apiKey).toMatch(/^tuna_sk_/);

  // Request a hybrid deployment on the simulator (an admin's request needs no approval by default).
  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Name (optional)", { exact: true }).fill("qwen-e2e");
  await page.getByLabel("GPU", { exact: true }).selectOption("L4");
  await page.getByLabel("Serverless provider").selectOption("local");
  await expect(page.getByTestId("plan-cost")).toContainText("/h");
  await expect(page.getByText("No approval needed: it starts right away.")).toBeVisible();
  await page.getByRole("button", { name: "Deploy", exact: true }).click();

  // The detail page polls the timeline while the workflow runs.
  await expect(page.getByRole("heading", { name: "qwen-e2e", level: 1 })).toBeVisible();
  await expect(page.getByTestId("timeline")).toContainText("request");
  await expect(page.getByTestId("detail-status")).toHaveText(/queued|deploying|active/);
  await expect(page.getByTestId("timeline-step").nth(1)).toBeVisible({ timeout: 60_000 });
  await shot(page, "deployment-deploying");
  await expect(page.getByTestId("detail-status")).toHaveText("active", { timeout: 180_000 });
  await expect(page.getByTestId("component-serverless-status")).toHaveText(/ready|scaled to zero/);
  await expect(page.getByTestId("component-router-status")).toHaveText("ready");
  await expect(page.getByTestId("spot-state")).toHaveText(/cold|warming|ready/);
  await expect(page.getByTestId("endpoint-url")).toHaveText(`${ROUTER_URL}/v1`);
  await expect(page.getByTestId("snippet-curl")).toContainText(`${ROUTER_URL}/v1/chat/completions`);
  await page.getByRole("tab", { name: "openai (Python)" }).click();
  await expect(page.getByTestId("snippet-python")).toContainText('model="qwen-e2e"');
  await expect(page.getByTestId("no-traffic")).toBeVisible();

  // Traffic through the router with the key; the router reports usage to the control plane in batches.
  let ok = 0;
  const deadline = Date.now() + 90_000;
  while (ok < 20 && Date.now() < deadline) {
    const r = await fetch(`${ROUTER_URL}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen-e2e", messages: [{ role: "user", content: "Say hi" }], max_tokens: 16 }),
    }).catch(() => null);
    if (r?.ok) ok++;
    else await new Promise((res) => setTimeout(res, 1000));
    await r?.text().catch(() => "");
  }
  expect(ok, "requests answered through the router").toBe(20);

  await expect(page.getByTestId("usage-charts")).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("stat-requests")).not.toHaveText("0");
  for (const chart of ["chart-rps", "chart-latency", "chart-ttft", "chart-errors", "chart-backends", "chart-cost"]) {
    await expect(page.getByTestId(chart).locator("svg").first()).toBeVisible();
  }
  // The figures' working: each priced part with its price, the router included.
  const explained = page.getByTestId("cost-explanation");
  await explained.getByText("How this cost is computed").click();
  await expect(explained).toContainText("/GPU-h");
  await expect(explained).toContainText("router");
  await shot(page, "deployment-detail");
  // The chart range is in the URL: a reload keeps it, and it replaces history rather than adding to it.
  const range = page.getByRole("group", { name: "Time range" });
  await range.getByRole("button", { name: "7 days" }).click();
  await expect(page).toHaveURL(/[?&]range=7d(&|$)/);
  await page.reload();
  await expect(range.getByRole("button", { name: "7 days" })).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByTestId("usage-charts")).toBeVisible();
  await range.getByRole("button", { name: "15 min" }).click();
  await expect(page).toHaveURL(/[?&]range=15m(&|$)/);

  // The list shows it active with its cost per hour.
  await page.goto("/deployments");
  const row = page.getByTestId("deployment-row-qwen-e2e");
  await expect(row.getByTestId("deployment-status")).toHaveText("active");
  await row.getByRole("link", { name: "qwen-e2e" }).click();

  // Destroy with confirmation; the timeline follows the teardown to the end.
  await page.getByTestId("destroy-button").click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByRole("button", { name: "Destroy deployment" })).toBeDisabled();
  await dialog.getByRole("textbox").fill("qwen-e2e");
  await dialog.getByRole("button", { name: "Destroy deployment" }).click();
  await expect(page.getByTestId("detail-status")).toHaveText(/destroying|destroyed/);
  await expect(page.getByTestId("timeline")).toContainText("destroy");
  await expect(page.getByTestId("detail-status")).toHaveText("destroyed", { timeout: 120_000 });
  await expect(page.getByTestId("destroy-button")).toHaveCount(0);
  await shot(page, "deployment-destroyed");

  // The router stops serving it.
  await expect
    .poll(
      async () => {
        const r = await fetch(`${ROUTER_URL}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "qwen-e2e", messages: [{ role: "user", content: "Say hi" }], max_tokens: 4 }),
        });
        await r.text();
        return r.status;
      },
      { timeout: 30_000 },
    )
    .not.toBe(200);
});
