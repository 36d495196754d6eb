// The refresh sidecar's signal to the app (`secrets.k8s.aws/refresh-signal`). The pod shares one
// process namespace, so the app's processes are in the sidecar's /proc. The webhook marks the
// named container with SIGNAL_TARGET_ENV=<its name>; its processes are those whose environment
// carries the mark, and the one signalled is the container's own top process (its parent is not
// marked: in a shared namespace a container's first process has parent 0). Reading another
// process's environment and signalling it needs no capability when both run as the same uid and
// gid, which the webhook arranges: the sidecar runs as the app's.

import { readdirSync, readFileSync } from 'node:fs';
import { SIGNAL_TARGET_ENV, type RefreshSignal } from './spec.js';

export interface ProcView {
  /** The process ids visible. */
  pids(): number[];
  /** The environment block, or undefined when it cannot be read (another uid, the process gone). */
  environ(pid: number): Buffer | undefined;
  ppid(pid: number): number | undefined;
}

export function procView(root = '/proc'): ProcView {
  return {
    pids: () => readdirSync(root).filter((n) => /^\d+$/.test(n)).map(Number),
    environ: (pid) => {
      try {
        return readFileSync(`${root}/${pid}/environ`);
      } catch {
        return undefined;
      }
    },
    ppid: (pid) => {
      try {
        // Field 4 of stat, after the command name in parentheses (which may hold spaces and ")").
        const stat = readFileSync(`${root}/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(fields[1]);
      } catch {
        return undefined;
      }
    },
  };
}

/** The top processes of the container marked `container`: marked, with a parent that is not. */
export function containerProcesses(container: string, proc: ProcView, self = process.pid): number[] {
  const mark = Buffer.from(`${SIGNAL_TARGET_ENV}=${container}\0`);
  const marked = new Set<number>();
  for (const pid of proc.pids()) {
    if (pid === self) continue;
    const env = proc.environ(pid);
    if (env === undefined) continue;
    // A whole entry: at the start of the block or right after a NUL.
    if (env.subarray(0, mark.length).equals(mark) || env.includes(Buffer.concat([Buffer.from([0]), mark]))) marked.add(pid);
  }
  return [...marked].filter((pid) => !marked.has(proc.ppid(pid) ?? 0)).sort((a, b) => a - b);
}

/**
 * Sends the signal to the container's top process; one line for the sidecar's log, which names
 * the container, the signal and the process id, or why nothing was signalled.
 */
export function signalContainer(target: RefreshSignal, proc: ProcView = procView(), kill: (pid: number, signal: NodeJS.Signals) => void = process.kill): string {
  let pids: number[];
  try {
    pids = containerProcesses(target.container, proc);
  } catch (e) {
    return `refresh: could not look for container ${target.container}'s process to send ${target.signal}: ${(e as Error).message}`;
  }
  if (pids.length === 0) {
    return `refresh: no process of container ${target.container} found to send ${target.signal} (is it running, as the same uid and gid, in the pod's shared process namespace?)`;
  }
  const sent: number[] = [];
  const failed: string[] = [];
  for (const pid of pids) {
    try {
      kill(pid, target.signal);
      sent.push(pid);
    } catch (e) {
      failed.push(`pid ${pid}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const parts = [];
  if (sent.length > 0) parts.push(`sent ${target.signal} to container ${target.container} (pid ${sent.join(', ')})`);
  if (failed.length > 0) parts.push(`could not send ${target.signal} to container ${target.container}: ${failed.join('; ')}`);
  return `refresh: ${parts.join('; ')}`;
}
