// Spawns a long-running test process (etcd, kube-apiserver, the webhook, ...) behind a tiny
// guard that kills it as soon as its parent is gone. Exit hooks alone do not do this: a vitest
// worker ended by a signal runs no 'exit' handlers, and a child outlives its parent on Linux. The
// guard holds a pipe from the parent on stdin; when the parent dies the pipe closes and the guard
// kills the process. SIGTERM/SIGINT to the guard are passed on; the guard exits as the process did.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

const GUARD = `
const { spawn } = require('node:child_process');
const [file, ...args] = process.argv.slice(1);
const child = spawn(file, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.on('error', (e) => { console.error('cannot run ' + file + ': ' + e.message); process.exit(127); });
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGTERM' ? 143 : 137)));
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => child.kill(s));
process.stdin.on('end', () => child.kill('SIGKILL'));
process.stdin.on('error', () => child.kill('SIGKILL'));
process.stdin.resume();
`;

export interface GuardedOptions {
  /** stdout and stderr of the process (file descriptors or 'ignore'). */
  out: number | 'ignore';
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Like spawn(file, args), but the process dies with this one. */
export function spawnGuarded(file: string, args: string[], opts: GuardedOptions): ChildProcess {
  const stdio: StdioOptions = ['pipe', opts.out, opts.out];
  const guard = spawn(process.execPath, ['-e', GUARD, '--', file, ...args], {
    stdio,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  // Never write to the pipe; it only has to stay open while this process lives.
  guard.stdin?.on('error', () => undefined);
  return guard;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * SIGTERM, then after graceMs the guard's pipe is closed (the guard SIGKILLs the process and exits),
 * and only if even that fails the guard itself is killed. Resolves once the guard has exited.
 */
export async function stopGuarded(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const force = setTimeout(() => child.stdin?.destroy(), graceMs);
  const last = setTimeout(() => child.kill('SIGKILL'), graceMs + 5_000);
  await gone;
  clearTimeout(force);
  clearTimeout(last);
}
