import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { findConflicts, renderEnv, renderItem, shellOwned, shellQuote, type OutputFile, type RenderResult } from './render.js';
import type { SecretItem } from './spec.js';

const REF = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf';
const JSON_SECRET = JSON.stringify({ username: 'admin', password: 'pa$$w0rd-VALUE', port: 5432, nested: { a: 1 }, nothing: null });

function files(r: RenderResult): Array<{ path: string; text: string; mode: number }> {
  if ('failures' in r) throw new Error(JSON.stringify(r.failures));
  return r.files.map((f) => ({ path: f.path, text: f.data.toString('utf8'), mode: f.mode }));
}

function failures(r: RenderResult) {
  if (!('failures' in r)) throw new Error('expected failures');
  return r.failures;
}

const item = (extra: Partial<SecretItem>): SecretItem => ({ ref: REF, file: 'out', ...extra });

describe('renderItem', () => {
  it('writes a string secret as it is, with the default mode', () => {
    expect(files(renderItem(item({}), { text: 'plain value' }, 0o444))).toEqual([{ path: 'out', text: 'plain value', mode: 0o444 }]);
  });

  it('writes a binary secret as bytes', () => {
    const bytes = new Uint8Array([0, 255, 10, 13, 128]);
    const r = renderItem(item({ mode: 0o400 }), { binary: bytes }, 0o444);
    if ('failures' in r) throw new Error('unexpected');
    expect([...r.files[0]!.data]).toEqual([...bytes]);
    expect(r.files[0]!.mode).toBe(0o400);
  });

  it.each([
    ['username', 'admin'],
    ['port', '5432'],
    ['nested', '{"a":1}'],
    ['nothing', 'null'],
  ])('extracts key %s', (key, expected) => {
    expect(files(renderItem(item({ key }), { text: JSON_SECRET }, 0o444))[0]!.text).toBe(expected);
  });

  it('format json writes the whole secret as stored, or a key as JSON', () => {
    expect(files(renderItem(item({ format: 'json' }), { text: JSON_SECRET }, 0o444))[0]!.text).toBe(JSON_SECRET);
    expect(files(renderItem(item({ format: 'json', key: 'username' }), { text: JSON_SECRET }, 0o444))[0]!.text).toBe('"admin"');
  });

  it('format env writes NAME=value lines', () => {
    expect(files(renderItem(item({ format: 'env' }), { text: JSON_SECRET }, 0o444))[0]!.text).toBe(
      "username='admin'\npassword='pa$$w0rd-VALUE'\nport='5432'\nnested='{\"a\":1}'\nnothing=''\n",
    );
    expect(files(renderItem(item({ format: 'env', key: 'nested' }), { text: JSON_SECRET }, 0o444))[0]!.text).toBe("a='1'\n");
  });

  it('explode writes one file per key, with prefix, under the sub-directory', () => {
    const out = files(renderItem({ ref: REF, explode: true, prefix: 'db_', file: 'conf' }, { text: JSON_SECRET }, 0o440));
    expect(out.map((f) => [f.path, f.text])).toEqual([
      ['conf/db_username', 'admin'],
      ['conf/db_password', 'pa$$w0rd-VALUE'],
      ['conf/db_port', '5432'],
      ['conf/db_nested', '{"a":1}'],
      ['conf/db_nothing', 'null'],
    ]);
    expect(out.every((f) => f.mode === 0o440)).toBe(true);
    expect(files(renderItem({ ref: REF, explode: true }, { text: '{"a":"1"}' }, 0o444))[0]!.path).toBe('a');
  });

  // Every error names the reference (and the key the spec asked for), never a value nor a key name the secret holds.
  it.each<[string, Partial<SecretItem>, string, string, RegExp]>([
    ['missing key', { key: 'nope' }, JSON_SECRET, 'FETCH_KEY_MISSING', /^key "nope" is not in the secret's JSON \(it has 5 other keys, not listed here\)$/],
    ['key of non-JSON', { key: 'k' }, 'not-json SECRET-VALUE', 'FETCH_NOT_JSON', /not JSON, but key "k"/],
    ['key of a JSON array', { key: 'k' }, '["SECRET-VALUE"]', 'FETCH_NOT_JSON', /not a JSON object/],
    ['explode of non-JSON', { explode: true, file: undefined }, 'SECRET-VALUE', 'FETCH_NOT_JSON', /explode/],
    ['env of non-JSON', { format: 'env' }, 'SECRET-VALUE', 'FETCH_NOT_JSON', /format env/],
    ['json of non-JSON', { format: 'json' }, 'SECRET-VALUE {', 'FETCH_NOT_JSON', /format json/],
    ['env of a scalar key', { format: 'env', key: 'k' }, '{"k":"SECRET-VALUE"}', 'FETCH_NOT_JSON', /format env needs a JSON object/],
    ['env with a bad name', { format: 'env' }, '{"bad-name":"SECRET-VALUE"}', 'FETCH_BAD_KEY', /^key 1 of 1 in the secret's JSON object is not a valid shell variable name/],
    ['env setting BASH_ENV', { format: 'env' }, '{"BASH_ENV":"$(touch /tmp/x)"}', 'FETCH_BAD_KEY', /^key 1 of 1 in the secret's JSON object is a variable the shell itself sets or acts on/],
    ['env setting LD_PRELOAD', { format: 'env' }, '{"LD_PRELOAD":"/x.so"}', 'FETCH_BAD_KEY', /^key 1 of 1 in the secret's JSON object is a variable of the dynamic loader/],
    ['env with NUL', { format: 'env' }, '{"K":"SECRET-VALUE\\u0000"}', 'FETCH_FORMAT', /NUL/],
    ['explode with a bad file name', { explode: true, file: undefined }, '{"../x":"SECRET-VALUE"}', 'FETCH_BAD_KEY', /cannot be a file name/],
    ['explode with env', { explode: true, file: undefined, format: 'env' }, '{"a":"SECRET-VALUE"}', 'FETCH_FORMAT', /format env does not apply/],
    ['explode with a key too long for a file name', { explode: true, file: undefined, prefix: 'p_' }, `{"${'k'.repeat(254)}":"SECRET-VALUE"}`, 'FETCH_BAD_KEY', /longer than 255 characters/],
  ])('%s', (_name, extra, text, code, message) => {
    const [f] = failures(renderItem(item(extra), { text }, 0o444));
    expect(f!.code).toBe(code);
    expect(f!.ref).toBe(REF);
    expect(f!.message).toMatch(message);
    expect(JSON.stringify(f)).not.toContain('SECRET-VALUE');
    // No key name the secret holds (the one the spec asked for is the user's own).
    for (const k of Object.keys((() => { try { return JSON.parse(text) as object; } catch { return {}; } })() ?? {})) {
      if (k !== extra.key && k.length > 3) expect(f!.message).not.toContain(k.slice(0, 20));
    }
  });

  it('refuses keys and formats on a binary secret', () => {
    const [f] = failures(renderItem(item({ key: 'k' }), { binary: new Uint8Array([1]) }, 0o444));
    expect(f!.code).toBe('FETCH_FORMAT');
  });

  it('never quotes a JSON parse error (which would quote the value)', () => {
    const r = renderItem(item({ key: 'k' }), { text: 'hunter2-is-my-password' }, 0o444);
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });
});

describe('JSON Pointer keys, templates and whole paths', () => {
  const NESTED = JSON.stringify({ db: { hosts: ['h1', 'h2'], 'a/b': 'slash', port: 5432 }, top: 'SECRET-VALUE' });

  it.each([
    ['/db/hosts/1', 'h2'],
    ['/db/a~1b', 'slash'],
    ['/db/port', '5432'],
    ['/db/hosts', '["h1","h2"]'],
    ['/top', 'SECRET-VALUE'],
  ])('key %s', (key, text) => {
    expect(files(renderItem(item({ key }), { text: NESTED }, 0o444))[0]!.text).toBe(text);
  });

  it('a pointer reaches into a JSON array secret; format json encodes what it finds', () => {
    expect(files(renderItem(item({ key: '/1/u' }), { text: '[{"u":"a"},{"u":"b"}]' }, 0o444))[0]!.text).toBe('b');
    expect(files(renderItem(item({ key: '/db', format: 'json' }), { text: NESTED }, 0o444))[0]!.text).toBe('{"hosts":["h1","h2"],"a/b":"slash","port":5432}');
  });

  it('a pointer that finds nothing fails with FETCH_KEY_MISSING naming it, never a value', () => {
    const [f] = failures(renderItem(item({ key: '/db/hosts/5' }), { text: NESTED }, 0o444));
    expect(f).toMatchObject({ code: 'FETCH_KEY_MISSING', ref: REF, message: `JSON Pointer /db/hosts/5 finds nothing in the secret's JSON: no index "5" in the array under /db/hosts (2 item(s))` });
    expect(JSON.stringify(f)).not.toMatch(/SECRET-VALUE|h1|slash/);
  });

  it('a template renders an RDS-managed secret into a connection URL', () => {
    const rds = JSON.stringify({ username: 'app', password: 'pw', host: 'db.example', port: 5432, dbname: 'orders' });
    const out = files(renderItem(item({ template: 'postgres://{{username}}:{{password}}@{{host}}:{{port}}/{{dbname}}', mode: 0o400 }), { text: rds }, 0o444));
    expect(out).toEqual([{ path: 'out', text: 'postgres://app:pw@db.example:5432/orders', mode: 0o400 }]);
  });

  it('a template placeholder that finds nothing fails naming the placeholder, one failure each', () => {
    const f = failures(renderItem(item({ template: '{{ top }} {{ db.user }} {{ /nope }}' }), { text: NESTED }, 0o444));
    expect(f.map((x) => [x.code, x.message])).toEqual([
      ['FETCH_KEY_MISSING', `template placeholder "{{ db.user }}" finds nothing in the secret's JSON: no key "user" under /db`],
      ['FETCH_KEY_MISSING', `template placeholder "{{ /nope }}" finds nothing in the secret's JSON: no key "nope" at the top level`],
    ]);
    expect(JSON.stringify(f)).not.toContain('SECRET-VALUE');
  });

  it('a template of a secret that is not JSON, or binary, fails without the value', () => {
    expect(failures(renderItem(item({ template: '{{ a }}' }), { text: 'SECRET-VALUE' }, 0o444))[0]).toMatchObject({ code: 'FETCH_NOT_JSON', message: 'the secret is not JSON, but a template was asked of it' });
    expect(failures(renderItem(item({ template: '{{ a }}' }), { binary: new Uint8Array([1]) }, 0o444))[0]!.code).toBe('FETCH_FORMAT');
  });

  it("a whole path's secrets go under file, each as the entry asks", () => {
    const members = [
      { name: 'db/password', value: { text: '{"password":"p1"}' } },
      { name: 'api', value: { text: '{"password":"p2"}' } },
    ];
    const out = files(renderItem({ ref: 'prod/*', file: 'conf', key: '/password', mode: 0o400 }, { members }, 0o444));
    expect(out).toEqual([
      { path: 'conf/db/password', text: 'p1', mode: 0o400 },
      { path: 'conf/api', text: 'p2', mode: 0o400 },
    ]);
    expect(files(renderItem({ ref: 'prod/*', file: 'conf' }, { members: [] }, 0o444))).toEqual([]);
  });

  it("a whole path's secret whose name cannot be a file fails, naming it", () => {
    const f = failures(renderItem({ ref: 'prod/*', file: 'conf' }, { members: [{ name: 'a+b@c', value: { text: 'SECRET-VALUE' } }, { name: 'ok', value: { text: 'x' } }] }, 0o444));
    expect(f).toEqual([expect.objectContaining({ code: 'FETCH_BAD_KEY', ref: 'prod/*', message: expect.stringContaining('the secret "a+b@c" under this path cannot be a file name') })]);
    const missing = failures(renderItem({ ref: 'prod/*', file: 'conf', key: 'k' }, { members: [{ name: 'x', value: { text: '{}' } }] }, 0o444));
    expect(missing[0]).toMatchObject({ code: 'FETCH_KEY_MISSING', ref: 'prod/* (x)' });
  });
});

describe('no value in any failure (property)', () => {
  const options = fc.constantFrom<Partial<SecretItem>>(
    { key: 'k' },
    { key: 'absent' },
    { explode: true, file: undefined },
    { format: 'env' },
    { format: 'json' },
    { format: 'env', key: 'k' },
    { explode: true, file: undefined, format: 'env' },
    { key: '/k/deep' },
    { key: '/0' },
    { key: '/absent/x' },
    { template: '{{ k }}:{{ k.deep }}:{{ /0 }}:{{ absent }}' },
  );
  // A value with a marker that cannot occur in our own messages, alone or inside JSON of any shape.
  const value = fc.string({ minLength: 1, maxLength: 30 }).map((s) => `VALUE_${s}_END`);
  const secretText = fc.oneof(
    value,
    value.map((v) => JSON.stringify({ k: v })),
    value.map((v) => JSON.stringify({ 'bad key!': v, k: v })),
    value.map((v) => JSON.stringify([v])),
    value.map((v) => `{"k": "${v}"`),
    value.map((v) => JSON.stringify({ k: { deep: v } })),
  );

  it('never echoes the secret', () => {
    fc.assert(
      fc.property(options, secretText, (extra, text) => {
        const r = renderItem(item(extra), { text }, 0o444);
        if ('failures' in r) expect(JSON.stringify(r.failures)).not.toContain('VALUE_');
      }),
      { numRuns: 300 },
    );
  });
});

describe('findConflicts', () => {
  const f = (path: string, ref: string): OutputFile => ({ path, ref, data: Buffer.from(''), mode: 0o444 });
  it('finds two items writing one path, a file used as a directory, the marker name and the volume\'s own `..` names', () => {
    const out = findConflicts([f('a', 'r1'), f('a', 'r2'), f('b', 'r3'), f('b/c', 'r4'), f('.secrets-ready', 'r5'), f('ok', 'r6'), f('..data', 'r7'), f('conf/..x', 'r8'), f('conf/.x', 'r9')]);
    expect(out.map((x) => [x.ref, x.code])).toEqual([
      ['r2', 'FETCH_FILE_CONFLICT'],
      ['r5', 'FETCH_FILE_CONFLICT'],
      ['r7', 'FETCH_FILE_CONFLICT'],
      ['r8', 'FETCH_FILE_CONFLICT'],
      ['r4', 'FETCH_FILE_CONFLICT'],
    ]);
    expect(out[2]!.message).toBe('file ..data is reserved for the volume\'s own names (starting with "..": its versions)');
  });
});

describe('format env in a real shell', () => {
  const dir = mkdtempSync(join(tmpdir(), 'env-format-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Sources the file with `set -a; . file` in sh and prints each variable back, NUL-separated.
  function roundTrip(obj: Record<string, string>): Record<string, string> {
    const r = renderEnv(obj, 'ref');
    if ('failures' in r) throw new Error(JSON.stringify(r.failures));
    const file = join(dir, 'env');
    writeFileSync(file, r.text);
    const names = Object.keys(obj);
    const script = `set -eu; set -a; . "$1"; set +a; shift; for n in "$@"; do eval "printf '%s\\0' \\"\\$$n\\""; done`;
    const out = execFileSync('sh', ['-c', script, 'sh', file, ...names], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    const values = out.split('\0').slice(0, -1);
    return Object.fromEntries(names.map((n, i) => [n, values[i] as string]));
  }

  it('keeps hostile values exactly and runs none of them', () => {
    const canary = join(dir, 'pwned');
    const hostile = {
      SINGLE: "it's",
      DOUBLE: 'say "hi"',
      DOLLAR: '$HOME ${PATH} $(touch ' + canary + ')',
      BACKTICK: '`touch ' + canary + '`',
      NEWLINES: 'line1\nline2\n\nTOUCH=1; touch ' + canary + '\n',
      BACKSLASH: 'a\\b\\\\c\\n',
      MIXED: `'"\`$\\;|&<>*?[]{}~#! \t`,
      EMPTY: '',
      UNICODE: 'pässwörd ✓',
    };
    expect(roundTrip(hostile)).toEqual(hostile);
    expect(() => execFileSync('test', ['-e', canary])).toThrow();
  });

  it('round-trips any string without NUL (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/), fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0')), { maxKeys: 5 }), (obj) => {
        // Names the shell itself owns are refused; `n` is the loop's own variable.
        const safe = Object.fromEntries(Object.entries(obj).filter(([k]) => shellOwned(k) === undefined && k !== 'n'));
        expect(roundTrip(safe)).toEqual(safe);
      }),
      { numRuns: 30 },
    );
  }, 30_000);

  it.each([
    ['BASH_ENV', 'runs its value in every bash the app starts'],
    ['ENV', 'runs its value in an interactive sh'],
    ['PATH', 'chooses every command the app runs'],
    ['IFS', 'changes how the app\'s script splits words'],
    ['PS4', 'runs its value under set -x'],
    ['PROMPT_COMMAND', 'runs its value'],
    ['CDPATH', 'steers cd'],
    ['GLOBIGNORE', 'changes globbing'],
    ['SHELLOPTS', 'is read-only in bash'],
    ['BASHOPTS', 'is read-only in bash'],
    ['UID', 'is read-only in bash'],
    ['EUID', 'is read-only in bash'],
    ['PPID', 'is read-only'],
    ['BASH_FUNC_ls%%', 'is not even a name'],
    ['BASH_FUNC_x', 'is reserved by bash'],
    ['LD_PRELOAD', 'loads code into every process'],
    ['LD_LIBRARY_PATH', 'chooses the libraries every process loads'],
    ['LD_AUDIT', 'loads code into every process'],
    ['TMOUT', 'ends reads and shells'],
  ])('refuses the key %s (%s), naming the reference and the key\'s position, never its name', (key) => {
    const r = renderEnv({ APP_OK: 'x', [key]: 'SECRET-VALUE' }, 'arn:ref');
    expect('failures' in r).toBe(true);
    if (!('failures' in r)) return;
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatchObject({ code: 'FETCH_BAD_KEY', ref: 'arn:ref' });
    expect(r.failures[0]!.message).toMatch(/^key 2 of 2 in the secret's JSON object /);
    expect(r.failures[0]!.message).not.toContain(key);
    expect(JSON.stringify(r.failures)).not.toContain('SECRET-VALUE');
  });

  it('refuses the secret that would run code when the app sources its file, and writes nothing', () => {
    const value = JSON.stringify({ BASH_ENV: '$(touch /tmp/pwned)', PATH: '/somewhere/evil:/usr/bin', APP_TOKEN: 't' });
    const r = renderItem({ ref: 'arn:ref', file: 'app.env', format: 'env' }, { text: value }, 0o444);
    expect(r).toMatchObject({ failures: [{ code: 'FETCH_BAD_KEY', ref: 'arn:ref' }] });
  });

  it('still writes names that merely look alike', () => {
    expect(renderEnv({ APP_PATH: '/x', MY_UID: '1', LD: 'x', BASHFUL: 'y', path: 'lower' }, 'r')).toEqual({
      text: "APP_PATH='/x'\nMY_UID='1'\nLD='x'\nBASHFUL='y'\npath='lower'\n",
    });
  });

  it('quotes the single quote itself', () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});
