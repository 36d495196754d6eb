// Stage defaults (CPU limits): the fetcher's and the refresher's CPU limits, read from the pod.
//
// The fetcher runs alone, before every other container, and the app waits for it: a CPU limit
// only spreads its start over more CFS periods. A pod's effective CPU limit (what a ResourceQuota
// on `limits.cpu` charges and what the pod's cgroup gets) is the larger of its biggest init
// container's limit and the sum of its app containers' and sidecars' limits, or its pod-level
// limit; with any app or sidecar unlimited the pod is unlimited. So the fetcher may take up to
// that without costing the pod anything. Two bounds on top:
//   - a LimitRange's per-container `max`, which the webhook cannot see, admits every container the
//     pod already has (LimitRanger checks them all after the webhooks), so the largest of their
//     limits is the largest limit certain to pass it; the sum of the apps may not be;
//   - never below the configured limit (the floor), which the operator sets for pods whose
//     containers are limited below it.
// The refresher runs beside the apps for the pod's whole life, so any limit of its own adds to the
// pod's: it keeps the configured one, and goes unlimited only where the pod is unlimited anyway.

import { quantityValue } from './quantity.js';
import type { Pod } from './mutate.js';
import type { MutationConfig } from './types.js';

/** `pod`: derived from the pod as above; `fixed`: exactly the configured limits. */
export const CPU_LIMIT_POLICIES = ['pod', 'fixed'] as const;
export type CpuLimitPolicy = (typeof CPU_LIMIT_POLICIES)[number];

export interface CpuLimits {
  /** The fetcher's CPU limit; undefined: none. */
  fetcher?: string;
  /** The refresher's CPU limit; undefined: none. */
  refresher?: string;
}

const list = <T>(v: T[] | null | undefined): T[] => (Array.isArray(v) ? v : []);

function cpuLimitOf(resources: unknown): { raw: string; value: number } | undefined {
  if (typeof resources !== 'object' || resources === null) return undefined;
  const limits = (resources as { limits?: unknown }).limits;
  if (typeof limits !== 'object' || limits === null) return undefined;
  const raw = (limits as Record<string, unknown>).cpu;
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string') return undefined;
  const value = quantityValue(text);
  return value === undefined ? undefined : { raw: text, value };
}

const larger = (a: { raw: string; value: number } | undefined, b: { raw: string; value: number } | undefined) =>
  a === undefined ? b : b === undefined || a.value >= b.value ? a : b;

/** The CPU limits of the fetcher and the refresher for this pod (before injection). */
export function cpuLimits(pod: Pod, config: MutationConfig): CpuLimits {
  const floorRaw = config.fetcherResources.limits.cpu;
  const configured: CpuLimits = {};
  if (floorRaw !== undefined) configured.fetcher = floorRaw;
  if (config.refresherResources.limits.cpu !== undefined) configured.refresher = config.refresherResources.limits.cpu;
  if ((config.cpuLimitPolicy ?? 'pod') === 'fixed') return configured;

  const podLevel = cpuLimitOf(pod.spec.resources);
  let largest: { raw: string; value: number } | undefined;
  let unlimited = false;
  for (const c of [...pod.spec.containers, ...list(pod.spec.initContainers)]) {
    const limit = cpuLimitOf(c.resources);
    largest = larger(largest, limit);
    // Apps and sidecars (restartPolicy Always) run side by side: one of them unlimited, the pod is.
    const beside = c.restartPolicy === 'Always' || pod.spec.containers.includes(c);
    if (limit === undefined && beside) unlimited = true;
  }
  if (unlimited && podLevel === undefined) return {};

  // Limited: by pod-level resources (every container must fit under them) or by each container.
  const ceiling = largest ?? podLevel;
  const floor = floorRaw === undefined ? undefined : { raw: floorRaw, value: quantityValue(floorRaw) ?? 0 };
  const fetcher = larger(ceiling, floor);
  const out: CpuLimits = {};
  if (fetcher !== undefined) out.fetcher = fetcher.raw;
  if (configured.refresher !== undefined) out.refresher = configured.refresher;
  return out;
}
