import type { Tx } from "../db";

export function slugify(name: string): string {
  const s = name
    .normalize("NFKD")
    .replace(/[^\w\s-]/g, "")
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, "-")
    .replace(/-+/g, "-")
    .slice(0, 40)
    .replace(/^-|-$/g, "");
  return s || "team";
}

export async function uniqueTeamSlug(tx: Tx, base: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const slug = i === 0 ? base : `${base}-${Math.random().toString(36).slice(2, 6)}`;
    if (!(await tx.team.findUnique({ where: { slug }, select: { id: true } }))) return slug;
  }
  throw new Error("could not find a free team slug");
}
