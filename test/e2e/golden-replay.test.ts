// Every golden fixture replayed through the real apiserver with our (built) webhook installed:
// a dry-run create of the fixture's request object is accepted (or denied with the fixture's
// message) and comes back exactly as a dry-run create of the fixture's expected pod. Both go
// through the same defaulting and admission, so any difference is ours: a patch value the
// apiserver rewrites, drops or rejects. Server-set fields are put aside (uid, timestamps, the
// generated kube-api-access-* volume name).

import { CoreV1Api } from '@kubernetes/client-node';
import { beforeAll, expect, it } from 'vitest';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { createDryRun, loadFixtures, normalise } from './replay.js';

const isEmpty = (v: unknown) =>
  v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0);

/**
 * Every field of `expected` is in `actual` with the same value (arrays element by element). An
 * empty map or list in `expected` may be absent: the apiserver omits empty fields.
 */
function expectContains(actual: any, expected: any, path = ''): void {
  if (expected === null || typeof expected !== 'object') {
    expect(actual, path).toEqual(expected);
    return;
  }
  if (actual === undefined && isEmpty(expected)) return;
  expect(actual, `${path} missing`).toBeTypeOf('object');
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual), `${path} is an array`).toBe(true);
    expect(actual.length, `${path} length`).toBe(expected.length);
  }
  for (const [k, v] of Object.entries(expected)) expectContains(actual[k], v, `${path}/${k}`);
}

const fixtures = loadFixtures();

describeE2E('golden fixtures replayed through the real apiserver', () => {
  // The fixtures were made with the default mutation config.
  useWebhook({ env: { FETCHER_IMAGE: DEFAULT_MUTATION_CONFIG.fetcherImage } });
  const namespace = useNamespace('golden');

  beforeAll(async () => {
    const core = e2e().cluster.kubeConfig.makeApiClient(CoreV1Api);
    const accounts = new Set(fixtures.map((f) => f.object?.spec?.serviceAccountName).filter(Boolean) as string[]);
    for (const name of accounts) {
      await core.createNamespacedServiceAccount({ namespace: namespace(), body: { metadata: { name } } });
    }
  });

  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThan(10);
  });

  const dryRunCreate = (obj: any) => createDryRun(e2e().cluster, namespace(), obj);

  it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (_name, f) => {
    const got = await dryRunCreate(f.object);
    if (!f.allowed) {
      expect(got.code, 'denied').not.toBe(0);
      expect(got.stderr).toContain('denied the request');
      if (f.message) expect(got.stderr.replace(/\s+/g, ' ')).toContain(f.message.replace(/\s+/g, ' '));
      return;
    }
    expect(got.code, got.stderr).toBe(0);
    for (const w of f.warnings) expect(got.stderr).toContain(w);
    if (f.object.kind !== 'Pod') {
      // Not ours: the webhook configuration never even sends it; it comes back as any object would.
      const plain = await dryRunCreate(f.object);
      expect(normalise(got.object)).toEqual(normalise(plain.object));
      return;
    }
    expect(f.pod, 'pod.json for an allowed pod').toBeDefined();
    const expected = await dryRunCreate(f.pod);
    expect(expected.code, expected.stderr).toBe(0);
    const actual = normalise(got.object);
    expect(actual).toEqual(normalise(expected.object));
    // And what the fixture spells out is kept verbatim by the apiserver.
    const pod = structuredClone(f.pod!);
    pod.metadata.namespace = namespace();
    expectContains(actual, pod);
  });
});
