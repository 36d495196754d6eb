// The fetcher under the chart's memory limit, as the kernel enforces it: a cgroup v1 memory group
// and a memory-backed volume (tmpfs) whose pages are charged to the fetcher. What would not fit
// (an answer larger than AWS ever gives, files whose pages would pass the limit) ends with exit 1
// and FETCH_BUDGET with its numbers in the termination message, never with the kernel's OOM kill
// and an empty one; nothing is left on the volume.

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createServer } from 'node:http';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PATH_SECRETS } from '../../fetcher/spec.js';
import { REPO_ROOT } from '../helpers/tools.js';
import { memoryGroup, memoryGroupUnavailable, tmpfsVolume } from '../helpers/memory-cgroup.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
const unavailable = memoryGroupUnavailable();
if (unavailable !== undefined && process.env.CI === 'true') throw new Error(`fetcher memory suite: ${unavailable}`);
/** The chart's default fetcher memory limit (values.yaml fetcher.resources.limits.memory), in bytes. */
const LIMIT = (() => {
  const values = parse(readFileSync(join(REPO_ROOT, 'charts/aws-secret-injector/values.yaml'), 'utf8')) as { fetcher: { resources: { limits: { memory: string } } } };
  const mi = /^(\d+)Mi$/.exec(values.fetcher.resources.limits.memory);
  if (!mi) throw new Error(`the chart's fetcher memory limit is not in Mi: ${values.fetcher.resources.limits.memory}`);
  return Number(mi[1]) * 1024 * 1024;
})();
/** The most secrets one pod fetches (a whole path's bound, MAX_PATH_SECRETS). */
const ITEM_BOUND = MAX_PATH_SECRETS;
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };

/** A 64 KiB JSON object (Secrets Manager's maximum) with as many keys as fit: one file each when exploded. */
function widest(): string {
  const entries: string[] = [];
  let size = 2;
  for (let i = 0; ; i++) {
    const e = `"k${i}":"x"`;
    if (size + e.length + 1 > 64 * 1024) break;
    entries.push(e);
    size += e.length + 1;
  }
  return `{${entries.join(',')}}`;
}

describe.skipIf(skip !== false || unavailable !== undefined)(`fetcher memory under a limit${skip ? ` — skipped: ${skip}` : unavailable ? ` — skipped: ${unavailable}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  afterAll(() => scratch.remove());
  beforeAll(() => scratch.bundlePath(c));

  async function underLimit(run: (wrap: string[], dir: string) => ReturnType<typeof runFetcher>) {
    const group = memoryGroup('fetcher-memory', LIMIT);
    const volume = tmpfsVolume();
    try {
      const r = await run(group.wrap, volume.dir);
      return { ...r, files: readdirSync(volume.dir), oom: group.oomKilled(), peak: group.peak() };
    } finally {
      volume.remove();
      group.remove();
    }
  }

  it('two exploded secrets of 64 KiB with a key per 10 bytes (11,000 files): FETCH_BUDGET with the numbers, not an OOM kill; nothing written', async () => {
    const a = unique('wide-a');
    const b = unique('wide-b');
    const value = widest();
    await secrets.send(new CreateSecretCommand({ Name: a, SecretString: value }));
    await secrets.send(new CreateSecretCommand({ Name: b, SecretString: value }));
    const r = await underLimit((wrap, dir) =>
      runFetcher(c, scratch, { region: REGION, items: [{ ref: a, explode: true, file: 'a' }, { ref: b, explode: true, file: 'b' }] }, keys, { wrap, dir }),
    );
    expect(r.oom).toBe(false);
    expect(r.code).toBe(1);
    expect(r.termination).toMatch(/^fetch failed:\n\nFETCH_BUDGET: writing \d+ file\(s\) of \d+ bytes would take [\d.]+ MiB of the fetcher's memory/);
    expect(r.termination).toContain(`that is over its limit of ${(LIMIT / 1048576).toFixed(1)} MiB; nothing was written`);
    expect(r.files).toEqual([]);
  });

  it('the worst case of AWS\'s maxima (the item bound of secrets of 64 KiB, each written whole) fits under the chart\'s default limit', async () => {
    const items: Array<{ ref: string; file: string }> = [];
    for (let i = 0; i < ITEM_BOUND; i++) {
      const name = unique(`max-${i}`);
      // Random printable text: nothing for the answer's JSON to share or compress.
      const value = randomBytes(48 * 1024).toString('base64').slice(0, 64 * 1024);
      await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
      items.push({ ref: name, file: `s${i}` });
    }
    const r = await underLimit((wrap, dir) => runFetcher(c, scratch, { region: REGION, items }, keys, { wrap, dir }));
    console.log(`worst case: ${ITEM_BOUND} secrets of 64 KiB, peak ${(r.peak / 1048576).toFixed(1)} MiB under a ${LIMIT / 1048576} MiB limit`);
    expect(r.oom).toBe(false);
    expect(r.termination).toBe('');
    expect(r.code).toBe(0);
    // The secrets and the marker, as links into the one version directory, beside it and ..data.
    expect(r.files.filter((n) => !n.startsWith('..'))).toHaveLength(ITEM_BOUND + 1);
  }, 120_000);

  for (const declared of [true, false]) {
    it(`an answer of 40 MB from an endpoint that is not AWS (${declared ? 'with' : 'without'} a Content-Length): FETCH_BUDGET, not an OOM kill`, async () => {
      const ref = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:huge-AbCdEf`;
      const big = Buffer.alloc(40 * 1000 * 1000, 'a');
      const server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          const head = Buffer.from(`{"ARN":"${ref}","Name":"huge","VersionId":"v1","SecretString":"`);
          const tail = Buffer.from('"}');
          res.writeHead(200, {
            'content-type': 'application/x-amz-json-1.1',
            ...(declared && { 'content-length': String(head.length + big.length + tail.length) }),
          });
          res.write(head);
          res.write(big);
          res.end(tail);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      try {
        const r = await underLimit((wrap, dir) => runFetcher(c, scratch, { items: [{ ref, file: 'huge' }] }, keys, { wrap, dir, endpoint }));
        expect(r.oom).toBe(false);
        expect(r.code).toBe(1);
        expect(r.termination).toContain(`FETCH_BUDGET: reference ${ref}: an answer `);
        expect(r.termination).toMatch(/than any AWS gives/);
            expect(r.files).toEqual([]);
      } finally {
        server.close();
      }
    });
  }
});
