import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AwsApi } from './fetch.js';
import { DEFAULT_TIMEOUTS, execute } from './main.js';
import { backoff, BACKOFF_BASE_MS, jittered, JITTER, Refresher, staleAfterMs, STALE_MIN_MS, type RefreshDeps } from './refresh.js';
import type { CredentialChoice } from './identity.js';
import { DATA_LINK, MARKER_FILE, type FetchSpec } from './spec.js';
import { VERSION_NAME } from './volume.js';

const IRSA: CredentialChoice = { source: { kind: 'web-identity', tokenFile: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token', roleArn: 'arn:aws:iam::123456789012:role/app' } };

/** A fake Secrets Manager: values and version ids the test changes, calls counted, failures on demand. */
function fakeAws() {
  const store = new Map<string, { value: string; version: number }>();
  const state = { calls: 0, batchCalls: 0, fail: undefined as undefined | string };
  const get = (id: string) => {
    const s = store.get(id);
    if (s === undefined) throw Object.assign(new Error("can't find"), { name: 'ResourceNotFoundException', $fault: 'client' });
    return { Name: id, ARN: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${id}-AbCdEf`, VersionId: `v${s.version}`, SecretString: s.value };
  };
  const denied = () => Object.assign(new Error('User is not authorized to perform: secretsmanager:GetSecretValue'), { name: state.fail, $fault: 'client', $metadata: { httpStatusCode: 400 } });
  const api: AwsApi = {
    async getSecretValue(_r, input) {
      state.calls++;
      if (state.fail) throw denied();
      if (input.VersionId !== undefined) return { ...get(input.SecretId as string), VersionId: input.VersionId };
      return get(input.SecretId as string);
    },
    async batchGetSecretValue(_r, input) {
      state.calls++;
      state.batchCalls++;
      if (state.fail) throw denied();
      // A whole path: the name filter's prefix, every secret on one page.
      if (input.Filters !== undefined) return { SecretValues: [...store.keys()].filter((id) => id.startsWith(input.Filters![0]!.Values![0]!)).map(get) };
      return { SecretValues: (input.SecretIdList as string[]).map(get), Errors: [] };
    },
    async getParameters() {
      return { Parameters: [], InvalidParameters: [] };
    },
    async getParametersByPath() {
      return { Parameters: [] };
    },
    async callerIdentity() {
      return 'arn:aws:sts::123456789012:assumed-role/app/ns.pod';
    },
  };
  const put = (id: string, value: string) => store.set(id, { value, version: (store.get(id)?.version ?? 0) + 1 });
  const remove = (id: string) => store.delete(id);
  return { api, state, put, remove };
}

let dir: string;
let outside: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'refresh-vol-'));
  outside = mkdtempSync(join(tmpdir(), 'refresh-outside-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const spec = (items: FetchSpec['items'], intervalSeconds = 60): FetchSpec => ({
  version: 1,
  dir,
  mode: 0o444,
  region: 'eu-west-1',
  items,
  refresh: { intervalSeconds },
});

function clock(start = Date.parse('2026-01-01T00:00:00Z')) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function deps(api: AwsApi, c = clock(), extra: Partial<RefreshDeps> = {}) {
  const lines: string[] = [];
  const d: RefreshDeps = { api, now: c.now, random: () => 0.5, sleep: async () => {}, log: (l) => lines.push(l), ...extra };
  return { d, lines };
}

const read = (p: string) => readFileSync(join(dir, p), 'utf8');
const marker = () => JSON.parse(read(MARKER_FILE));
const never = new AbortController().signal;

describe('interval, jitter and backoff', () => {
  it('each wait is the interval shortened by at most the jitter, never longer', () => {
    expect(jittered(60_000, 0)).toBe(60_000);
    expect(jittered(60_000, 1)).toBe(60_000 * (1 - JITTER));
    for (let i = 0; i < 1000; i++) {
      const w = jittered(60_000, Math.random());
      expect(w).toBeGreaterThanOrEqual(48_000);
      expect(w).toBeLessThanOrEqual(60_000);
    }
    // Two replicas with different draws wait differently.
    expect(jittered(60_000, 0.1)).not.toBe(jittered(60_000, 0.9));
  });

  it('backoff doubles from 5 s per failure in a row and never exceeds the interval', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoff(n, 300_000, 0))).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000]);
    expect(backoff(1, 10_000, 0)).toBe(BACKOFF_BASE_MS);
    expect(backoff(2, 10_000, 0)).toBe(10_000);
    for (const n of [1, 10, 100, 10_000]) {
      expect(backoff(n, 3_600_000, 1)).toBeLessThanOrEqual(3_600_000);
      expect(backoff(n, 3_600_000, 1)).toBeGreaterThanOrEqual(BACKOFF_BASE_MS * (1 - JITTER));
    }
  });

  it('the staleness bound is three intervals, at least five minutes', () => {
    expect(staleAfterMs(10_000)).toBe(STALE_MIN_MS);
    expect(staleAfterMs(3_600_000)).toBe(3 * 3_600_000);
  });
});

describe('Refresher.cycle', () => {
  async function start(items: FetchSpec['items']) {
    const aws = fakeAws();
    aws.put('db', JSON.stringify({ username: 'admin', password: 'pw-1' }));
    aws.put('token', 'token-1');
    const s = spec(items);
    const first = await execute(s, { credentials: IRSA, api: () => aws.api });
    expect(first.ok).toBe(true);
    return { aws, s };
  }

  it('rewrites only the files whose content changed; untouched files keep their inode; the marker last, with versions and time', async () => {
    const { aws, s } = await start([
      { ref: 'db', file: 'db/password', key: 'password' },
      { ref: 'db', file: 'db/username', key: 'username' },
      { ref: 'token', file: 'token' },
    ]);
    const inode = (p: string) => statSync(join(dir, p)).ino;
    const before = { password: inode('db/password'), username: inode('db/username'), token: inode('token') };
    const c = clock(Date.now() + 60_000);
    const r = new Refresher(s, deps(aws.api, c).d);
    await r.resume();

    const same = await r.cycle(never);
    expect(same).toMatchObject({ ok: true, changed: [] });
    expect(inode('db/password')).toBe(before.password);

    aws.put('db', JSON.stringify({ username: 'admin', password: 'pw-2' }));
    c.advance(60_000);
    const rotated = await r.cycle(never);
    expect(rotated).toMatchObject({ ok: true, changed: ['db/password'] });
    expect(read('db/password')).toBe('pw-2');
    expect(inode('db/password')).not.toBe(before.password);
    expect(inode('db/username')).toBe(before.username);
    expect(inode('token')).toBe(before.token);
    expect(statSync(join(dir, 'db/password')).mode & 0o777).toBe(0o444);
    expect(marker()).toEqual({
      version: 1,
      fetchedAt: new Date(c.now()).toISOString(),
      changedAt: new Date(c.now()).toISOString(),
      secrets: [
        { ref: 'db', arn: expect.any(String), versionId: 'v2', files: ['db/password'] },
        { ref: 'db', arn: expect.any(String), versionId: 'v2', files: ['db/username'] },
        { ref: 'token', arn: expect.any(String), versionId: 'v1', files: ['token'] },
      ],
    });
    expect(readFileSync(join(dir, MARKER_FILE), 'utf8')).not.toContain('pw-');
  });

  it('leaves no deadline timer pending once its calls are done (it would hold the refresh for the whole deadline)', async () => {
    const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
    const r = new Refresher(s, deps(aws.api, clock(Date.now())).d);
    await r.resume();
    const set = vi.spyOn(globalThis, 'setTimeout');
    const cleared = vi.spyOn(globalThis, 'clearTimeout');
    try {
      expect((await r.cycle(never)).ok).toBe(true);
      const deadlines = set.mock.results.filter((_, i) => set.mock.calls[i]![1] === DEFAULT_TIMEOUTS.deadlineSeconds * 1000).map((x) => x.value);
      expect(deadlines).toHaveLength(1);
      expect(cleared.mock.calls.map((c) => c[0])).toContain(deadlines[0]);
    } finally {
      set.mockRestore();
      cleared.mockRestore();
    }
  });

  it('changedAt moves only with a refresh that changed a file; fetchedAt with every complete one', async () => {
    const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
    const first = marker();
    expect(first.changedAt).toBe(first.fetchedAt);
    const c = clock(Date.parse(first.fetchedAt) + 60_000);
    const r = new Refresher(s, deps(aws.api, c).d);
    await r.resume();
    await r.cycle(never);
    expect(marker()).toMatchObject({ fetchedAt: new Date(c.now()).toISOString(), changedAt: first.changedAt });
    aws.put('token', 'token-2');
    c.advance(60_000);
    await r.cycle(never);
    expect(marker()).toMatchObject({ fetchedAt: new Date(c.now()).toISOString(), changedAt: new Date(c.now()).toISOString() });
  });

  it('refresh signal: sent after a refresh that changed a file, after the marker, and only then', async () => {
    const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
    const signalled: Array<{ signal: string; marker: unknown; token: string }> = [];
    const withSignal: FetchSpec = { ...s, refresh: { intervalSeconds: 60, signal: { container: 'app', signal: 'SIGHUP' } } };
    const r = new Refresher(withSignal, deps(aws.api, clock(), { signal: (t) => (signalled.push({ signal: t.signal, marker: marker().secrets[0].versionId, token: read('token') }), 'sent') }).d);
    await r.resume();
    expect(await r.cycle(never)).not.toHaveProperty('signalled');
    aws.put('token', 'token-2');
    expect(await r.cycle(never)).toMatchObject({ ok: true, changed: ['token'], signalled: 'sent' });
    expect(await r.cycle(never)).not.toHaveProperty('signalled');
    aws.put('token', 'token-3');
    await r.cycle(never);
    expect(signalled).toEqual([
      { signal: 'SIGHUP', marker: 'v2', token: 'token-2' },
      { signal: 'SIGHUP', marker: 'v3', token: 'token-3' },
    ]);
    // A failed refresh that changed nothing sends nothing.
    aws.state.fail = 'AccessDeniedException';
    expect(await r.cycle(never)).toMatchObject({ ok: false, changed: [] });
    expect(signalled).toHaveLength(2);
  });

  it('a whole path: a secret created under it appears as a file, one deleted disappears, and the marker follows', async () => {
    const aws = fakeAws();
    aws.put('app/a', 'a-1');
    aws.put('app/b', 'b-1');
    aws.put('application', 'not under the path');
    const s = spec([{ ref: 'app/*', file: 'app' }]);
    expect((await execute(s, { credentials: IRSA, api: () => aws.api })).ok).toBe(true);
    expect([read('app/a'), read('app/b')]).toEqual(['a-1', 'b-1']);
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    aws.put('app/c', 'c-1');
    aws.remove('app/a');
    aws.put('app/b', 'b-2');
    const c = await r.cycle(never);
    expect(c).toMatchObject({ ok: true });
    expect([...c.changed].sort()).toEqual(['app/a', 'app/b', 'app/c']);
    expect(existsSync(join(dir, 'app/a'))).toBe(false);
    expect([read('app/b'), read('app/c')]).toEqual(['b-2', 'c-1']);
    expect(marker().secrets[0]).toMatchObject({ ref: 'app/*', files: ['app/b', 'app/c'], members: [{ name: 'b', versionId: 'v2' }, { name: 'c', versionId: 'v1' }] });
  });

  it('makes no more AWS calls per refresh than the first fetch (one batch), and never polls versionId-pinned entries', async () => {
    const { aws, s } = await start([
      { ref: 'db', file: 'db/password', key: 'password' },
      { ref: 'token', file: 'token' },
      { ref: 'token', file: 'pinned', versionId: 'v1' },
    ]);
    const firstCalls = aws.state.calls;
    expect(firstCalls).toBe(2); // one batch of the two polled secrets, one GetSecretValue for the pinned version
    aws.state.calls = 0;
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    aws.put('token', 'token-2');
    await r.cycle(never);
    expect(aws.state.calls).toBe(1);
    expect(aws.state.batchCalls).toBe(2);
    expect(read('token')).toBe('token-2');
    expect(read('pinned')).toBe('token-1');
    // The pinned entry stays in the marker as the fetcher wrote it.
    expect(marker().secrets[2]).toMatchObject({ ref: 'token', versionId: 'v1', files: ['pinned'] });
  });

  it('a failed refresh keeps every file as it was (content, inode) and the marker time, and says so', async () => {
    const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
    const c = clock(Date.now());
    const r = new Refresher(s, deps(aws.api, c).d);
    await r.resume();
    const inode = statSync(join(dir, 'token')).ino;
    const markerBefore = read(MARKER_FILE);
    aws.state.fail = 'AccessDeniedException';
    aws.put('token', 'token-2');
    const failed = await r.cycle(never);
    expect(failed.ok).toBe(false);
    expect(failed.summary).toMatch(/FETCH_AWS: reference token: .*AccessDeniedException/);
    expect(failed.summary).not.toContain('token-2');
    expect(read('token')).toBe('token-1');
    expect(statSync(join(dir, 'token')).ino).toBe(inode);
    expect(read(MARKER_FILE)).toBe(markerBefore);
  });

  it('a key that disappears from the JSON keeps its file and fails the refresh; the other files still rotate', async () => {
    const { aws, s } = await start([
      { ref: 'db', file: 'db/password', key: 'password' },
      { ref: 'token', file: 'token' },
    ]);
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    aws.put('db', JSON.stringify({ username: 'admin' }));
    aws.put('token', 'token-2');
    const c = await r.cycle(never);
    expect(c.ok).toBe(false);
    expect(c.summary).toMatch(/FETCH_KEY_MISSING/);
    expect(read('db/password')).toBe('pw-1');
    expect(read('token')).toBe('token-2');
    expect(marker().secrets).toEqual([expect.objectContaining({ ref: 'db', versionId: 'v1' }), expect.objectContaining({ ref: 'token', versionId: 'v2' })]);
  });

  it('explode: a new key gets its file; a key gone from the JSON loses its file (a revoked credential is not left readable) and leaves the marker', async () => {
    const { aws, s } = await start([{ ref: 'db', explode: true, file: 'conf', prefix: 'DB_' }]);
    writeFileSync(join(dir, 'conf/app-file'), 'app');
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    aws.put('db', JSON.stringify({ password: 'pw-2', host: 'h' }));
    const c = await r.cycle(never);
    expect(c).toMatchObject({ ok: true, changed: ['conf/DB_password', 'conf/DB_host', 'conf/DB_username'] });
    expect(existsSync(join(dir, 'conf/DB_username'))).toBe(false);
    expect(read('conf/app-file')).toBe('app');
    expect(marker().secrets[0].files).toEqual(['conf/DB_password', 'conf/DB_host']);
  });

  it('explode: a key gone while the sidecar was restarted still loses its file (the marker says what was written)', async () => {
    const { aws, s } = await start([{ ref: 'db', explode: true }]);
    aws.put('db', JSON.stringify({ password: 'pw-2' }));
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    expect(await r.cycle(never)).toMatchObject({ ok: true });
    expect(existsSync(join(dir, 'username'))).toBe(false);
    expect(read('password')).toBe('pw-2');
  });

  it('a key removed in a pass whose version could not be published is still removed by the next pass', async () => {
    const { aws, s } = await start([{ ref: 'db', explode: true, file: 'conf' }]);
    aws.put('db', JSON.stringify({ password: 'pw-2' }));
    const current = readlinkSync(join(dir, DATA_LINK));
    let swaps = 1;
    const hooks = {
      afterOpen: (rel: string) => {
        // Another container moves the new version away while it is written, once.
        if (!VERSION_NAME.test(rel) || rel === current || swaps-- <= 0) return;
        renameSync(join(dir, rel), join(dir, 'moved'));
      },
    };
    const r = new Refresher(s, deps(aws.api, clock(), { hooks }).d);
    await r.resume();
    expect(await r.cycle(never)).toMatchObject({ ok: false, changed: [] });
    expect([read('conf/username'), read('conf/password')]).toEqual(['admin', 'pw-1']);
    expect(marker().secrets[0]).toMatchObject({ versionId: 'v1', files: ['conf/username', 'conf/password'] });
    expect(await r.cycle(never)).toMatchObject({ ok: true, changed: ['conf/password', 'conf/username'] });
    expect(existsSync(join(dir, 'conf/username'))).toBe(false);
    expect(marker().secrets[0]).toMatchObject({ versionId: 'v2', files: ['conf/password'] });
  });

  it.skipIf(process.getuid?.() !== 0)('a directory another uid swapped in between refreshes is refused: no 0440 file lands in it', async () => {
    const { aws, s } = await start([{ ref: 'db', file: 'db/password', key: 'password', mode: 0o440 }]);
    renameSync(join(dir, 'db'), join(dir, 'db.old'));
    mkdirSync(join(dir, 'db'));
    chownSync(join(dir, 'db'), 4242, 4242);
    chmodSync(join(dir, 'db'), 0o2777);
    aws.put('db', JSON.stringify({ username: 'admin', password: 'pw-2' }));
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    const c = await r.cycle(never);
    expect(c.ok).toBe(false);
    expect(c.summary).toMatch(/FETCH_WRITE: writing db\/password failed: db is a directory/);
    expect(existsSync(join(dir, 'db/password'))).toBe(false);
  });

  it('a secret\'s files change together: one of them that cannot be written keeps the others (and the marker) at the old version', async () => {
    const { aws, s } = await start([
      { ref: 'db', file: 'db/password', key: 'password' },
      { ref: 'db', file: 'db/username', key: 'username' },
      { ref: 'token', file: 'token' },
    ]);
    aws.put('db', JSON.stringify({ username: 'admin-2', password: 'pw-2' }));
    aws.put('token', 'token-2');
    // As a full volume would fail it.
    const hooks = {
      beforeWrite: (path: string) => {
        if (path === 'db/username') throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      },
    };
    const r = new Refresher(s, deps(aws.api, clock(), { hooks }).d);
    await r.resume();
    const c = await r.cycle(never);
    expect(c.ok).toBe(false);
    expect(c.summary).toMatch(/FETCH_WRITE: writing db\/username failed: no space left on device.*raise its size limit/);
    expect([read('db/password'), read('db/username')]).toEqual(['pw-1', 'admin']);
    expect(read('token')).toBe('token-2');
    expect(marker().secrets.map((e: { versionId: string }) => e.versionId)).toEqual(['v1', 'v1', 'v2']);
    expect(readdirSync(dir).filter((n) => VERSION_NAME.test(n))).toHaveLength(1);
  });

  it('a refresh publishes a whole new version with one rename of ..data: unchanged files are the same inodes, the old version is removed', async () => {
    const { aws, s } = await start([
      { ref: 'db', explode: true, file: 'conf' },
      { ref: 'token', file: 'token' },
    ]);
    const before = readlinkSync(join(dir, DATA_LINK));
    const inode = statSync(join(dir, 'token')).ino;
    aws.put('db', JSON.stringify({ username: 'admin-2', password: 'pw-2' }));
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    expect(await r.cycle(never)).toMatchObject({ ok: true, changed: ['conf/username', 'conf/password'] });
    const after = readlinkSync(join(dir, DATA_LINK));
    expect(after).not.toBe(before);
    expect(readdirSync(dir).filter((n) => n.startsWith('..')).sort()).toEqual([after, DATA_LINK].sort());
    expect(statSync(join(dir, 'token')).ino).toBe(inode);
    expect(readFileSync(join(dir, after, 'conf/password'), 'utf8')).toBe('pw-2');
    // A refresh that changes nothing keeps the version, and rewrites only the marker in it.
    aws.state.calls = 0;
    expect(await r.cycle(never)).toMatchObject({ ok: true, changed: [] });
    expect(readlinkSync(join(dir, DATA_LINK))).toBe(after);
  });

  it('format env rotates as a whole file', async () => {
    const { aws, s } = await start([{ ref: 'db', file: 'app.env', format: 'env' }]);
    const r = new Refresher(s, deps(aws.api).d);
    await r.resume();
    aws.put('db', JSON.stringify({ username: 'admin', password: 'pw-2' }));
    await r.cycle(never);
    expect(read('app.env')).toBe("username='admin'\npassword='pw-2'\n");
  });

  describe('tampering with the shared volume', () => {
    it('a symbolic link planted where a file is gets replaced by the link to it, never followed', async () => {
      const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
      writeFileSync(join(outside, 'victim'), 'untouched');
      rmSync(join(dir, 'token'));
      symlinkSync(join(outside, 'victim'), join(dir, 'token'));
      const r = new Refresher(s, deps(aws.api).d);
      await r.resume();
      const c = await r.cycle(never);
      expect(c).toMatchObject({ ok: true, changed: ['token'] });
      expect(readlinkSync(join(dir, 'token'))).toBe(`${DATA_LINK}/token`);
      expect(read('token')).toBe('token-1');
      expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('untouched');
    });

    it('a link out of the volume planted in place of a directory\'s link is replaced, never written through', async () => {
      const { aws, s } = await start([
        { ref: 'db', file: 'db/password', key: 'password' },
        { ref: 'token', file: 'token' },
      ]);
      renameSync(join(dir, 'db'), join(dir, 'db.old'));
      symlinkSync(outside, join(dir, 'db'));
      aws.put('db', JSON.stringify({ username: 'admin', password: 'pw-2' }));
      aws.put('token', 'token-2');
      const r = new Refresher(s, deps(aws.api).d);
      await r.resume();
      const c = await r.cycle(never);
      expect(c.ok).toBe(true);
      expect(readdirSync(outside)).toEqual([]);
      expect(readlinkSync(join(dir, 'db'))).toBe(`${DATA_LINK}/db`);
      expect([read('db/password'), read('token')]).toEqual(['pw-2', 'token-2']);
      expect(marker().secrets).toEqual([expect.objectContaining({ ref: 'db', versionId: 'v2' }), expect.objectContaining({ ref: 'token', versionId: 'v2' })]);
    });

    it('a directory of the new version swapped for a link while the refresh writes it: nothing lands outside, the app keeps the whole old version', async () => {
      const { aws, s } = await start([
        { ref: 'db', file: 'db/password', key: 'password' },
        { ref: 'db', file: 'db/username', key: 'username' },
      ]);
      aws.put('db', JSON.stringify({ username: 'admin-2', password: 'pw-2' }));
      const current = readlinkSync(join(dir, DATA_LINK));
      const hooks = {
        afterOpen: (rel: string) => {
          const [version, ...rest] = rel.split('/');
          if (!VERSION_NAME.test(version!) || version === current || rest.join('/') !== 'db') return;
          renameSync(join(dir, rel), join(dir, 'db.moved'));
          symlinkSync(outside, join(dir, rel));
        },
      };
      const r = new Refresher(s, deps(aws.api, clock(), { hooks }).d);
      await r.resume();
      const c = await r.cycle(never);
      expect(c.ok).toBe(false);
      expect(c.summary).toMatch(/was moved away while it was being written/);
      expect(readdirSync(outside)).toEqual([]);
      expect(readdirSync(join(dir, 'db.moved'))).toEqual([]);
      expect([read('db/password'), read('db/username')]).toEqual(['pw-1', 'admin']);
      expect(readlinkSync(join(dir, DATA_LINK))).toBe(current);
      expect(marker().secrets[0].versionId).toBe('v1');
    });

    it('a directory planted where a file is: refused, the directory left alone', async () => {
      const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
      rmSync(join(dir, 'token'));
      mkdirSync(join(dir, 'token'));
      writeFileSync(join(dir, 'token', 'app-file'), 'app');
      const r = new Refresher(s, deps(aws.api).d);
      await r.resume();
      const c = await r.cycle(never);
      expect(c.ok).toBe(false);
      expect(c.summary).toMatch(/FETCH_WRITE: writing token failed: token is a directory/);
      expect(readFileSync(join(dir, 'token', 'app-file'), 'utf8')).toBe('app');
    });

    it('a file the app replaced with its own content is rewritten', async () => {
      const { aws, s } = await start([{ ref: 'token', file: 'token' }]);
      rmSync(join(dir, 'token'));
      writeFileSync(join(dir, 'token'), 'forged', { mode: 0o644 });
      const r = new Refresher(s, deps(aws.api).d);
      await r.resume();
      expect(await r.cycle(never)).toMatchObject({ ok: true, changed: ['token'] });
      expect(read('token')).toBe('token-1');
    });
  });
});

describe('Refresher.run', () => {
  it('waits one jittered interval after the first fetch, retries with backoff, and exits 1 past the staleness bound', async () => {
    const aws = fakeAws();
    aws.put('token', 'token-1');
    const c = clock(Date.now());
    const s = spec([{ ref: 'token', file: 'token' }], 10);
    // The marker the fetcher wrote carries the clock's time.
    expect((await execute(s, { credentials: IRSA, api: () => aws.api })).ok).toBe(true);
    writeFileSync(join(dir, MARKER_FILE), JSON.stringify({ ...marker(), fetchedAt: new Date(c.now()).toISOString() }));
    const waits: number[] = [];
    const reports: string[] = [];
    const stop = new AbortController();
    const { d, lines } = deps(aws.api, c, {
      random: () => 1,
      sleep: async (ms) => {
        waits.push(ms);
        c.advance(ms);
        if (waits.length === 3) aws.state.fail = 'AccessDeniedException';
      },
      report: (t) => reports.push(t),
    });
    const r = new Refresher(s, d);
    await r.resume();
    const code = await r.run(stop.signal);
    expect(code).toBe(1);
    // 8 s = 10 s less 20% jitter; then backoff 5 s, 10 s (capped at the interval, less jitter: 8 s).
    expect(waits.slice(0, 5)).toEqual([8_000, 8_000, 8_000, 4_000, 8_000]);
    expect(waits.length).toBeLessThan(60);
    const failures = lines.filter((l) => l.startsWith('refresh failed'));
    expect(failures.length).toBe(waits.length - 3);
    expect(failures[0]).toMatch(/^refresh failed \(1 in a row; files last fetched completely .*, 8 s ago\); next attempt in 4 s: FETCH_AWS: reference token/);
    expect(reports[0]).toMatch(/^refresh stale: no complete refresh for \d+ s, over the bound of 300 s/);
    expect(read('token')).toBe('token-1');
  });

  it('a step back of the wall clock neither stretches the staleness bound nor moves fetchedAt backwards', async () => {
    const aws = fakeAws();
    aws.put('token', 'token-1');
    const s = spec([{ ref: 'token', file: 'token' }], 10);
    expect((await execute(s, { credentials: IRSA, api: () => aws.api })).ok).toBe(true);
    const wall = clock(Date.now());
    const mono = clock(1_000);
    const waits: number[] = [];
    const { d } = deps(aws.api, wall, {
      monotonic: mono.now,
      random: () => 1,
      sleep: async (ms) => {
        waits.push(ms);
        mono.advance(ms);
        wall.advance(ms);
        if (waits.length === 1) wall.advance(-3_600_000); // the node's clock steps back an hour
        if (waits.length === 2) aws.state.fail = 'AccessDeniedException';
      },
    });
    const r = new Refresher(s, d);
    await r.resume();
    const before = Date.parse(marker().fetchedAt);
    const stop = new AbortController();
    const code = await r.run(stop.signal);
    expect(code).toBe(1);
    // The first refresh (after the step back) succeeded: fetchedAt did not go backwards.
    expect(Date.parse(marker().fetchedAt)).toBeGreaterThanOrEqual(before);
    // Given up past 300 s on the monotonic clock, not 3,900 s.
    const total = waits.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(300_000);
    expect(total).toBeLessThan(400_000);
  });

  it('ExpiredToken or InvalidClientTokenId from AWS makes it resolve credentials again', async () => {
    for (const code of ['ExpiredTokenException', 'InvalidClientTokenId']) {
      const aws = fakeAws();
      aws.put('token', 'token-1');
      const s = spec([{ ref: 'token', file: 'token' }]);
      expect((await execute(s, { credentials: IRSA, api: () => aws.api })).ok).toBe(true);
      let forgotten = 0;
      const api: AwsApi = { ...aws.api, forgetCredentials: () => void forgotten++ };
      const r = new Refresher(s, deps(api).d);
      await r.resume();
      aws.state.fail = 'AccessDeniedException';
      await r.cycle(never);
      expect(forgotten).toBe(0);
      aws.state.fail = code;
      expect((await r.cycle(never)).ok).toBe(false);
      expect(forgotten).toBe(1);
    }
  });

  it('stops with 0 as soon as it is told to, between refreshes', async () => {
    const aws = fakeAws();
    aws.put('token', 'token-1');
    const s = spec([{ ref: 'token', file: 'token' }], 3600);
    expect((await execute(s, { credentials: IRSA, api: () => aws.api })).ok).toBe(true);
    const stop = new AbortController();
    const { sleep } = await import('./refresh.js');
    const r = new Refresher(s, deps(aws.api, clock(Date.now()), { sleep }).d);
    await r.resume();
    const started = Date.now();
    setTimeout(() => stop.abort(), 50);
    expect(await r.run(stop.signal)).toBe(0);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
