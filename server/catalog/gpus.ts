import type { GpuInfo } from "./types";

/**
 * Every GPU Tuna knows about. The catalog key (`name`) is what deployments, plans and catalog entries use;
 * aliases are accepted on input only. `skypilotName` is set when SkyPilot offers the GPU for spot.
 * H100-MIG's and RTX-PRO-6000's VRAM are the values providers sell them as, not the full card.
 */
export const GPUS: readonly GpuInfo[] = [
  { name: "T4", vramGb: 16, arch: "turing", skypilotName: "T4" },
  { name: "A10", vramGb: 24, arch: "ampere", skypilotName: "A10" },
  { name: "A10G", vramGb: 24, arch: "ampere", skypilotName: "A10G" },
  { name: "L4", vramGb: 24, arch: "ada", skypilotName: "L4" },
  { name: "A4000", vramGb: 16, arch: "ampere", aliases: ["RTX-A4000", "RTXA4000"] },
  { name: "A5000", vramGb: 24, arch: "ampere", aliases: ["RTX-A5000", "RTXA5000"] },
  { name: "A6000", vramGb: 48, arch: "ampere", aliases: ["RTX-A6000", "RTXA6000"] },
  { name: "RTX4090", vramGb: 24, arch: "ada", aliases: ["4090", "RTX-4090"] },
  { name: "A40", vramGb: 48, arch: "ampere" },
  { name: "L40", vramGb: 48, arch: "ada" },
  { name: "L40S", vramGb: 48, arch: "ada", skypilotName: "L40S" },
  { name: "A100-40GB", vramGb: 40, arch: "ampere", aliases: ["A100_40GB", "A100-40G"], skypilotName: "A100" },
  { name: "A100-80GB", vramGb: 80, arch: "ampere", aliases: ["A100", "A100_80GB", "A100-80G"], skypilotName: "A100-80GB" },
  { name: "H100-MIG", vramGb: 40, arch: "hopper", aliases: ["H100_MIG", "H100MIG"] },
  { name: "H100", vramGb: 80, arch: "hopper", aliases: ["H100-80GB", "H100_80GB"], skypilotName: "H100" },
  { name: "H200", vramGb: 141, arch: "hopper", skypilotName: "H200" },
  { name: "B200", vramGb: 192, arch: "blackwell", skypilotName: "B200" },
  { name: "RTX-PRO-6000", vramGb: 32, arch: "blackwell", aliases: ["RTX_PRO_6000", "RTXPRO6000", "RTX-PRO6000"] },
];

/** Case-insensitive, and `_`/space/`-` are interchangeable ("a100_80gb" finds "A100-80GB"). */
function normalise(s: string): string {
  return s.trim().toUpperCase().replace(/[\s_]+/g, "-");
}

const byKey = new Map<string, GpuInfo>();
for (const g of GPUS) {
  for (const spelling of [g.name, ...(g.aliases ?? [])]) {
    const k = normalise(spelling);
    if (byKey.has(k) && byKey.get(k) !== g) throw new Error(`catalog: GPU spelling ${spelling} is ambiguous`);
    byKey.set(k, g);
  }
}

/** The GPU for a catalog key or alias, or undefined. */
export function findGpu(nameOrAlias: string): GpuInfo | undefined {
  return byKey.get(normalise(nameOrAlias));
}

export function gpuNames(): string[] {
  return GPUS.map((g) => g.name);
}

/** Turing cards (T4) have no bfloat16: vLLM must run them with `--dtype half`. */
export function needsHalfDtype(gpu: string): boolean {
  return findGpu(gpu)?.arch === "turing";
}
