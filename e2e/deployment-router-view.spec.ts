import { expect, test } from "@playwright/test";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { shot, signUp, uniqueEmail } from "./helpers";

const ROUTER_URL = process.env.E2E_ROUTER_URL ?? "http://127.0.0.1:8080";
const SLUG = "rv-e2e";

test.setTimeout(240_000);

/** The port of this deployment's spot simulator, from the local provider's state files (scripts/run-e2e.ts sets the folder). */
function spotSimulatorPort(model: string): number {
  const dir = process.env.TUNA_LOCAL_PROVIDER_DIR;
  if (!dir) throw new Error("TUNA_LOCAL_PROVIDER_DIR is not set: run through scripts/run-e2e.ts");
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".json"))) {
    const s = JSON.parse(readFileSync(path.join(dir, name), "utf8")) as { kind: string; model: string; port: number; destroyedAt?: string };
    if (s.kind === "spot" && s.model === model && !s.destroyedAt && s.port > 0) return s.port;
  }
  throw new Error(`no spot simulator serving ${model} in ${dir}`);
}

async function setSpotFault(port: number, mode: "down" | "none") {
  const r = await fetch(`http://127.0.0.1:${port}/_sim/fault`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ mode }) });
  expect(r.ok, `simulator fault ${mode}`).toBe(true);
}

test("spot dies: the page says what the router sees within seconds and why, while the provider status still says ready", async ({ page }) => {
  await signUp(page, "Rhea Router", uniqueEmail("router-view"));
  await page.goto("/api-keys");
  await page.getByLabel("Label").fill("e2e router view");
  await page.getByRole("button", { name: "Create key" }).click();
  const apiKey = await page.getByTestId("new-api-key").inputValue();

  await page.goto("/deployments/new");
  await page.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await page.getByLabel("Name (optional)", { exact: true }).fill(SLUG);
  await page.getByLabel("GPU", { exact: true }).selectOption("L4");
  await page.getByLabel("Serverless provider").selectOption("local");
  await expect(page.getByText("No approval needed: it starts right away.")).toBeVisible();
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await expect(page.getByRole("heading", { name: SLUG, level: 1 })).toBeVisible();

  // Nothing has reached a router yet: the page says so rather than guessing.
  const routerView = page.getByTestId("spot-router-view");
  await expect(routerView).toHaveText("Router: no router has reported yet");

  // Spot comes up (local spot: a few seconds), the router warms it and reports it ready.
  await expect(page.getByTestId("detail-status")).toHaveText("active", { timeout: 120_000 });
  await expect(page.getByTestId("spot-state")).toHaveText("ready", { timeout: 60_000 });
  await expect(routerView).toHaveText(/^Router: spot ready since .+ — requests go to spot$/, { timeout: 30_000 });

  // The spot instance stops answering. The provider's status is reconciled every few minutes; the router ejects
  // it after three failed requests, each of which it retries on serverless.
  const port = spotSimulatorPort(SLUG);
  await setSpotFault(port, "down");
  try {
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${ROUTER_URL}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: SLUG, messages: [{ role: "user", content: "Say hi" }], max_tokens: 4 }),
      });
      await r.text();
      expect(r.status, `request ${i + 1} fails over to serverless`).toBe(200);
    }
    // With the router's reason in words: the simulator drops each connection once it has read the request.
    await expect(routerView).toHaveText(/^Router: spot ejected since .+ \(3 failed requests in a row, last: connection dropped\) — requests go to serverless$/, {
      timeout: 20_000,
    });
    // The provider's own status is checked separately and may catch up at any moment (a CI run saw it turn to
    // "warming" first): while it still says ready the page explains why the two differ, and only then.
    await expect
      .poll(async () => {
        const providerReady = (await page.getByTestId("spot-state").textContent()) === "ready";
        return providerReady === (await page.getByTestId("spot-router-view-note").isVisible());
      }, { timeout: 15_000 })
      .toBe(true);
    await shot(page, "deployment-router-view-ejected");

    // The list says it too, beside the status the provider's view keeps at "active".
    await page.goto("/deployments");
    const row = page.getByTestId(`deployment-row-${SLUG}`);
    await expect(row.getByTestId("deployment-status")).toHaveText("active");
    await expect(row.getByTestId("deployment-router-view")).toHaveText("Router: spot ejected — serving from serverless");
  } finally {
    // Heal it: the router's health checks fail back, and later specs share this router.
    await setSpotFault(port, "none");
  }
});
