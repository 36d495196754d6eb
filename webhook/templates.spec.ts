import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PREFIX } from './annotations.js';
import { review } from './review.js';
import { handleTask } from './review-worker.js';
import { reviewTemplate, WORKLOADS } from './templates.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG, type ReviewResult } from './types.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';

function template(annotations: Record<string, string>) {
  return { metadata: { labels: { app: 'web' }, annotations }, spec: { containers: [{ name: 'app', image: 'busybox' }] } };
}
function workload(kind: string, tpl: unknown, own: Record<string, string> = {}) {
  const path = WORKLOADS[kind]!.path;
  const obj: Record<string, any> = { apiVersion: `${WORKLOADS[kind]!.group}/v1`, kind, metadata: { name: 'web', annotations: own } };
  let at = obj;
  for (const k of path.slice(0, -1)) at = at[k] ??= {};
  at[path.at(-1)!] = tpl;
  return obj;
}
function envelope(kind: string, object: unknown, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u-1', kind: { group: WORKLOADS[kind]?.group ?? 'apps', version: 'v1', kind }, namespace: 'default', operation: 'CREATE', object, ...extra },
  };
}
function answered(r: ReviewResult) {
  if (r.kind !== 'review') throw new Error(r.message);
  return r;
}

describe('reviewTemplate', () => {
  it.each(Object.keys(WORKLOADS))('%s: a misspelt key is admitted with the warning a pod gets, and nothing is patched', (kind) => {
    const r = answered(reviewTemplate(envelope(kind, workload(kind, template({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}refesh`]: '5m' }))), CONFIG));
    expect(r.response.response).toEqual({ uid: 'u-1', allowed: true, warnings: [`unknown annotation ${PREFIX}refesh is ignored; did you mean ${PREFIX}refresh?`] });
    expect(r.log).toMatchObject({ outcome: 'template-allowed', kind, warnings: 1 });
  });

  it.each(Object.keys(WORKLOADS))('%s: refused with the one message its pods would get', (kind) => {
    const annotations = { [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}mode`]: '999', [`${PREFIX}containers`]: 'web' };
    const r = answered(reviewTemplate(envelope(kind, workload(kind, template(annotations))), CONFIG));
    const pod = answered(review({ ...envelope('Pod', template(annotations)), request: { ...envelope('Pod', template(annotations)).request, kind: { group: '', version: 'v1', kind: 'Pod' } } }, CONFIG));
    expect(r.response.response.allowed).toBe(false);
    expect(r.response.response.status).toEqual(pod.response.response.status);
    expect(r.response.response.status!.message).toMatch(/^aws-secret-injector \(parse, validate\): 2 problems: /);
    expect(r.log).toMatchObject({ outcome: 'template-denied', reason: expect.stringContaining('WEBHOOK_INVALID_ANNOTATION') });
    expect(r.response.response.patch).toBeUndefined();
  });

  it('an update that leaves the template as it was is not reviewed (a controller\'s bookkeeping, a finalizer removed)', () => {
    const bad = workload('Deployment', template({ [`${PREFIX}secret-arn`]: 'not an arn' }));
    const old = structuredClone(bad);
    bad.metadata.annotations = { 'deployment.kubernetes.io/revision': '2' };
    const r = answered(reviewTemplate(envelope('Deployment', bad, { operation: 'UPDATE', oldObject: old }), CONFIG));
    expect(r.response.response).toEqual({ uid: 'u-1', allowed: true });
    const changed = workload('Deployment', template({ [`${PREFIX}secret-arn`]: 'still not an arn' }));
    expect(answered(reviewTemplate(envelope('Deployment', changed, { operation: 'UPDATE', oldObject: old }), CONFIG)).response.response.allowed).toBe(false);
  });

  it.each([
    ['another group', envelope('Deployment', {}, { kind: { group: 'extensions', version: 'v1beta1', kind: 'Deployment' } })],
    ['a Pod', envelope('Pod', template({ [`${PREFIX}secret-arn`]: 'x' }), { kind: { group: '', version: 'v1', kind: 'Pod' } })],
    ['a subresource', envelope('Deployment', workload('Deployment', template({ [`${PREFIX}secret-arn`]: 'x' })), { subResource: 'scale' })],
    ['a delete', envelope('Deployment', null, { operation: 'DELETE' })],
  ])('skips %s', (_what, body) => {
    const r = answered(reviewTemplate(body, CONFIG));
    expect(r.response.response).toEqual({ uid: 'u-1', allowed: true });
    expect(r.log.outcome).toBe('skipped');
  });

  it('says where annotations on the workload\'s own metadata belong', () => {
    const r = answered(reviewTemplate(envelope('CronJob', workload('CronJob', template({}), { [`${PREFIX}secret-arn`]: ARN })), CONFIG));
    expect(r.response.response.warnings).toEqual([
      `${PREFIX}secret-arn on the CronJob's own metadata are ignored; put them on the pod template (spec.jobTemplate.spec.template.metadata.annotations)`,
    ]);
  });

  it('a large template review handed to a review worker gets the template handler', () => {
    const body = envelope('Deployment', workload('Deployment', template({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}refesh`]: '5m' })));
    const a = handleTask({ id: 1, raw: JSON.stringify(body), config: CONFIG, route: '/templates' });
    expect(a).toMatchObject({ kind: 'result', result: { kind: 'review', log: { outcome: 'template-allowed' } } });
    expect(handleTask({ id: 2, raw: JSON.stringify(body), config: CONFIG })).toMatchObject({ result: { log: { outcome: 'skipped' } } });
  });

  it('answers a malformed review with a 400, as the pod review does', () => {
    expect(reviewTemplate({ kind: 'AdmissionReview' }, CONFIG)).toMatchObject({ kind: 'bad-request', statusCode: 400 });
  });

  // Every golden pod as a Deployment's template: the same warnings, the same denial, never a patch.
  const root = new URL('../test/fixtures/', import.meta.url).pathname;
  const goldens = readdirSync(root).filter((d) => existsSync(`${root}${d}/request.json`));
  it.each(goldens)('golden %s as a Deployment template: what its pods get, without a patch', (name) => {
    const request = JSON.parse(readFileSync(`${root}${name}/request.json`, 'utf8'));
    if (request.request.kind.kind !== 'Pod') return;
    const pod = answered(review(request, CONFIG)).response.response;
    const object = request.request.object;
    const r = answered(reviewTemplate(envelope('Deployment', workload('Deployment', { metadata: object.metadata, spec: object.spec })), CONFIG)).response.response;
    expect(r.patch).toBeUndefined();
    expect(r.allowed).toBe(pod.allowed);
    expect(r.status).toEqual(pod.status);
    expect(r.warnings).toEqual(pod.warnings);
  });
});
