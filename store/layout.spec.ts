import { describe, expect, it } from 'vitest';
import {
  contentToken,
  encodeContent,
  MAX_VALUE_BYTES,
  ownershipProblem,
  settingsProblems,
  storeName,
  storeTags,
} from './layout.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('store layout', () => {
  it('names a secret <prefix>/<cluster>/<namespace>/<name>', () => {
    expect(storeName({ prefix: 'k8s', cluster: 'prod-eu1' }, 'payments', 'db-creds')).toEqual({ name: 'k8s/prod-eu1/payments/db-creds' });
    expect(storeName({ prefix: 'team/a', cluster: 'c' }, 'ns', 'x.y')).toEqual({ name: 'team/a/c/ns/x.y' });
  });

  it.each([
    ['namespace', 'Bad_NS', 'ok', 'metadata.namespace'],
    ['name', 'ns', 'UPPER', 'metadata.name'],
    ['too long', 'n'.repeat(63), `${'a'.repeat(250)}.${'b'.repeat(2)}`, 'metadata.name'],
  ])('refuses a store name: %s', (_, ns, name, subject) => {
    const r = storeName({ prefix: 'p'.repeat(128), cluster: 'c'.repeat(100) }, ns, name);
    expect('problem' in r && r.problem).toMatchObject({ code: 'WRITE_INVALID_SECRET', subject });
  });

  it('requires a valid cluster and prefix', () => {
    expect(settingsProblems({})).toMatchObject([{ code: 'WRITE_INVALID_SETTINGS', subject: 'cluster' }]);
    expect(settingsProblems({ cluster: '-x' })[0]!.subject).toBe('cluster');
    expect(settingsProblems({ cluster: 'ok', prefix: 'a//b' })[0]!.subject).toBe('prefix');
    expect(settingsProblems({ cluster: 'prod_eu-1', prefix: 'k8s' })).toEqual([]);
  });

  it('tags with managed-by, cluster, namespace and name', () => {
    expect(storeTags('c1', 'ns', 'n')).toEqual([
      { Key: 'managed-by', Value: 'aws-secret-injector' },
      { Key: 'kubernetes-cluster', Value: 'c1' },
      { Key: 'kubernetes-namespace', Value: 'ns' },
      { Key: 'kubernetes-name', Value: 'n' },
    ]);
  });

  it('owns only secrets with our tags for the same Secret', () => {
    const target = { name: 'k8s/c1/ns/n', tags: storeTags('c1', 'ns', 'n') };
    expect(ownershipProblem(storeTags('c1', 'ns', 'n'), target)).toBeUndefined();
    expect(ownershipProblem([], target)).toMatch(/without the tag managed-by=aws-secret-injector/);
    expect(ownershipProblem(storeTags('c2', 'ns', 'n'), target)).toMatch(/kubernetes-cluster is "c2"/);
  });

  it('encodes data and stringData as one sorted JSON object, stringData winning', () => {
    const r = encodeContent({ data: { b: b64('two'), a: b64('one') }, stringData: { b: 'TWO', c: 'three' } });
    expect(r).toEqual({ content: { json: '{"a":"one","b":"TWO","c":"three"}', keys: ['a', 'b', 'c'] } });
  });

  it('refuses values that are not UTF-8, not base64, or not strings, naming each key', () => {
    const r = encodeContent({ data: { bin: b64(Buffer.from([0xff, 0xfe, 0x00])), bad: '%%%' }, stringData: { n: 1 } });
    expect('problems' in r && r.problems.map((p) => p.subject)).toEqual(['data.bin', 'data.bad', 'stringData.n']);
    expect('problems' in r && r.problems[0]!.message).toMatch(/not UTF-8/);
  });

  it('refuses an empty Secret and one over 64 KiB, without quoting a value', () => {
    expect(encodeContent({})).toMatchObject({ problems: [{ code: 'WRITE_INVALID_SECRET', subject: 'data' }] });
    const big = 'S'.repeat(MAX_VALUE_BYTES);
    const r = encodeContent({ stringData: { big } });
    expect('problems' in r && r.problems[0]!.message).toMatch(/65546 bytes as JSON; Secrets Manager holds at most 65536/);
    expect(JSON.stringify(r)).not.toContain('SSSS');
    const fits = encodeContent({ stringData: { k: 'x'.repeat(MAX_VALUE_BYTES - 8) } });
    expect('content' in fits).toBe(true);
  });

  it('derives the content token from the content under the secret\'s own key', () => {
    const t = contentToken('key1', 'k8s/c/ns/n', '{"a":"1"}');
    expect(t).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(contentToken('key1', 'k8s/c/ns/n', '{"a":"1"}')).toBe(t);
    expect(contentToken('key2', 'k8s/c/ns/n', '{"a":"1"}')).not.toBe(t);
    expect(contentToken('key1', 'k8s/c/ns/n', '{"a":"2"}')).not.toBe(t);
    expect(contentToken('key1', 'k8s/c2/ns/n', '{"a":"1"}')).not.toBe(t);
    expect(contentToken('key1', 'k8s/c/ns/n', '{"a":"1"}', t)).not.toBe(t);
  });
});
