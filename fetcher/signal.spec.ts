import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { containerProcesses, procView, signalContainer, type ProcView } from './signal.js';
import { SIGNAL_TARGET_ENV } from './spec.js';

/** A process table: pid -> [ppid, environment entries] (undefined: unreadable, as another uid's). */
function table(t: Record<number, [number, string[] | undefined]>): ProcView {
  return {
    pids: () => Object.keys(t).map(Number),
    environ: (pid) => (t[pid]?.[1] === undefined ? undefined : Buffer.from(t[pid]![1]!.map((e) => `${e}\0`).join(''))),
    ppid: (pid) => t[pid]?.[0],
  };
}

const mark = (c: string) => `${SIGNAL_TARGET_ENV}=${c}`;

describe('the app container of a shared process namespace', () => {
  it("is found by the webhook's mark: its top process, not the children that inherit the mark", () => {
    const proc = table({
      1: [0, undefined], // pause
      7: [0, ['PATH=/bin', mark('app')]], // the app container's first process
      12: [7, ['PATH=/bin', mark('app')]], // a child of it
      13: [12, [mark('app')]],
      20: [0, ['HOSTNAME=x', mark('app-2')]], // another container whose name starts the same
      30: [0, [`X=${mark('app')}`]], // the mark inside another variable's value
      40: [0, undefined], // another uid: unreadable
    });
    expect(containerProcesses('app', proc, 99)).toEqual([7]);
    expect(containerProcesses('app-2', proc, 99)).toEqual([20]);
    expect(containerProcesses('web', proc, 99)).toEqual([]);
  });

  it('says why nothing was signalled, and what was', () => {
    const kills: Array<[number, string]> = [];
    const kill = (pid: number, s: NodeJS.Signals) => void kills.push([pid, s]);
    expect(signalContainer({ container: 'app', signal: 'SIGHUP' }, table({ 1: [0, undefined] }), kill)).toMatch(/no process of container app found to send SIGHUP/);
    expect(signalContainer({ container: 'app', signal: 'SIGUSR1' }, table({ 7: [0, [mark('app')]] }), kill)).toBe('refresh: sent SIGUSR1 to container app (pid 7)');
    expect(kills).toEqual([[7, 'SIGUSR1']]);
    const denied = () => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    };
    expect(signalContainer({ container: 'app', signal: 'SIGHUP' }, table({ 7: [0, [mark('app')]] }), denied)).toBe('refresh: could not send SIGHUP to container app: pid 7: EPERM');
  });

  it('finds and signals a real process through /proc', async () => {
    const child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => { console.log('hup'); process.exit(0); }); setInterval(() => {}, 1000); console.log('ready')"], {
      env: { ...process.env, [SIGNAL_TARGET_ENV]: 'real-app' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 20));
    expect(containerProcesses('real-app', procView())).toEqual([child.pid]);
    expect(signalContainer({ container: 'real-app', signal: 'SIGHUP' })).toBe(`refresh: sent SIGHUP to container real-app (pid ${child.pid})`);
    await once(child, 'exit');
    expect(out).toContain('hup');
  });
});
