import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FetchError } from './errors.js';
import type { OutputFile } from './render.js';
import { MARKER_FILE } from './spec.js';
import { writeSecrets, type Marker } from './write.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fetcher-write-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const file = (path: string, text: string, mode = 0o444): OutputFile => ({ path, data: Buffer.from(text), mode, ref: `ref-${path}` });
const marker: Marker = { version: 1, secrets: [{ ref: 'db', arn: 'arn:x', versionId: 'v1', files: ['a'] }] };

/** Every path under dir, relative, sorted (temp files included, so leftovers show). */
function tree(root = dir, prefix = ''): string[] {
  return readdirSync(root, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? [`${prefix}${e.name}/`, ...tree(join(root, e.name), `${prefix}${e.name}/`)] : [`${prefix}${e.name}`]))
    .sort();
}

describe('writeSecrets', () => {
  it('writes every file with its mode, creates parent directories, and the marker', async () => {
    await writeSecrets(dir, [file('a', 'A'), file('sub/deeper/b', 'B', 0o400), file('c', 'C', 0o640)], marker);
    expect(tree()).toEqual(['.secrets-ready', 'a', 'c', 'sub/', 'sub/deeper/', 'sub/deeper/b']);
    expect(readFileSync(join(dir, 'sub/deeper/b'), 'utf8')).toBe('B');
    expect(lstatSync(join(dir, 'a')).mode & 0o777).toBe(0o444);
    expect(lstatSync(join(dir, 'sub/deeper/b')).mode & 0o777).toBe(0o400);
    expect(lstatSync(join(dir, 'c')).mode & 0o777).toBe(0o640);
    expect(JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8'))).toEqual(marker);
  });

  it('sets the mode whatever the umask', async () => {
    const old = process.umask(0o777);
    try {
      await writeSecrets(dir, [file('a', 'A', 0o644)], marker);
    } finally {
      process.umask(old);
    }
    expect(lstatSync(join(dir, 'a')).mode & 0o777).toBe(0o644);
  });

  it('creates directories the app can traverse (0755) whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await writeSecrets(dir, [file('sub/deeper/a', 'A')], marker);
    } finally {
      process.umask(old);
    }
    expect(lstatSync(join(dir, 'sub')).mode & 0o777).toBe(0o755);
    expect(lstatSync(join(dir, 'sub/deeper')).mode & 0o777).toBe(0o755);
  });

  it('replaces an earlier run\'s files (read-only ones included) and its marker', async () => {
    await writeSecrets(dir, [file('a', 'old')], marker);
    await writeSecrets(dir, [file('a', 'new')], { version: 1, secrets: [] });
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('new');
    expect(JSON.parse(readFileSync(join(dir, MARKER_FILE), 'utf8')).secrets).toEqual([]);
    expect(tree()).toEqual(['.secrets-ready', 'a']);
  });

  it('refuses to write through a symbolic link and leaves nothing behind', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
    try {
      symlinkSync(outside, join(dir, 'link'));
      const err = await writeSecrets(dir, [file('first', '1'), file('link/x', 'X')], marker).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchError);
      expect((err as FetchError).failures[0]).toMatchObject({ code: 'FETCH_WRITE' });
      expect((err as FetchError).failures[0]!.message).toMatch(/symbolic link/);
      expect(readdirSync(outside)).toEqual([]);
      expect(tree()).toEqual(['link']);
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

  it('removes the temp files a killed run left in the directories it writes to, and nothing else', async () => {
    // As a run killed between open and rename leaves them (SIGKILL, OOMKilled): the kubelet
    // restarts the container on the same emptyDir.
    mkdirSync(join(dir, 'sub/deeper'), { recursive: true });
    mkdirSync(join(dir, 'other'));
    const stale = ['.a.tmp-1-0123abcd', `.${MARKER_FILE}.tmp-1-deadbeef`, 'sub/deeper/.b.tmp-7-89abcdef', 'sub/deeper/.gone.tmp-1-00000000'];
    for (const p of stale) writeFileSync(join(dir, p), 'secret value');
    // The app's own files, in the same directories, and a temp-like name where this run writes nothing.
    const appFiles = ['app.log', '.a.tmp', 'a.tmp-1-0123abcd', '.a.tmp-1-0123abcd.bak', 'sub/deeper/.b.tmp-x-89abcdef', 'other/.c.tmp-1-0123abcd'];
    for (const p of appFiles) writeFileSync(join(dir, p), 'app');
    mkdirSync(join(dir, '.d.tmp-1-0123abcd'));
    await writeSecrets(dir, [file('a', 'A'), file('sub/deeper/b', 'B')], marker);
    for (const p of stale) expect(existsSync(join(dir, p))).toBe(false);
    for (const p of appFiles) expect(readFileSync(join(dir, p), 'utf8')).toBe('app');
    expect(tree()).toEqual(
      ['.d.tmp-1-0123abcd/', '.secrets-ready', 'a', 'other/', 'sub/', 'sub/deeper/', 'sub/deeper/b', ...appFiles].sort(),
    );
  });

  it.skipIf(process.getuid?.() !== 0)('leaves a temp-named file another user owns (the app may run as another uid)', async () => {
    writeFileSync(join(dir, '.a.tmp-1-0123abcd'), 'app');
    chownSync(join(dir, '.a.tmp-1-0123abcd'), 4242, 4242);
    await writeSecrets(dir, [file('a', 'A')], marker);
    expect(readFileSync(join(dir, '.a.tmp-1-0123abcd'), 'utf8')).toBe('app');
  });

  it('does not look for temp files through a symbolic link', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
    try {
      writeFileSync(join(outside, '.x.tmp-1-0123abcd'), 'not ours');
      symlinkSync(outside, join(dir, 'link'));
      await writeSecrets(dir, [file('link/x', 'X')], marker).catch(() => undefined);
      expect(readdirSync(outside)).toEqual(['.x.tmp-1-0123abcd']);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
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
    expect(lstatSync(join(dir, 'f')).isSymbolicLink()).toBe(false);
  });
});

describe('writeSecrets: another container changing the volume', () => {
  let outside: string;
  beforeEach(() => {
    outside = mkdtempSync(join(tmpdir(), 'fetcher-outside-'));
  });
  afterEach(() => rmSync(outside, { recursive: true, force: true }));

  it('a directory swapped for a link out of the volume while it is written: nothing lands outside, no marker, nothing left', async () => {
    mkdirSync(join(dir, 'db'));
    const hooks = {
      afterOpen: (rel: string) => {
        if (rel !== 'db') return;
        renameSync(join(dir, 'db'), join(dir, 'db.moved'));
        symlinkSync(outside, join(dir, 'db'));
      },
    };
    const err = await writeSecrets(dir, [file('db/password', 'pw'), file('db/username', 'u')], marker, { hooks }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).failures[0]!.message).toMatch(/db was moved away while it was being written/);
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(join(dir, MARKER_FILE))).toBe(false);
    expect(readdirSync(join(dir, 'db.moved'))).toEqual([]);
  });

  it('a directory moved away while it is written never ends in a "success" with the app\'s file missing', async () => {
    const hooks = { afterOpen: (rel: string) => void (rel === 'db' && renameSync(join(dir, 'db'), join(dir, 'elsewhere'))) };
    const err = await writeSecrets(dir, [file('db/password', 'pw')], marker, { hooks }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect(existsSync(join(dir, MARKER_FILE))).toBe(false);
  });

  it('a FIFO where a directory should be is refused at once, never opened', async () => {
    execFileSync('mkfifo', [join(dir, 'db')]);
    const err = await writeSecrets(dir, [file('db/password', 'pw')], marker).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]!.message).toMatch(/writing db\/password failed: db exists and is not a directory/);
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
    expect((err as FetchError).failures[0]!.message).toMatch(/db belongs to uid 4242, not to the writer's uid 0/);
    expect(readdirSync(join(dir, 'db'))).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a setgid directory whose group is not the volume\'s', async () => {
    mkdirSync(join(dir, 'db'));
    chownSync(join(dir, 'db'), 0, 4242);
    chmodSync(join(dir, 'db'), 0o2755);
    const err = await writeSecrets(dir, [file('db/password', 'pw', 0o440)], marker).catch((e: unknown) => e);
    expect((err as FetchError).failures[0]!.message).toMatch(/db passes group 4242 on to its files \(setgid\)/);
  });

  it.skipIf(process.getuid?.() !== 0)('keeps the setgid bit of an fsGroup volume on the directories it creates: files below get the fsGroup', async () => {
    chownSync(dir, 0, 3000);
    chmodSync(dir, 0o2777);
    await writeSecrets(dir, [file('db/deeper/password', 'pw', 0o440), file('top', 't', 0o440)], marker);
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
