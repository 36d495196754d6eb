// Memory as Kubernetes charges it: a cgroup v1 `memory` group of the bench's own (root only), its
// usage minus total_inactive_file (the working set the kubelet and `kubectl top` report, and what
// eviction looks at) and max_usage_in_bytes (what a memory limit holds the container to, page
// cache of the files it reads included). A process joins the group with
// `sh -c 'echo $$ > <dir>/cgroup.procs && exec "$@"'` (joinArgs) so that every byte it charges
// counts, from its first page on.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

const ROOT = '/sys/fs/cgroup/memory';
const MiB = 2 ** 20;

/** The chart's memory limit of the webhook container (charts/aws-secret-injector/values.yaml). */
export function chartMemoryLimit(root) {
  const values = YAML.parse(readFileSync(join(root, 'charts/aws-secret-injector/values.yaml'), 'utf8'));
  const q = String(values.resources.limits.memory);
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`the chart's memory limit ${q} is not in Mi or Gi`);
  return { text: q, bytes: Number(m[1]) * (m[2] === 'Mi' ? 2 ** 20 : 2 ** 30) };
}

/** Why no group can be made here, or undefined when one can. */
export function memoryCgroupUnavailable() {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync(join(ROOT, 'memory.force_empty')) && !existsSync(join(ROOT, 'memory.usage_in_bytes'))) return 'no cgroup v1 memory controller';
  return undefined;
}

/** A new group `name` (removed by `remove()`), optionally with a limit in bytes. */
export function memoryCgroup(name, { limitBytes } = {}) {
  const dir = join(ROOT, name);
  mkdirSync(dir);
  if (limitBytes !== undefined) writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  const read = (f) => readFileSync(join(dir, f), 'utf8');
  const stat = () => Object.fromEntries(read('memory.stat').trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
  const group = {
    dir,
    /** The command line that runs `argv` inside the group. */
    joinArgs: (argv) => ['sh', '-c', `echo $$ > ${dir}/cgroup.procs && exec "$@"`, 'sh', ...argv],
    /** Empties the group's page cache and its peak: as a node that has not read the files yet. */
    reset() {
      writeFileSync(join(dir, 'memory.force_empty'), '0');
      writeFileSync(join(dir, 'memory.max_usage_in_bytes'), '0');
    },
    usageMiB: () => Number(read('memory.usage_in_bytes')) / MiB,
    peakMiB: () => Number(read('memory.max_usage_in_bytes')) / MiB,
    /** usage − total_inactive_file, in MiB. */
    workingSetMiB() {
      const usage = Number(read('memory.usage_in_bytes'));
      return Math.max(0, usage - (stat().total_inactive_file ?? 0)) / MiB;
    },
    /** Times the kernel hit the group's limit, and whether it OOM-killed in it. */
    failcnt: () => Number(read('memory.failcnt')),
    oomKills: () => stat().oom_kill ?? Number(/oom_kill (\d+)/.exec(read('memory.oom_control'))?.[1] ?? 0),
    /**
     * Polls the working set every `ms` until stop() is called; returns its largest value. A
     * process ending between two polls can hide a short peak: max_usage_in_bytes never misses one.
     */
    sample(ms = 5) {
      let max = 0;
      const t = setInterval(() => (max = Math.max(max, group.workingSetMiB())), ms);
      return () => {
        clearInterval(t);
        return max;
      };
    },
    remove() {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch (e) {
          if (e.code !== 'EBUSY') throw e;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    },
  };
  return group;
}
