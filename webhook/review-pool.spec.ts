import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AbandonedError, ReviewPool } from './review-pool.js';
import type { MutationConfig } from './types.js';

// A stand-in worker: holds its thread for `raw` milliseconds, then answers with how many tasks it
// has taken so far (as the error variant's name, the one free-text field of an answer).
const dir = mkdtempSync(join(tmpdir(), 'review-pool-'));
const file = join(dir, 'worker.mjs');
writeFileSync(
  file,
  `import { parentPort } from 'node:worker_threads';
let taken = 0;
parentPort.on('message', (t) => {
  taken++;
  const end = Date.now() + Number(t.raw);
  while (Date.now() < end);
  parentPort.postMessage({ id: t.id, kind: 'error', errorName: String(taken) });
});
`,
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = {} as MutationConfig;

describe('ReviewPool', () => {
  it('drops a queued review whose client went away, before a worker takes it', async () => {
    const pool = new ReviewPool({ url: pathToFileURL(file).href, mark: 'test' }, { size: 1 });
    try {
      const first = pool.run('300', config);
      const gone = new AbortController();
      const second = pool.run('0', config, undefined, gone.signal);
      const third = pool.run('0', config);
      setTimeout(() => gone.abort(), 50);
      await expect(second).rejects.toBeInstanceOf(AbandonedError);
      expect(await first).toMatchObject({ kind: 'error', errorName: '1' });
      // The worker's second task is the third review: the abandoned one never reached it.
      expect(await third).toMatchObject({ kind: 'error', errorName: '2' });
      await expect(pool.run('0', config, undefined, AbortSignal.abort())).rejects.toBeInstanceOf(AbandonedError);
    } finally {
      await pool.close();
    }
  });
});
