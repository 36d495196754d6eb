// A pod's memory limit as the kernel enforces it: a cgroup v1 `memory` group with
// memory.limit_in_bytes (and no swap), and a memory-backed volume (tmpfs) whose pages are charged
// to the group of the process that writes them, as an emptyDir with medium Memory is. Root only.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup/memory';

/** Why a memory group cannot be made here; undefined when it can. */
export function memoryGroupUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (a cgroup v1 memory group and a tmpfs mount)';
  if (!existsSync(join(ROOT, 'cgroup.procs'))) return `no cgroup v1 memory controller at ${ROOT}`;
  return undefined;
}

export interface MemoryGroup {
  /** Prefix a command with this: it joins the group, then execs the command. */
  wrap: string[];
  /** Peak usage (memory.max_usage_in_bytes) and whether the kernel's OOM killer acted. */
  peak(): number;
  oomKilled(): boolean;
  remove(): void;
}

export function memoryGroup(name: string, limitBytes: number): MemoryGroup {
  const dir = join(ROOT, `${name}-${process.pid}-${Date.now()}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  try {
    writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
  } catch {
    // no swap accounting: nothing to limit
  }
  try {
    writeFileSync(join(dir, 'memory.swappiness'), '0');
  } catch {
    // not settable on this kernel
  }
  return {
    wrap: ['sh', '-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec "$@"`, 'sh'],
    peak: () => Number(readFileSync(join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
    oomKilled: () => /^oom_kill [1-9]/m.test(readFileSync(join(dir, 'memory.oom_control'), 'utf8')),
    remove: () => {
      for (let i = 0; i < 50; i++) {
        try {
          // Pages of a tmpfs the group wrote stay charged to it until the tmpfs is gone.
          writeFileSync(join(dir, 'memory.force_empty'), '0');
        } catch {
          // busy
        }
        try {
          rmdirSync(dir);
          return;
        } catch {
          execFileSync('sleep', ['0.1']);
        }
      }
    },
  };
}

/** A tmpfs mounted on a new directory (a memory-backed emptyDir); `remove` unmounts it. */
export function tmpfsVolume(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'memory-volume-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0777', 'tmpfs', dir]);
  return {
    dir,
    remove: () => {
      execFileSync('umount', [dir]);
      rmdirSync(dir);
    },
  };
}
