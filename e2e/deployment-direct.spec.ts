import { expect, test } from "@playwright/test";
import { signUp, uniqueEmail } from "./helpers";

test.setTimeout(180_000);

test("a direct (router-bypassing) deployment says requests to its direct URL are not recorded instead of showing no traffic and $0", async ({ page }) => {
  await signUp(page, "Dora Direct", uniqueEmail("direct"));
  const teams = await page.request.get("/api/trpc/me.teams");
  expect(teams.status(), await teams.text()).toBe(200);
  const teamId = ((await teams.json()) as { result: { data: { json: Array<{ id: string }> } } }).result.data.json[0].id;
  // Direct endpoints are an API option (the form does not offer them).
  const r = await page.request.post("/api/trpc/deployments.create", {
    data: { json: { model: "Qwen/Qwen3-0.6B", slug: "direct-e2e", mode: "serverless", gpu: "L4", provider: "local", direct: true } },
    headers: { "x-tuna-team": teamId },
  });
  expect(r.status(), await r.text()).toBe(200);
  const id = ((await r.json()) as { result: { data: { json: { id: string } } } }).result.data.json.id;

  await page.goto(`/deployments/${id}`);
  await expect(page.getByTestId("detail-status")).toHaveText("active", { timeout: 120_000 });
  await expect(page.getByTestId("component-router")).toContainText("direct endpoint (router bypassed)");
  await expect(page.getByTestId("direct-not-metered")).toContainText("direct URL go straight to the provider, not through the router");
  await expect(page.getByTestId("stat-requests")).toContainText("none via the router");
  await expect(page.getByTestId("stat-cost")).toBeVisible();
  await expect(page.getByTestId("no-traffic")).toHaveCount(0);
});
