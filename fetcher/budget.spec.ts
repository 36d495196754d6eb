import { describe, expect, it } from 'vitest';
import { AnswerMeter, cgroupMemory, checkVolume, INODE_BYTES, MAX_ANSWER_BYTES, PAGE_BYTES, volumeCost, WRITE_HEADROOM_BYTES } from './budget.js';
import type { OutputFile } from './render.js';

const MIB = 1024 * 1024;
const files = (n: number, size: number): OutputFile[] => Array.from({ length: n }, (_, i) => ({ path: `f${i}`, data: Buffer.alloc(size), mode: 0o444, ref: 'r' }));

function fs(entries: Record<string, string>) {
  return (path: string) => {
    const v = entries[path];
    if (v === undefined) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
    return v;
  };
}

describe('cgroupMemory', () => {
  it('reads a v1 group (inside a container: the mount root) and counts shared memory, not the page cache it could drop', () => {
    const m = cgroupMemory(
      fs({
        '/proc/self/cgroup': '12:memory:/kubepods/pod1/abc\n1:name=systemd:/kubepods/pod1/abc\n',
        '/sys/fs/cgroup/memory/memory.limit_in_bytes': `${64 * MIB}\n`,
        '/sys/fs/cgroup/memory/memory.usage_in_bytes': `${40 * MIB}\n`,
        '/sys/fs/cgroup/memory/memory.stat': `cache ${20 * MIB}\ntotal_cache ${20 * MIB}\ntotal_shmem ${6 * MIB}\n`,
      }),
    );
    expect(m?.limit).toBe(64 * MIB);
    expect(m?.used()).toBe(26 * MIB);
  });

  it('reads a v2 group', () => {
    const m = cgroupMemory(
      fs({
        '/proc/self/cgroup': '0::/\n',
        '/sys/fs/cgroup/memory.max': `${80 * MIB}\n`,
        '/sys/fs/cgroup/memory.current': `${30 * MIB}\n`,
        '/sys/fs/cgroup/memory.stat': `anon 1\nfile ${10 * MIB}\nshmem ${2 * MIB}\n`,
      }),
    );
    expect(m?.limit).toBe(80 * MIB);
    expect(m?.used()).toBe(22 * MIB);
  });

  it('has nothing to count against without a limit or outside a cgroup', () => {
    expect(cgroupMemory(fs({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': 'max\n', '/sys/fs/cgroup/memory.current': '1' }))).toBeUndefined();
    expect(cgroupMemory(fs({ '/proc/self/cgroup': '9:memory:/\n', '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n', '/sys/fs/cgroup/memory/memory.usage_in_bytes': '1' }))).toBeUndefined();
    expect(cgroupMemory(fs({}))).toBeUndefined();
  });
});

describe('checkVolume', () => {
  it('counts each file as its pages and inode, and refuses with the numbers what would pass the limit', () => {
    expect(volumeCost(files(3, 5000))).toEqual({ files: 3, bytes: 15000, pages: 3 * (2 * PAGE_BYTES + INODE_BYTES) });
    const memory = { limit: 64 * MIB, used: () => 40 * MIB };
    expect(checkVolume(files(100, 100), memory, { count: 1, bytes: 10 })).toBeUndefined();
    const f = checkVolume(files(5000, 1), memory, { count: 2, bytes: 131072 });
    expect(f?.code).toBe('FETCH_BUDGET');
    expect(f?.message).toBe(
      `writing 5000 file(s) of 5000 bytes would take 24.4 MiB of the fetcher's memory (a memory-backed volume's pages count against it); with 40.0 MiB in use (2 answer(s) from AWS, 131072 bytes) and ${(WRITE_HEADROOM_BYTES / MIB).toFixed(1)} MiB kept for writing, that is over its limit of 64.0 MiB; nothing was written`,
    );
    expect(checkVolume(files(5000, 1), undefined, { count: 0, bytes: 0 })).toBeUndefined();
  });
});

describe('AnswerMeter', () => {
  it('refuses an answer larger than any AWS gives, by its declared length or as it grows', () => {
    const m = new AnswerMeter(undefined);
    expect(() => m.begin(MAX_ANSWER_BYTES + 1)).toThrow(/larger than any AWS gives/);
    m.begin(undefined);
    expect(() => m.add(10, MAX_ANSWER_BYTES + 1)).toThrow(/grew past/);
  });

  it('under a limit, refuses answers that together would not fit three times over beside what is in use', () => {
    const m = new AnswerMeter({ limit: 64 * MIB, used: () => 35 * MIB });
    m.begin(undefined);
    m.add(5 * MIB, 5 * MIB);
    m.begin(undefined);
    expect(() => m.add(3 * MIB, 3 * MIB)).toThrow(/more than the fetcher's memory limit leaves room for/);
  });
});
