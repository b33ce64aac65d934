import { expect, type Page, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";

const horizontalOverflow = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

test("approvals: a long comment without spaces wraps inside its card", async ({ page, browser }) => {
  await signUp(page, "Ava Admin", uniqueEmail("approvals-wrap"));
  const dev = await inviteMember(page, browser, "developer", "Dan Dev");
  const d = dev.page;
  await d.goto("/deployments/new");
  await d.getByLabel("Model id (Hugging Face)").fill("Qwen/Qwen3-0.6B");
  await d.getByLabel("Name (optional)", { exact: true }).fill("qwen-wrap");
  await d.getByLabel("Serverless only").check();
  await d.getByLabel("Serverless provider").selectOption("local");
  await expect(d.getByTestId("approval-notice")).toBeVisible();
  await d.getByRole("button", { name: "Request approval and deploy" }).click();
  await expect(d.getByTestId("detail-status")).toHaveText("pending approval");

  const comment = `https://example.test/${"x".repeat(1970)}`;
  await page.goto("/approvals");
  const card = page.getByTestId("approval-qwen-wrap");
  await card.getByLabel(/Comment/).fill(comment);
  await card.getByRole("button", { name: "Reject" }).click();
  await page.getByRole("button", { name: "Rejected" }).click();
  await expect(card.getByTestId("approval-comment")).toContainText(comment);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 800 });
    expect(await horizontalOverflow(page), `page overflow at ${width} px`).toBeLessThanOrEqual(0);
    const box = await card.boundingBox();
    expect(box?.width ?? Infinity).toBeLessThanOrEqual(width);
  }
  await shot(page, "approvals-long-comment");
  await dev.ctx.close();
});
