import { expect, type Page, test } from "@playwright/test";
import { inviteMember, shot, signUp, uniqueEmail } from "./helpers";


/** A tRPC mutation over HTTP, as any script could send it (superjson body, session cookie of `page`). */
async function mutate(page: Page, path: string, input: unknown, teamId?: string) {
  const r = await page.request.post(`/api/trpc/${path}`, {
    data: { json: input },
    headers: teamId ? { "x-tuna-team": teamId } : {},
  });
  return { status: r.status(), body: (await r.json()) as { error?: { json?: { message?: string; data?: { code?: string } } } } };
}

async function query(page: Page, path: string, input: unknown, teamId?: string) {
  const r = await page.request.get(`/api/trpc/${path}?input=${encodeURIComponent(JSON.stringify({ json: input }))}`, {
    headers: teamId ? { "x-tuna-team": teamId } : {},
  });
  return { status: r.status(), text: await r.text() };
}

async function currentTeamId(page: Page): Promise<string> {
  const c = (await page.context().cookies()).find((x) => x.name === "tuna_team");
  expect(c, "the team cookie is set").toBeTruthy();
  return decodeURIComponent(c!.value);
}

test("a viewer sees no mutating controls, and the server refuses direct calls", async ({ page, browser }) => {
  await signUp(page, "Ada Admin", uniqueEmail("admin"));
  // Something for the viewer to look at: an API key.
  await page.goto("/api-keys");
  await page.getByLabel("Label").fill("shared key");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-api-key")).toHaveValue(/^tuna_sk_/);

  const viewer = await inviteMember(page, browser, "viewer", "Vic Viewer");
  const v = viewer.page;
  const teamId = await currentTeamId(v);

  // Navigation hides what the role cannot read at all.
  await v.goto("/");
  const nav = v.getByRole("navigation", { name: "Main" });
  for (const hidden of ["Vault", "Alerts", "Audit log"]) await expect(nav.getByRole("link", { name: hidden })).toHaveCount(0);
  for (const shown of ["Deployments", "Approvals", "API keys", "GPU catalog", "Settings"]) await expect(nav.getByRole("link", { name: shown })).toBeVisible();

  await v.goto("/deployments");
  await expect(v.getByRole("heading", { name: "Deployments", level: 1 })).toBeVisible();
  await expect(v.getByRole("link", { name: "New deployment" })).toHaveCount(0);
  await expect(v.getByRole("button", { name: "New deployment" })).toBeDisabled();
  await expect(v.getByText("Viewers cannot deploy.")).toBeVisible();
  await expect(v.getByRole("button", { name: "Destroy all" })).toHaveCount(0);
  await shot(v, "viewer-deployments");

  await v.goto("/deployments/new");
  await expect(v.getByText(/Your role cannot request deployments/)).toBeVisible();
  await expect(v.getByRole("button", { name: /Deploy/ })).toHaveCount(0);

  await v.goto("/api-keys");
  await expect(v.getByTestId("key-shared key")).toBeVisible();
  await expect(v.getByRole("button", { name: "Create key" })).toHaveCount(0);
  await expect(v.getByRole("button", { name: "Revoke" })).toHaveCount(0);
  await expect(v.getByText(/Your role can see keys but not create or revoke them/)).toBeVisible();
  await shot(v, "viewer-api-keys");

  await v.goto("/vault");
  await expect(v.getByText(/Your role cannot see the team’s provider credentials/)).toBeVisible();
  await v.goto("/alerts");
  await expect(v.getByText(/Your role cannot see alert channels/)).toBeVisible();

  await v.goto("/approvals");
  await expect(v.getByText(/Only admins can approve or reject requests/)).toBeVisible();
  await expect(v.getByRole("button", { name: "Approve", exact: true })).toHaveCount(0);

  await v.goto("/settings");
  await expect(v.getByText(/Only admins can change the policy/)).toBeVisible();
  await expect(v.getByLabel("Requests expire after (hours)")).toBeDisabled();
  await expect(v.getByRole("button", { name: "Save policy" })).toHaveCount(0);
  await expect(v.getByRole("button", { name: "Set budget" })).toHaveCount(0);
  await shot(v, "viewer-settings");

  await v.goto("/catalog");
  await expect(v.getByTestId("catalog-table")).toBeVisible();

  // Direct tRPC calls with the viewer's session are refused by the server, naming the missing permission.
  const refused: Array<[string, unknown]> = [
    ["apiKeys.create", { label: "sneaky" }],
    ["vault.create", { kind: "huggingface", label: "x", value: "hf_aaaaaaaaaaaaaaaa" }],
    ["deployments.create", { model: "Qwen/Qwen3-0.6B", mode: "serverless", gpu: "L4", provider: "local" }],
    ["deployments.destroyAll", { confirm: "destroy all" }],
    ["deployments.destroy", { id: "d_any" }],
    ["approvals.decide", { approvalId: "a_any", decision: "approve" }],
    ["policy.update", { approvalRoles: [] }],
    ["usage.budgets.set", { scope: "team", monthlyLimitMicros: 1_000_000 }],
    ["alerts.create", { name: "x", kind: "webhook", url: "http://127.0.0.1:9/x", events: [] }],
    ["team.invite", { role: "admin" }],
  ];
  for (const [path, input] of refused) {
    const r = await mutate(v, path, input, teamId);
    expect(r.status, `${path} must be refused for a viewer`).toBe(403);
    expect(r.body.error?.json?.message).toMatch(/does not have the permission/);
  }
  expect((await query(v, "vault.list", undefined, teamId)).status).toBe(403);
  expect((await query(v, "audit.list", {}, teamId)).status).toBe(403);

  // A stranger (signed in, not a member) learns nothing about the team: NOT_FOUND, not FORBIDDEN.
  const ctx3 = await browser.newContext();
  const stranger = await ctx3.newPage();
  await signUp(stranger, "Sam Stranger", uniqueEmail("stranger"));
  for (const path of ["deployments.list", "apiKeys.list", "approvals.list"]) {
    const r = await query(stranger, path, {}, teamId);
    expect(r.status, `${path} for a stranger`).toBe(404);
    expect(r.text).not.toContain("shared key");
  }
  expect((await mutate(stranger, "apiKeys.create", { label: "x" }, teamId)).status).toBe(404);
  await ctx3.close();
  await viewer.ctx.close();
});
