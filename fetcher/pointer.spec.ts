import { describe, expect, it } from 'vitest';
import { formatPointer, parsePath, parsePointer, resolve } from './pointer.js';

describe('JSON Pointer (RFC 6901)', () => {
  // The examples of RFC 6901 section 5, against its document.
  const doc = { foo: ['bar', 'baz'], '': 0, 'a/b': 1, 'c%d': 2, 'e^f': 3, 'g|h': 4, 'i\\j': 5, 'k"l': 6, ' ': 7, 'm~n': 8 };
  it.each<[string, unknown]>([
    ['/foo', ['bar', 'baz']],
    ['/foo/0', 'bar'],
    ['/', 0],
    ['/a~1b', 1],
    ['/c%d', 2],
    ['/e^f', 3],
    ['/g|h', 4],
    ['/i\\j', 5],
    ['/k"l', 6],
    ['/ ', 7],
    ['/m~0n', 8],
  ])('%s', (pointer, value) => {
    const p = parsePointer(pointer);
    if ('error' in p) throw new Error(p.error);
    expect(resolve(doc, p.tokens)).toEqual({ found: true, value });
    expect(formatPointer(p.tokens)).toBe(pointer);
  });

  it('decodes ~01 as "~1", not "/"', () => {
    expect(parsePointer('/~01')).toEqual({ tokens: ['~1'] });
  });

  it.each(['/a~', '/a~2', 'a/b', ''])('refuses %j', (pointer) => {
    expect(parsePointer(pointer)).toHaveProperty('error');
  });

  it.each<[string[], string]>([
    [['nope'], 'no key "nope" at the top level'],
    [['db', 'port', 'x'], '/db/port is not an object or array'],
    [['db', 'hosts', '2'], 'no index "2" in the array under /db/hosts (2 item(s))'],
    [['db', 'hosts', '01'], 'no index "01" in the array under /db/hosts'],
    [['db', 'hosts', '-'], 'no index "-"'],
  ])('names where %j stops, never a value', (tokens, missing) => {
    const secret = { db: { port: 5432, hosts: ['SECRET-A', 'SECRET-B'] } };
    const r = resolve(secret, tokens);
    expect(r.found).toBe(false);
    if (!r.found) {
      expect(r.missing).toContain(missing);
      expect(r.missing).not.toContain('SECRET');
    }
  });

  it('does not reach inherited properties', () => {
    expect(resolve({}, ['constructor']).found).toBe(false);
    expect(resolve({ a: 'x' }, ['a', 'length']).found).toBe(false);
  });
});

describe('template paths', () => {
  it.each<[string, string[]]>([
    ['username', ['username']],
    ['db.host', ['db', 'host']],
    ['hosts.0', ['hosts', '0']],
    ['/a.b/c', ['a.b', 'c']],
  ])('%s', (path, tokens) => expect(parsePath(path)).toEqual({ tokens }));

  it.each(['a..b', '.a', 'a.', 'a b', 'a$'])('refuses %j', (path) => expect(parsePath(path)).toHaveProperty('error'));
});
