// The writers killed (SIGKILL) at every point of a run that writes a new version of a multi-file
// secret: the built refresh sidecar (`refresh`) and the built fetcher run again on its volume
// (`fetch`, as after a pod's sandbox is recreated), against the emulator, each with a preloaded
// module that counts the process's file-system changes (rename, link, unlink, mkdir, write,
// fsync, …) and kills it right before the K-th one, for every K such a run makes. After each kill,
// before anything starts again, an app reading every file of the secret (a key file, an exploded
// directory, a file in a sub-directory) and the marker sees one version: never a file of the new
// version beside one of the old, and never a marker naming another version than its files.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it } from 'vitest';
import { serialiseSpec, type FetchSpec } from '../../fetcher/spec.js';
import { VERSION_NAME } from '../../fetcher/volume.js';
import { startCommand } from '../helpers/bundles.js';
import { integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };

/** Counts the process's file-system changes; SIGKILLs it before change number KILL_AT_OP; writes the count on a clean exit. */
const PRELOAD = `
const fs = require('node:fs');
const { O_WRONLY, O_RDWR, O_CREAT } = fs.constants;
const killAt = Number(process.env.KILL_AT_OP || 0);
let n = 0;
let busy = false;
const changes = (name, args) => name !== 'openSync' || (typeof args[1] === 'number' && (args[1] & (O_WRONLY | O_RDWR | O_CREAT)) !== 0);
for (const name of ['renameSync', 'linkSync', 'symlinkSync', 'unlinkSync', 'rmdirSync', 'rmSync', 'mkdirSync', 'writeFileSync', 'writeSync', 'fsyncSync', 'fchmodSync', 'openSync']) {
  const original = fs[name];
  fs[name] = function (...args) {
    if (busy || !changes(name, args)) return original.apply(this, args);
    busy = true;
    try {
      if (++n === killAt) process.kill(process.pid, 'SIGKILL');
      return original.apply(this, args);
    } finally {
      busy = false;
    }
  };
}
process.on('exit', () => { if (process.env.OP_COUNT_FILE) { busy = true; fs.writeFileSync(process.env.OP_COUNT_FILE, String(n)); } });
`;

describe.skipIf(skip !== false)(`writers killed midway${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  afterAll(() => scratch.remove());

  /** A volume the fetcher wrote for one secret in three entries (a key file, an exploded directory, a file in a sub-directory). */
  async function volume() {
    const db = unique('torn-db');
    const value = (n: number) => JSON.stringify({ username: `user-${n}`, password: `pw-${n}`, host: `host-${n}` });
    const versions = new Map<string, number>();
    const created = await secrets.send(new CreateSecretCommand({ Name: db, SecretString: value(1) }));
    versions.set(created.VersionId!, 1);
    const items: FetchSpec['items'] = [
      { ref: db, file: 'password', key: 'password' },
      { ref: db, explode: true, file: 'conf' },
      { ref: db, file: 'deep/er/username', key: 'username' },
    ];
    const first = await runFetcher(c, scratch, { items }, keys);
    expect(first.code).toBe(0);
    const dir = first.dir;
    const read = (p: string) => readFileSync(join(dir, p), 'utf8');
    return {
      items,
      dir,
      read,
      /** What an app reading every file and then the marker sees: the version of each. */
      seen: () => {
        const files = ['password', 'conf/password', 'conf/username', 'conf/host', 'deep/er/username'].map((p) => Number(/-(\d+)$/.exec(read(p))?.[1]));
        const marker = JSON.parse(read('.secrets-ready')) as { secrets: Array<{ versionId: string }> };
        return { files, marker: marker.secrets.map((e) => versions.get(e.versionId)) };
      },
      rotate: async (n: number) => {
        const put = await secrets.send(new PutSecretValueCommand({ SecretId: db, SecretString: value(n) }));
        versions.set(put.VersionId!, n);
      },
    };
  }

  const preload = () => {
    const file = join(scratch.root, 'kill-preload.cjs');
    writeFileSync(file, PRELOAD);
    return file;
  };
  const countFile = () => join(scratch.root, 'op-count');
  /** The environment that preloads `file`: into the executable (Bun) and into a bundle on Node.js. */
  const preloading = (file: string) => ({ BUN_OPTIONS: `--preload=${file}`, NODE_OPTIONS: `--require ${file}` });

  /**
   * Counts the changes of one run that writes a new version, then for every K: a new version in
   * AWS, a run killed before its K-th change, what the app sees (one version, the old or the new),
   * then a complete run, so that each kill starts from the same state and the K-th change is the
   * same step every time.
   */
  async function killAtEveryChange(v: Awaited<ReturnType<typeof volume>>, run: (killAt: number) => Promise<NodeJS.Signals | null>): Promise<void> {
    const all = (n: number) => ({ files: [n, n, n, n, n], marker: [n, n, n] });
    await v.rotate(2);
    expect(await run(0)).toBe(null);
    expect(v.seen()).toEqual(all(2));
    const changes = Number(readFileSync(countFile(), 'utf8'));
    expect(changes).toBeGreaterThan(5);
    let killed = 0;
    const outcomes = new Set<string>();
    for (let k = 1, n = 3; k <= changes; k++, n += 2) {
      await v.rotate(n);
      if ((await run(k)) === 'SIGKILL') killed++;
      const s = v.seen();
      if (process.env.DEBUG_KILL) console.log(k, JSON.stringify(s), readdirSync(v.dir).join(' '));
      const at = s.files[0]!;
      // One version for every file and for the marker: the old one or the new one.
      expect({ k, ...s }).toEqual({ k, ...all(at) });
      expect([n - 1, n]).toContain(at);
      outcomes.add(at === n ? 'new' : 'old');
      await v.rotate(n + 1);
      expect(await run(0)).toBe(null);
      expect(v.seen()).toEqual(all(n + 1));
    }
    expect(killed).toBeGreaterThan(changes / 2);
    // Kills before the new version was published and after it.
    expect([...outcomes].sort()).toEqual(['new', 'old']);
    // Nothing left over: one version, ..data, the links.
    const [version, ...more] = readdirSync(v.dir).filter((n) => VERSION_NAME.test(n));
    expect(more).toEqual([]);
    expect(readdirSync(v.dir).sort()).toEqual([version, '..data', '.secrets-ready', 'conf', 'deep', 'password'].sort());
  }

  it("a kill at any point of a refresh leaves a secret's files (and the marker) at one version, before the sidecar starts again", async () => {
    const v = await volume();
    const spec: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, items: v.items, refresh: { intervalSeconds: 10 } };
    const require = preload();
    // One sidecar, due at once (the marker's fetchedAt an interval old), killed before its K-th change (0: never).
    await killAtEveryChange(v, async (killAt) => {
      const marker = JSON.parse(v.read('.secrets-ready'));
      writeFileSync(join(v.dir, '.secrets-ready'), JSON.stringify({ ...marker, fetchedAt: new Date(Date.now() - 60_000).toISOString() }));
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: scratch.root,
        AWS_ENDPOINT_URL: c.awsEndpoint,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: join(scratch.root, 'no-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(scratch.root, 'no-credentials'),
        SECRET_INJECTOR_SPEC: serialiseSpec(spec),
        SECRET_INJECTOR_TERMINATION_LOG: join(scratch.root, 'refresh-termination'),
        ...preloading(require),
        KILL_AT_OP: String(killAt),
        OP_COUNT_FILE: countFile(),
        ...keys,
      };
      const [command, ...entry] = startCommand(scratch.bundlePath(c));
      const child = spawn(command!, [...entry, 'refresh', '--dir', v.dir], { cwd: scratch.root, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
      // Not killed by then (the pass made fewer changes): stopped once the refresh is written.
      const stopper = setInterval(() => {
        if (!/refresh: rewrote/.test(stderr)) return;
        clearInterval(stopper); // once: a second SIGTERM while it exits would end it by the signal
        child.kill('SIGTERM');
      }, 50);
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const signal = await exit;
      clearInterval(stopper);
      clearTimeout(killer);
      return signal;
    });
  }, 300_000);

  it('a fetcher run again on the volume (a pod started again) and killed at any point leaves the earlier set or the new one, whole, marker included', async () => {
    const v = await volume();
    const require = preload();
    await killAtEveryChange(v, async (killAt) => {
      const r = await runFetcher(c, scratch, { items: v.items }, { ...keys, ...preloading(require), KILL_AT_OP: String(killAt), OP_COUNT_FILE: countFile() }, { dir: v.dir });
      if (killAt === 0) expect(r.code).toBe(0);
      return r.code === null ? 'SIGKILL' : null;
    });
  }, 300_000);
});
