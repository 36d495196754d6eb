// Starts the AWS API emulator (moto in server mode, installed by test/setup/moto.sh) on a free
// 127.0.0.1 port, waits until it answers, and stops it. Used by the integration and e2e suites.

import type { ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { spawnGuarded, stopGuarded } from './guard.js';
import { LOG_DIR } from './tools.js';

export interface MotoServer {
  /** http://127.0.0.1:<port> — what AWS_ENDPOINT_URL (or a client's `endpoint`) is set to. */
  endpoint: string;
  port: number;
  /** moto's stdout and stderr go here (one file per run). */
  logFile: string;
  /** Of the guard process moto runs under. */
  pid: number;
  stop(): Promise<void>;
}

/** moto's fixed account id in server mode. */
export const MOTO_ACCOUNT = '123456789012';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/moto-api/data.json`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function stopChild(child: ChildProcess): Promise<void> {
  return stopGuarded(child, 5_000);
}

/**
 * Starts `motoServer` (the path from findTool('moto_server')) and resolves once it answers HTTP.
 * A port taken between choosing and binding it is retried on another port.
 */
export async function startMoto(motoServer: string, opts: { timeoutMs?: number } = {}): Promise<MotoServer> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  mkdirSync(LOG_DIR, { recursive: true });
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const logFile = join(LOG_DIR, `moto-${port}.log`);
    const fd = openSync(logFile, 'w');
    // Guarded: a test process killed before its teardown takes moto with it.
    const child = spawnGuarded(motoServer, ['-H', '127.0.0.1', '-p', String(port)], {
      out: fd,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    closeSync(fd);
    let spawnError: Error | undefined;
    child.on('error', (e) => (spawnError = e));
    const started = Date.now();
    while (Date.now() - started < timeoutMs && !exited(child) && !spawnError) {
      if (await answers(endpoint)) {
        return { endpoint, port, logFile, pid: child.pid ?? 0, stop: () => stopChild(child) };
      }
      await sleep(100);
    }
    await stopChild(child).catch(() => undefined);
    const log = readFileSync(logFile, 'utf8').slice(-2_000);
    if (spawnError) throw new Error(`could not start ${motoServer}: ${spawnError.message}`);
    lastError = `moto on port ${port} did not answer within ${timeoutMs} ms (log ${logFile}):\n${log}`;
    // Only a lost race for the port is worth another try.
    if (!/address already in use/i.test(log)) break;
  }
  throw new Error(lastError);
}

/** Forgets every resource moto holds (all services, all regions). */
export async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
}
