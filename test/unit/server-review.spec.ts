// The real review handler behind the real HTTP shell over TLS: what the apiserver sees.

import { Agent } from 'node:https';
import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FETCH_ARGS } from '../../fetcher/spec.js';
import type { WebhookServer } from '../../webhook/server.js';
import { call, listenInProcess, podReview, postJson, type Answer } from './server-client.js';

const ENV_VALUE = 'env-value-that-must-not-be-logged-91c2';
const SEED = {
  'secrets.k8s.aws/sidecarInjectorWebhook': 'enabled',
  'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:database-password-hlRvvF',
};

let app: WebhookServer;
let port: number;
let ca: string;
let log: () => string;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

beforeAll(async () => {
  ({ app, port, ca, log } = await listenInProcess());
});

afterAll(async () => {
  agent.destroy();
  await app.close();
});

interface Response {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string };
}
const responseOf = (a: Answer): Response => (JSON.parse(a.body) as { response: Response }).response;
const patchOf = (r: Response): Operation[] => JSON.parse(Buffer.from(r.patch ?? '', 'base64').toString()) as Operation[];
const logLines = (): Array<Record<string, unknown>> => log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('reviews through HTTPS with the real handler', () => {
  it('reviews a Deployment\'s pod template at /templates: the pod\'s warning, no patch, one log line', async () => {
    const pod = (podReview({ annotations: { ...SEED, 'secrets.k8s.aws/refesh': '5m' } }).request as { object: { metadata: unknown; spec: unknown } }).object;
    const body = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'deploy',
        kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        namespace: 'default',
        operation: 'CREATE',
        object: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { template: { metadata: pod.metadata, spec: pod.spec } } },
      },
    };
    const res = await call(port, { path: '/templates', body: JSON.stringify(body), ca, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(responseOf(res)).toEqual({
      uid: 'deploy',
      allowed: true,
      warnings: ['unknown annotation secrets.k8s.aws/refesh is ignored; did you mean secrets.k8s.aws/refresh?'],
    });
    expect(logLines().filter((l) => l.uid === 'deploy')).toEqual([expect.objectContaining({ msg: 'review', outcome: 'template-allowed', kind: 'Deployment', warnings: 1 })]);
    expect((await call(port, { method: 'GET', path: '/templates', ca })).status).toBe(405);
  });

  it('injects the seed example: the patch applies and adds the fetcher first', async () => {
    const req = podReview({ uid: 'seed', annotations: SEED, env: [{ name: 'DB_PASSWORD', value: ENV_VALUE }] });
    const res = await postJson(port, ca, req, agent);
    expect(res.status).toBe(200);
    const r = responseOf(res);
    expect(r).toMatchObject({ uid: 'seed', allowed: true, patchType: 'JSONPatch' });
    const pod = (req.request as { object: unknown }).object;
    const patched = jsonpatch.applyPatch(structuredClone(pod), patchOf(r), true, false).newDocument as {
      spec: { initContainers: Array<{ args: string[] }>; volumes: Array<{ emptyDir: { medium: string } }> };
    };
    expect(patched.spec.initContainers[0]!.args).toEqual(FETCH_ARGS);
    expect(patched.spec.volumes[0]!.emptyDir.medium).toBe('Memory');
    expect(logLines().filter((l) => l.uid === 'seed')).toEqual([
      expect.objectContaining({ msg: 'review', outcome: 'injected', namespace: 'default', name: 'webserver', operation: 'CREATE' }),
    ]);
    expect(log()).not.toContain(ENV_VALUE);
    expect(log()).not.toContain('database-password');
  });

  it('answers a dry run exactly as the real request', async () => {
    const wet = responseOf(await postJson(port, ca, podReview({ uid: 'same', annotations: SEED }), agent));
    const dry = responseOf(await postJson(port, ca, podReview({ uid: 'same', annotations: SEED, dryRun: true }), agent));
    expect(dry).toEqual(wet);
    expect(logLines().filter((l) => l.uid === 'same').map((l) => l.dryRun)).toEqual([false, true]);
  });

  it('allows pods without our annotations and objects that are not pods, unchanged', async () => {
    const plain = responseOf(await postJson(port, ca, podReview({ uid: 'plain' }), agent));
    expect(plain).toEqual({ uid: 'plain', allowed: true });
    const cm = podReview({ uid: 'cm', annotations: SEED }) as { request: Record<string, unknown> };
    cm.request.kind = { group: '', version: 'v1', kind: 'ConfigMap' };
    cm.request.object = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', annotations: SEED }, data: {} };
    expect(responseOf(await postJson(port, ca, cm, agent))).toEqual({ uid: 'cm', allowed: true });
  });

  it('denies invalid annotations with one message naming each, and logs the reason', async () => {
    const res = await postJson(port, ca, podReview({ uid: 'bad', annotations: { 'secrets.k8s.aws/secret.db': 'not an arn at all', 'secrets.k8s.aws/mode': '0777' } }), agent);
    expect(res.status).toBe(200);
    const r = responseOf(res);
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('secrets.k8s.aws/mode');
    expect(r.status?.message).toContain('secrets.k8s.aws/secret.db');
    expect(logLines().find((l) => l.uid === 'bad')).toMatchObject({ outcome: 'denied', reason: expect.stringContaining('secrets.k8s.aws/mode') });
  });

  it('warns about unknown annotations', async () => {
    const r = responseOf(await postJson(port, ca, podReview({ uid: 'unknown', annotations: { ...SEED, 'secrets.k8s.aws/regoin': 'us-east-1' } }), agent));
    expect(r.allowed).toBe(true);
    expect(r.warnings?.join(' ')).toMatch(/regoin/);
  });

  it.each([
    ['apiVersion v1beta1', { ...podReview({}), apiVersion: 'admission.k8s.io/v1beta1' }, /apiVersion/],
    ['kind Pod', { ...podReview({}), kind: 'Pod' }, /kind/],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request/],
    ['no uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { group: '', version: 'v1', kind: 'Pod' } } }, /uid/],
  ])('answers a review with %s with a 400 naming the problem', async (_what, body, message) => {
    const res = await postJson(port, ca, body, agent);
    expect(res.status).toBe(400);
    expect((JSON.parse(res.body) as { message: string }).message).toMatch(message);
  });

  it('answers every random body and random annotation set with a well-formed 200 or a short 400', async () => {
    const annotationKey = fc.oneof(
      fc.constantFrom('secret-arn', 'secret.db', 'secrets', 'mount-path', 'containers', 'role-arn', 'region', 'mode', 'refresh', 'sidecarInjectorWebhook', 'status'),
      fc.string({ maxLength: 20 }),
    );
    const annotations = fc.dictionary(annotationKey.map((k) => `secrets.k8s.aws/${k}`), fc.string({ maxLength: 60 }), { maxKeys: 6 });
    const body = fc.oneof(
      fc.jsonValue(),
      annotations.map((a) => podReview({ uid: 'prop', annotations: a })),
      fc.jsonValue().map((object) => ({ ...podReview({ uid: 'prop' }), request: { ...(podReview({}).request as object), uid: 'prop', object } })),
    );
    // Bounded: a fixed number of runs over one keep-alive agent.
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await call(port, { ca, agent, body: JSON.stringify(b) ?? 'null', headers: { 'content-type': 'application/json' } });
        if (res.status === 400) {
          expect(res.body.length).toBeLessThan(400);
          return;
        }
        expect(res.status).toBe(200);
        const r = responseOf(res);
        expect(r.uid).toBe('prop');
        expect(typeof r.allowed).toBe('boolean');
        if (r.patch !== undefined) expect(patchOf(r).every((op) => op.op !== 'remove')).toBe(true);
      }),
      { numRuns: 300 },
    );
    expect((await call(port, { ca, method: 'GET', path: '/healthz' })).status).toBe(200);
  }, 60_000);
});
