import type { SessionUser } from "../../trpc";
import { makeRoleFixture } from "../../test/fixtures";
import { requestDeployment, type DeploymentInput } from "../../deployments";
import { setEventSink } from "../events";
import { registerRecordingProviders } from "./recording-provider";

export const actorOf = (u: SessionUser) => ({ userId: u.id, label: u.email, ip: null, userAgent: null });

/** Captures sendEvent calls instead of running them (the @inngest/test suites drive functions themselves). */
export function captureEvents() {
  const sent: Array<{ name: string; data: Record<string, unknown> }> = [];
  setEventSink(async (name, data) => {
    sent.push({ name, data });
  });
  return sent;
}

let n = 0;
export function recInput(over: Partial<DeploymentInput> = {}): DeploymentInput {
  n++;
  return {
    model: "Qwen/Qwen3-0.6B",
    slug: `qwen-${process.pid}-${n}`,
    mode: "hybrid",
    gpu: "L4",
    provider: "rec-svl",
    spotProvider: "rec-spot",
    spotClouds: ["aws"],
    ...over,
  };
}

export async function workflowFixture() {
  registerRecordingProviders();
  const f = await makeRoleFixture("Wf");
  const request = (by: "admin" | "developer", over: Partial<DeploymentInput> = {}) =>
    requestDeployment(f.team.id, { ...actorOf(f[by]), userId: f[by].id, role: by }, recInput(over));
  return { ...f, request };
}
