// The fetcher's memory, counted before it is spent. A memory-backed volume's pages are charged to
// the container that writes them, so the fetcher's memory limit must hold its own heap, the AWS
// answers it holds and every page (and inode) of the files it writes. Past the limit the kernel
// kills it with an empty termination message; so answers are counted as they arrive and the
// volume's cost is counted before anything is written, against the limit of the fetcher's own
// memory cgroup, and a fetch that would not fit fails with FETCH_BUDGET and its numbers instead.

import { readFileSync } from 'node:fs';
import { failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';

/** Secrets Manager's limit on a secret value (SecretString or SecretBinary). */
export const SECRET_MAX_BYTES = 64 * 1024;
/**
 * The largest answer AWS gives the fetcher: BatchGetSecretValue with 20 secrets of 64 KiB, each
 * byte escaped as `\u00XX` (6 bytes) in the JSON at worst, plus room for names, ARNs and version
 * ids. A larger answer comes from something that is not AWS (a proxy, an emulator): refused before
 * it is read whole.
 */
export const MAX_ANSWER_BYTES = 20 * SECRET_MAX_BYTES * 6 + 256 * 1024;
/** A tmpfs file costs its data rounded up to pages, plus its inode and directory entry. */
export const PAGE_BYTES = 4096;
// Measured: 5,000 one-byte files written as the fetcher writes them cost 5,034 bytes each in a
// cgroup v1 memory group (a page, and 938 bytes of inode and directory entry).
export const INODE_BYTES = 1024;
/** What writing needs beyond the pages (temp names, buffers, collector): kept free under the limit. */
export const WRITE_HEADROOM_BYTES = 8 * 1024 * 1024;
/** Answers are held about three times over (the bytes, the parsed strings, the rendered files). */
export const ANSWER_COPIES = 3;

export interface Memory {
  /** The cgroup's limit, bytes. */
  limit: number;
  /**
   * Its usage now, without the page cache the kernel could drop to make room (file pages; the
   * volume's pages are shared memory, which it cannot drop, and count).
   */
  used(): number;
}

const MIB = 1024 * 1024;
export const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;

type Read = (path: string) => string;
const readText: Read = (path) => readFileSync(path, 'utf8');

function statValue(stat: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(stat);
  return m ? Number(m[1]) : 0;
}

/**
 * The memory cgroup this process is charged to (v1 or v2, from /proc/self/cgroup), if it has a
 * limit; undefined outside one or without a limit (nothing to count against).
 */
export function cgroupMemory(read: Read = readText): Memory | undefined {
  let groups: string;
  try {
    groups = read('/proc/self/cgroup');
  } catch {
    return undefined;
  }
  const v1 = /^\d+:(?:[^:\n]*,)?memory(?:,[^:\n]*)?:(.*)$/m.exec(groups)?.[1];
  const v2 = /^0::(.*)$/m.exec(groups)?.[1];
  const candidates: Array<{ dir: string; v: 1 | 2 }> = [];
  // Inside a container the group's own directory is the mount's root; on a host it is the path.
  if (v1 !== undefined) candidates.push({ dir: `/sys/fs/cgroup/memory${v1 === '/' ? '' : v1}`, v: 1 }, { dir: '/sys/fs/cgroup/memory', v: 1 });
  if (v2 !== undefined) candidates.push({ dir: `/sys/fs/cgroup${v2 === '/' ? '' : v2}`, v: 2 }, { dir: '/sys/fs/cgroup', v: 2 });
  for (const { dir, v } of candidates) {
    try {
      const raw = read(`${dir}/${v === 1 ? 'memory.limit_in_bytes' : 'memory.max'}`).trim();
      const limit = raw === 'max' ? Number.POSITIVE_INFINITY : Number(raw);
      // cgroup v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages).
      if (!Number.isFinite(limit) || limit <= 0 || limit >= 2 ** 60) return undefined;
      const usageFile = `${dir}/${v === 1 ? 'memory.usage_in_bytes' : 'memory.current'}`;
      const [cache, shmem] = v === 1 ? ['total_cache', 'total_shmem'] : ['file', 'shmem'];
      read(usageFile);
      return {
        limit,
        used: () => {
          try {
            const stat = read(`${dir}/memory.stat`);
            return Number(read(usageFile).trim()) - (statValue(stat, cache) - statValue(stat, shmem));
          } catch {
            return 0;
          }
        },
      };
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** What the files cost on a memory-backed volume. */
export function volumeCost(files: OutputFile[]): { files: number; bytes: number; pages: number } {
  let bytes = 0;
  let pages = 0;
  for (const f of files) {
    bytes += f.data.byteLength;
    pages += Math.ceil(f.data.byteLength / PAGE_BYTES) * PAGE_BYTES + INODE_BYTES;
  }
  return { files: files.length, bytes, pages };
}

const HINT =
  "raise the fetcher's memory limit (chart fetcher.resources.limits.memory, webhook setting FETCHER_MEMORY_LIMIT), or write fewer files (a secret whole instead of explode)";

/** Before anything is written: do the files fit under the limit beside what the fetcher already holds? */
export function checkVolume(files: OutputFile[], memory: Memory | undefined, answers: { count: number; bytes: number }): Failure | undefined {
  if (memory === undefined) return undefined;
  const cost = volumeCost(files);
  const used = memory.used();
  if (used + cost.pages + WRITE_HEADROOM_BYTES <= memory.limit) return undefined;
  return failure(
    'FETCH_BUDGET',
    `writing ${cost.files} file(s) of ${cost.bytes} bytes would take ${mib(cost.pages)} of the fetcher's memory (a memory-backed volume's pages count against it); ` +
      `with ${mib(used)} in use (${answers.count} answer(s) from AWS, ${answers.bytes} bytes) and ${mib(WRITE_HEADROOM_BYTES)} kept for writing, that is over its limit of ${mib(memory.limit)}; nothing was written`,
    { hint: HINT },
  );
}

/** Thrown by the answer meter: an answer, or all of them together, would not fit. */
export class AnswerTooLarge extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnswerTooLarge';
  }
}

/**
 * Counts the bytes of every AWS answer as it arrives, against MAX_ANSWER_BYTES per answer and,
 * under a memory limit, against what the answers may take together (ANSWER_COPIES times their
 * bytes must fit under the limit beside what was in use when the fetch started).
 */
export class AnswerMeter {
  count = 0;
  bytes = 0;
  private readonly total: number;

  constructor(memory: Memory | undefined, readonly perAnswer = MAX_ANSWER_BYTES) {
    this.total = memory === undefined ? Number.POSITIVE_INFINITY : Math.max(0, (memory.limit - memory.used() - WRITE_HEADROOM_BYTES) / ANSWER_COPIES);
  }

  /** An answer begins (with its declared length, if any): refused at once if it cannot fit. */
  begin(declared: number | undefined): void {
    this.count++;
    if (declared !== undefined && declared > this.perAnswer) {
      throw new AnswerTooLarge(`an answer of ${declared} bytes (Content-Length) is larger than any AWS gives (at most ${this.perAnswer} bytes); it was not read`);
    }
  }

  /** `n` more bytes of an answer that has `sofar` bytes with them. */
  add(n: number, sofar: number): void {
    this.bytes += n;
    if (sofar > this.perAnswer) throw new AnswerTooLarge(`an answer grew past ${this.perAnswer} bytes, more than any AWS gives; the rest was not read`);
    if (this.bytes > this.total) {
      throw new AnswerTooLarge(
        `the answers from AWS grew past ${this.bytes} bytes, more than the fetcher's memory limit leaves room for (${mib(this.total)} of answers, each held about ${ANSWER_COPIES} times over)`,
      );
    }
  }
}
