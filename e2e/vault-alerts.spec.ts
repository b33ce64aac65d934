import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, type Page, test } from "@playwright/test";
import pg from "pg";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";

/** A JSON webhook receiver on loopback (allowed by the e2e runner's TUNA_ALLOW_PRIVATE_URLS). */
async function webhookReceiver(): Promise<{ server: Server; url: (path: string) => string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      bodies.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, bodies, url: (path) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}` };
}

async function confirmDialog(page: Page, button: string) {
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: button }).click();
  await expect(dialog).toBeHidden();
}

test("an alert channel's webhook deleted in the vault: the dialog names the channel, /alerts says it is missing, Send test says so, a new URL fixes it", async ({ page }) => {
  await signUp(page, "Val Vault", uniqueEmail("vault-alerts"));
  const hook = await webhookReceiver();
  try {
    await page.goto("/alerts");
    const form = page.getByRole("form", { name: "Add an alert channel" });
    await form.getByLabel("Name").fill("#ops");
    await form.getByLabel("Kind").selectOption("webhook");
    await form.getByLabel("Webhook URL").fill(hook.url("/first"));
    await form.getByRole("button", { name: "Add channel" }).click();
    const ops = page.getByTestId("channel-#ops");
    await expect(ops).toContainText("enabled");

    // The same name again is refused in plain words.
    await form.getByLabel("Name").fill("#ops");
    await form.getByLabel("Kind").selectOption("webhook");
    await form.getByLabel("Webhook URL").fill(hook.url("/second"));
    await form.getByRole("button", { name: "Add channel" }).click();
    await expect(form.getByRole("alert")).toHaveText("There is already a channel named “#ops” in this team. Choose another name.");
    // A Slack channel needs Slack's incoming-webhook URL.
    await form.getByLabel("Name").fill("#slack");
    await form.getByLabel("Kind").selectOption("slack");
    await form.getByLabel("Webhook URL").fill("https://hooks.slack.com/foo");
    await form.getByRole("button", { name: "Add channel" }).click();
    await expect(form.getByRole("alert")).toContainText("it must look like https://hooks.slack.com/services/T…/B…/…");
    await expect(page.getByTestId("channels-list").getByRole("listitem")).toHaveCount(1);

    // The vault's delete dialog says which channel stops.
    await page.goto("/vault");
    const secret = page.getByTestId("secret-Alert channel: #ops");
    await secret.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    await expect(dialog).toContainText("This is the webhook URL of the alert channel “#ops”. It stops receiving alerts until it gets a new URL on the Alerts page.");
    await expect(dialog).not.toContainText("Deployments");
    await shot(page, "vault-delete-alert-webhook");
    await confirmDialog(page, "Delete credential");
    await expect(secret).toHaveCount(0);

    // /alerts: the channel says its webhook is missing; Send test says so in plain words.
    await page.goto("/alerts");
    await expect(ops.getByTestId("webhook-missing")).toContainText("Webhook missing");
    await expect(ops.getByTestId("webhook-missing")).toContainText("Set a new URL");
    await expect(ops).not.toContainText("enabled");
    await expect(ops).not.toContainText("URL ••••");
    await ops.getByRole("button", { name: "Send test" }).click();
    await expect(ops.getByRole("alert")).toHaveText("Nothing was sent: the webhook URL of “#ops” was deleted from the vault. Set a new URL (Edit), then send the test again.");
    await expect(page.locator("body")).not.toContainText("Secret not found");
    await shot(page, "alerts-webhook-missing");

    // Editing with an empty name: the message sits by the field, without a "name:" prefix.
    await ops.getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("form", { name: "Edit #ops" });
    await edit.getByLabel("Name").fill("");
    await edit.getByRole("button", { name: "Save channel" }).click();
    await expect(edit.getByRole("alert")).toHaveText("Enter a name.");
    await expect(page.locator("body")).not.toContainText("name: ");

    // A new URL and a new name: the channel works again, and the vault label follows the name.
    await edit.getByLabel("Name").fill("#platform");
    await edit.getByLabel(/^New webhook URL/).fill(hook.url("/fixed"));
    await edit.getByRole("button", { name: "Save channel" }).click();
    const platform = page.getByTestId("channel-#platform");
    await expect(platform).toContainText("enabled");
    await expect(platform.getByTestId("webhook-missing")).toHaveCount(0);
    await platform.getByRole("button", { name: "Send test" }).click();
    await expect(platform.getByTestId("test-result")).toContainText("Test delivered");
    expect(hook.bodies.some((b) => b.includes("Tuna test alert"))).toBe(true);

    // Renaming again renames the vault secret too.
    await platform.getByRole("button", { name: "Edit" }).click();
    const edit2 = page.getByRole("form", { name: "Edit #platform" });
    await edit2.getByLabel("Name").fill("#infra");
    await edit2.getByRole("button", { name: "Save channel" }).click();
    await expect(page.getByTestId("channel-#infra")).toBeVisible();
    await page.goto("/vault");
    await expect(page.getByTestId("secret-Alert channel: #infra")).toBeVisible();
    await expect(page.getByTestId("secrets-list")).not.toContainText("#platform");
    await expect(page.getByTestId("secrets-list")).not.toContainText("#ops");
  } finally {
    hook.server.close();
  }

  // The vault's add form without a kind says what to do, not a list of internal kind names.
  await page.getByLabel("Label").fill("something");
  await page.getByLabel("Value", { exact: true }).fill("a-value-of-some-length");
  await page.getByRole("button", { name: "Save credential" }).click();
  await expect(page.getByRole("form", { name: "Add a credential" }).getByRole("alert").first()).toHaveText("Choose what kind of credential this is.");
  await expect(page.locator("body")).not.toContainText("Choose one of");
});

test("API key scope shows deployment names to every role, ended ones marked; the page does not scroll sideways at 390 px", async ({ page, browser }) => {
  const email = uniqueEmail("keys-scope");
  await signUp(page, "Sam Scope", email);
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  const ids: Record<string, string> = {};
  try {
    const team = await db.query<{ teamId: string; userId: string }>(
      `SELECT m."teamId", m."userId" FROM "Membership" m JOIN "User" u ON u.id = m."userId" WHERE u.email = $1`,
      [email],
    );
    const { teamId, userId } = team.rows[0];
    for (const slug of ["live-dep", "ended-dep"]) {
      const id = `dmw${slug.replace("-", "")}${Date.now().toString(36)}`;
      await db.query(
        `INSERT INTO "Deployment" (id, "teamId", slug, model, "servedModelName", mode, status, spec, "createdById", "updatedAt")
         VALUES ($1, $2, $3, 'Qwen/Qwen3-0.6B', 'Qwen/Qwen3-0.6B', 'serverless', 'active', '{}'::jsonb, $4, now())`,
        [id, teamId, slug, userId],
      );
      ids[slug] = id;
    }

    await page.goto("/api-keys");
    await page.getByLabel("Label").fill("scoped");
    await page.getByLabel("Only these deployments").check();
    await page.getByLabel("live-dep").check();
    await page.getByLabel("ended-dep").check();
    await page.getByRole("button", { name: "Create key" }).click();
    await expect(page.getByTestId("new-api-key")).toBeVisible();
    await page.getByRole("button", { name: "Done" }).click();
    await db.query(`UPDATE "Deployment" SET status = 'destroyed', "destroyedAt" = now() WHERE id = $1`, [ids["ended-dep"]]);
  } finally {
    await db.end();
  }

  const scope = page.getByTestId("key-scoped").getByTestId("key-scope");
  await page.reload();
  await expect(scope).toHaveText(/^(live-dep, ended-dep \(destroyed\)|ended-dep \(destroyed\), live-dep)$/);

  const viewer = await inviteMember(page, browser, "viewer", "Vic Viewer");
  await viewer.page.goto("/api-keys");
  const viewerScope = viewer.page.getByTestId("key-scoped").getByTestId("key-scope");
  await expect(viewerScope).toHaveText(/^(live-dep, ended-dep \(destroyed\)|ended-dep \(destroyed\), live-dep)$/);
  for (const id of Object.values(ids)) await expect(viewer.page.locator("body")).not.toContainText(id);

  // 390 px wide: the table scrolls inside its box; the page itself does not scroll sideways.
  await viewer.page.setViewportSize({ width: 390, height: 844 });
  await page.setViewportSize({ width: 390, height: 844 });
  for (const p of [page, viewer.page]) {
    await p.goto("/api-keys");
    await expect(p.getByTestId("keys-table")).toBeVisible();
    const { scrollWidth, clientWidth } = await p.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
    expect(scrollWidth, "the page is wider than the viewport").toBeLessThanOrEqual(clientWidth);
  }
  await shot(page, "api-keys-390");
  await viewer.ctx.close();
});
