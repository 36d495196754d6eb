import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FetchError } from './errors.js';
import type { OutputFile } from './render.js';
import { appView } from '../test/helpers/volume.js';
import { DATA_LINK, MARKER_FILE } from './spec.js';
import { VERSION_NAME } from './volume.js';
import { writeSecrets, type Marker } from './write.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fetcher-write-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const file = (path: string, text: string, mode = 0o444): OutputFile => ({ path, data: Buffer.from(text), mode, ref: `ref-${path}` });
const marker: Marker = { version: 1, secrets: [{ ref: 'db', arn: 'arn:x', versionId: 'v1', files: ['a'] }] };

/** What the app sees under dir (links followed, the writers' `..` names left out), sorted. */
const tree = () => appView(dir);
/** The volume's top level as it is: the version directories, `..data`, the links, and anything left over. */
const top = () => readdirSync(dir).sort();
const versions = () => top().filter((n) => VERSION_NAME.test(n));

describe('writeSecrets', () => {
  it('writes every file with its mode, creates parent directories, and the marker', async () => {
    await writeSecrets(dir, [file('a', 'A'), file('sub/deeper/b', 'B', 0o400), file('c', 'C', 0o640)], marker);
    expect(tree()).toEqual(['.secrets-ready', 'a', 'c', 'sub/', 'sub/deeper/', 'sub/deeper/b']);
    expect(readFileSync(join(dir, 'sub/deeper/b'), 'utf8')).toBe('B');
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o444);
    expect(statSync(join(dir, 'sub/deeper/b')).mode & 0o777).toBe(0o400);
    expect(statSync(join(dir, 'c')).mode & 0o777).toBe(0o640);
    expect(JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8'))).toEqual(marker);
  });

  it('the layout: one version directory holds the files and the marker; `..data` names it; each top-level name is a link through it', async () => {
    await writeSecrets(dir, [file('a', 'A'), file('sub/deeper/b', 'B')], marker);
    const [version] = versions();
    expect(top()).toEqual([version, DATA_LINK, MARKER_FILE, 'a', 'sub'].sort());
    expect(readlinkSync(join(dir, DATA_LINK))).toBe(version);
    for (const name of [MARKER_FILE, 'a', 'sub']) expect(readlinkSync(join(dir, name))).toBe(`${DATA_LINK}/${name}`);
    expect(lstatSync(join(dir, version!, 'sub')).isDirectory()).toBe(true);
    expect(lstatSync(join(dir, version!, 'sub/deeper/b')).isFile()).toBe(true);
    expect(lstatSync(join(dir, version!, MARKER_FILE)).isFile()).toBe(true);
  });

  it('sets the mode whatever the umask', async () => {
    const old = process.umask(0o777);
    try {
      await writeSecrets(dir, [file('a', 'A', 0o644)], marker);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o644);
  });

  it('creates directories the app can traverse (0755) whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await writeSecrets(dir, [file('sub/deeper/a', 'A')], marker);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 'sub')).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, 'sub/deeper')).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, versions()[0]!)).mode & 0o777).toBe(0o755);
  });

  it('replaces an earlier run\'s files (read-only ones included) and its marker', async () => {
    await writeSecrets(dir, [file('a', 'old')], marker);
    await writeSecrets(dir, [file('a', 'new')], { version: 1, secrets: [] });
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('new');
    expect(JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8')).secrets).toEqual([]);
    expect(tree()).toEqual(['.secrets-ready', 'a']);
    // The earlier version is gone with it.
    expect(versions()).toHaveLength(1);
  });

  it('a run that fails leaves the earlier run\'s version whole and current, its marker included', async () => {
    await writeSecrets(dir, [file('a', 'old'), file('sub/b', 'old')], marker);
    const before = top();
    mkdirSync(join(dir, 'blocked'));
    const err = await writeSecrets(dir, [file('a', 'new'), file('sub/b', 'new'), file('blocked', 'x')], { version: 1, secrets: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect([readFileSync(join(dir, 'a'), 'utf8'), readFileSync(join(dir, 'sub/b'), 'utf8')]).toEqual(['old', 'old']);
    expect(JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8'))).toEqual(marker);
    expect(top()).toEqual([...before, 'blocked'].sort());
  });

  it('replaces a symbolic link planted where a directory goes, never writing through it', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
    try {
      symlinkSync(outside, join(dir, 'link'));
      await writeSecrets(dir, [file('first', '1'), file('link/x', 'X')], marker);
      expect(readdirSync(outside)).toEqual([]);
      expect(readlinkSync(join(dir, 'link'))).toBe(`${DATA_LINK}/link`);
      expect(readFileSync(join(dir, 'link/x'), 'utf8')).toBe('X');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('on a failure midway removes the files and directories it wrote and writes no marker', async () => {
    // A directory where a file should go makes the third write fail.
    mkdirSync(join(dir, 'blocked'));
    writeFileSync(join(dir, MARKER_FILE), 'stale');
    const err = await writeSecrets(dir, [file('a', '1'), file('new/b', '2'), file('blocked', '3')], marker).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).failures[0]!.message).toMatch(/writing blocked failed/);
    expect(tree()).toEqual(['blocked/']);
  });

  it('removes what a killed run left (temp files and links, a version never published, links into it), and nothing else', async () => {
    // As a run killed midway leaves them (SIGKILL, OOMKilled): the kubelet restarts the container on the same emptyDir.
    await writeSecrets(dir, [file('a', 'A')], marker);
    const published = versions()[0]!;
    const killed = '..2026_01_01_00_00_00_000.0123abcd';
    mkdirSync(join(dir, killed, 'sub'), { recursive: true });
    writeFileSync(join(dir, killed, 'sub/b'), 'secret value');
    symlinkSync(`${DATA_LINK}/gone`, join(dir, 'gone'));
    symlinkSync(killed, join(dir, '...data.tmp-1-89abcdef'));
    const stale = ['.a.tmp-1-0123abcd', `.${MARKER_FILE}.tmp-1-deadbeef`, join(published, '.b.tmp-7-89abcdef')];
    for (const p of stale) writeFileSync(join(dir, p), 'secret value');
    // The app's own files, and names that only look like ours.
    const appFiles = ['app.log', '.a.tmp', 'a.tmp-1-0123abcd', '.a.tmp-1-0123abcd.bak', '.b.tmp-x-89abcdef'];
    for (const p of appFiles) writeFileSync(join(dir, p), 'app');
    mkdirSync(join(dir, '.d.tmp-1-0123abcd'));
    mkdirSync(join(dir, '..2026_app'));
    await writeSecrets(dir, [file('a', 'A2'), file('sub/b', 'B')], marker);
    for (const p of [...stale, killed, 'gone', '...data.tmp-1-89abcdef']) expect(existsSync(join(dir, p))).toBe(false);
    for (const p of appFiles) expect(readFileSync(join(dir, p), 'utf8')).toBe('app');
    expect(tree()).toEqual(['.d.tmp-1-0123abcd/', '.secrets-ready', 'a', 'sub/', 'sub/b', ...appFiles].sort());
    expect(top().filter((n) => n.startsWith('..'))).toEqual([...versions(), '..2026_app', DATA_LINK].sort());
    expect(versions()).toHaveLength(1);
  });

  it.skipIf(process.getuid?.() !== 0)('leaves a temp-named file another user owns (the app may run as another uid)', async () => {
    writeFileSync(join(dir, '.a.tmp-1-0123abcd'), 'app');
    chownSync(join(dir, '.a.tmp-1-0123abcd'), 4242, 4242);
    await writeSecrets(dir, [file('a', 'A')], marker);
    expect(readFileSync(join(dir, '.a.tmp-1-0123abcd'), 'utf8')).toBe('app');
  });

  it.skipIf(process.getuid?.() !== 0)('a `..data` link another uid planted is never followed: a new version is written, the planted one left alone', async () => {
    const planted = '..2026_01_01_00_00_00_000.0123abcd';
    mkdirSync(join(dir, planted));
    writeFileSync(join(dir, planted, 'a'), 'planted');
    chownSync(join(dir, planted), 4242, 4242);
    symlinkSync(planted, join(dir, DATA_LINK));
    lchownSync(join(dir, DATA_LINK), 4242, 4242);
    await writeSecrets(dir, [file('a', 'A')], marker);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('A');
    expect(readlinkSync(join(dir, DATA_LINK))).not.toBe(planted);
    expect(readFileSync(join(dir, planted, 'a'), 'utf8')).toBe('planted');
  });

  it('fails clearly when the directory is missing', async () => {
    const err = await writeSecrets(join(dir, 'absent'), [file('a', '1')], marker).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]!.message).toMatch(/does not exist \(is the secrets volume mounted there\?\)/);
  });
});

describe('writeSecrets: one file at a time, atomically', () => {
  it('never leaves a temp file, and replaces the old content whole', async () => {
    await writeSecrets(dir, [file('f', 'one')], marker);
    await writeSecrets(dir, [file('f', 'two')], marker);
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('two');
    expect(tree()).toEqual(['.secrets-ready', 'f']);
    expect(top().filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('writes a file whose name is as long as a name can be', async () => {
    await writeSecrets(dir, [file('n'.repeat(255), 'long')], marker);
    expect(readFileSync(join(dir, 'n'.repeat(255)), 'utf8')).toBe('long');
  });

  it('does not follow a symbolic link planted at the final name', async () => {
    const outside = join(dir, 'outside');
    writeFileSync(outside, 'untouched');
    symlinkSync(outside, join(dir, 'f'));
    await writeSecrets(dir, [file('f', 'secret')], marker);
    expect(readFileSync(outside, 'utf8')).toBe('untouched');
    expect(readlinkSync(join(dir, 'f'))).toBe(`${DATA_LINK}/f`);
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('secret');
  });
});

describe('writeSecrets: another container changing the volume', () => {
  let outside: string;
  beforeEach(() => {
    outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
  });
  afterEach(() => rmSync(outside, { recursive: true, force: true }));

  /** Swaps the directory `rel` of the version being written (the version itself when `sub` is '') as another container would. */
  const swapping = (sub: string, swap: (path: string) => void) => ({
    afterOpen: (rel: string) => {
      const [version, ...rest] = rel.split('/');
      if (VERSION_NAME.test(version!) && rest.join('/') === sub && readlinkSync(join(dir, DATA_LINK), { encoding: 'utf8' }) !== version) swap(join(dir, rel));
    },
  });

  it('a version directory swapped for a link out of the volume while it is written: nothing lands outside, no marker, nothing left', async () => {
    for (const sub of ['', 'db']) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      symlinkSync('none', join(dir, DATA_LINK)); // no version yet, but readable by the hook
      const hooks = swapping(sub, (path) => {
        renameSync(path, join(dir, 'moved'));
        symlinkSync(outside, path);
      });
      const err = await writeSecrets(dir, [file('db/password', 'pw'), file('db/username', 'u')], marker, { hooks }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchError);
      expect((err as FetchError).failures[0]!.message).toMatch(/was moved away while it was being written/);
      expect(readdirSync(outside)).toEqual([]);
      expect(existsSync(join(dir, MARKER_FILE))).toBe(false);
      expect(appView(join(dir, 'moved'))).toEqual([]);
    }
  });

  it('a version directory moved away while it is written never ends in a "success" with the app\'s file missing', async () => {
    symlinkSync('none', join(dir, DATA_LINK));
    const hooks = swapping('db', (path) => renameSync(path, join(dir, 'elsewhere')));
    const err = await writeSecrets(dir, [file('db/password', 'pw')], marker, { hooks }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect(existsSync(join(dir, MARKER_FILE))).toBe(false);
  });

  it('a FIFO where a directory goes is replaced by the link, never opened', async () => {
    execFileSync('mkfifo', [join(dir, 'db')]);
    await writeSecrets(dir, [file('db/password', 'pw')], marker);
    expect(readFileSync(join(dir, 'db/password'), 'utf8')).toBe('pw');
  });

  it('a FIFO where a file should be is replaced, never opened', async () => {
    execFileSync('mkfifo', [join(dir, 'token')]);
    await writeSecrets(dir, [file('token', 'T')], marker);
    expect(readFileSync(join(dir, 'token'), 'utf8')).toBe('T');
  });

  it('stops at the deadline and leaves nothing behind', async () => {
    let calls = 0;
    const err = await writeSecrets(dir, [file('a', '1'), file('b', '2')], marker, { expired: () => ++calls > 1 }).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]).toMatchObject({ code: 'FETCH_DEADLINE' });
    expect(tree()).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a directory another uid owns (or swapped in), and writes nothing into it', async () => {
    mkdirSync(join(dir, 'db'));
    chownSync(join(dir, 'db'), 4242, 4242);
    chmodSync(join(dir, 'db'), 0o2777);
    const err = await writeSecrets(dir, [file('db/password', 'pw', 0o440)], marker).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]!.message).toMatch(/writing db\/password failed: db is a directory/);
    expect(readdirSync(join(dir, 'db'))).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a setgid directory whose group is not the volume\'s', async () => {
    mkdirSync(join(dir, 'db'));
    chownSync(join(dir, 'db'), 0, 4242);
    chmodSync(join(dir, 'db'), 0o2755);
    const err = await writeSecrets(dir, [file('db/password', 'pw', 0o440)], marker).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]!.message).toMatch(/writing db\/password failed: db is a directory/);
  });

  it.skipIf(process.getuid?.() !== 0)('keeps the setgid bit of an fsGroup volume on the directories it creates: files below get the fsGroup', async () => {
    chownSync(dir, 0, 3000);
    chmodSync(dir, 0o2777);
    await writeSecrets(dir, [file('db/deeper/password', 'pw', 0o440), file('top', 't', 0o440)], marker);
    expect(statSync(join(dir, versions()[0]!)).mode & 0o7777).toBe(0o2755);
    expect(statSync(join(dir, 'db')).mode & 0o7777).toBe(0o2755);
    expect(statSync(join(dir, 'db/deeper')).mode & 0o7777).toBe(0o2755);
    expect(statSync(join(dir, 'db/deeper/password')).gid).toBe(3000);
    expect(statSync(join(dir, 'top')).gid).toBe(3000);
  });
});

describe('writeSecrets: a run after an earlier one', () => {
  it('removes the files the earlier run wrote that this one does not (a key gone from an exploded secret)', async () => {
    const first: Marker = { version: 1, secrets: [{ ref: 'db', files: ['conf/user', 'conf/password'] }] };
    await writeSecrets(dir, [file('conf/user', 'u'), file('conf/password', 'p')], first);
    writeFileSync(join(dir, 'conf/app-file'), 'app');
    await writeSecrets(dir, [file('conf/user', 'u2')], { version: 1, secrets: [{ ref: 'db', files: ['conf/user'] }] });
    expect(tree()).toEqual(['.secrets-ready', 'conf/', 'conf/app-file', 'conf/user']);
  });

  it('never removes outside the volume, whatever a forged marker lists', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
    try {
      writeFileSync(join(outside, 'victim'), 'v');
      writeFileSync(join(dir, MARKER_FILE), JSON.stringify({ version: 1, secrets: [{ ref: 'x', files: [`../${outside.split('/').pop()}/victim`, '/etc/hostname'] }] }));
      await writeSecrets(dir, [file('a', 'A')], marker);
      expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('v');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
