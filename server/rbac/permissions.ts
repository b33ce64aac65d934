import type { Role } from "@prisma/client";

/**
 * Permissions as data (DESIGN.md §3.5). This one table drives the tRPC middleware, the members page and
 * the RBAC matrix test. Add a permission here, never an `if (role === …)` in code.
 */
export const ROLES = ["admin", "developer", "viewer"] as const satisfies readonly Role[];

export const PERMISSIONS = {
  "team.read": { roles: ["admin", "developer", "viewer"], description: "See the team, its members and settings" },
  "team.update": { roles: ["admin"], description: "Rename the team, edit approval policy" },
  "member.manage": { roles: ["admin"], description: "Invite members, change roles, remove members" },
  "deployment.read": { roles: ["admin", "developer", "viewer"], description: "See deployments, their timeline and metrics" },
  "deployment.create": { roles: ["admin", "developer"], description: "Request a deployment" },
  "deployment.destroy": { roles: ["admin", "developer"], description: "Destroy a deployment" },
  "deployment.destroy-all": { roles: ["admin"], description: "Destroy every deployment of the team at once" },
  "deployment.approve": { roles: ["admin"], description: "Approve or reject deployment requests" },
  "vault.write": { roles: ["admin"], description: "Add, rotate, test and delete provider credentials" },
  "vault.read-metadata": { roles: ["admin", "developer"], description: "See which credentials exist (label, last 4 characters)" },
  "apikey.read": { roles: ["admin", "developer", "viewer"], description: "See router API keys (prefix, limits, last use)" },
  "apikey.manage": { roles: ["admin", "developer"], description: "Create and revoke router API keys" },
  "audit.read": { roles: ["admin"], description: "Read and verify the audit log" },
  "alerts.read": { roles: ["admin", "developer"], description: "See alert channels and delivery status" },
  "alerts.manage": { roles: ["admin"], description: "Add, test and remove alert channels" },
  "budget.read": { roles: ["admin", "developer", "viewer"], description: "See budgets, usage and cost" },
  "budget.manage": { roles: ["admin"], description: "Set budgets and raise limits" },
} as const satisfies Record<string, { roles: readonly Role[]; description: string }>;

export type Permission = keyof typeof PERMISSIONS;

export function rolesWith(permission: Permission): Role[] {
  return [...PERMISSIONS[permission].roles];
}

export function can(role: Role | null | undefined, permission: Permission): boolean {
  return !!role && (PERMISSIONS[permission].roles as readonly Role[]).includes(role);
}

export function permissionsOf(role: Role): Permission[] {
  return (Object.keys(PERMISSIONS) as Permission[]).filter((p) => can(role, p));
}
