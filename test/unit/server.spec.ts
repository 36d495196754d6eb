// The HTTP shell over real TLS on an ephemeral port: every kind of bad input, the status codes,
// logs, health, metrics. The review handler here is a stand-in with the ReviewHandler contract,
// so these tests pin the shell alone; server-review.spec.ts runs the real handler.

import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { WebhookMetrics } from '../../webhook/metrics.js';
import { BODY_LIMIT_BYTES, buildServer, type WebhookServer } from '../../webhook/server.js';
import { DEFAULT_MUTATION_CONFIG, type ReviewHandler, type ReviewResult } from '../../webhook/types.js';
import { call, podReview, postJson } from './server-client.js';

const SECRET_VALUE = 'do-not-log-this-value-7f3a';

// The ReviewHandler contract in a few lines: bad envelopes are 400s, pods with our annotation
// are injected (an empty patch is enough here), others skipped.
const stubReview: ReviewHandler = (body): ReviewResult => {
  const b = body as { apiVersion?: unknown; kind?: unknown; request?: Record<string, unknown> } | null;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return { kind: 'bad-request', statusCode: 400, message: 'not an AdmissionReview' };
  if (b.apiVersion !== 'admission.k8s.io/v1' || b.kind !== 'AdmissionReview') {
    return { kind: 'bad-request', statusCode: 400, message: 'expected apiVersion admission.k8s.io/v1, kind AdmissionReview' };
  }
  const req = b.request;
  if (typeof req !== 'object' || req === null || typeof req.uid !== 'string') {
    return { kind: 'bad-request', statusCode: 400, message: 'request.uid is missing' };
  }
  if (req.name === 'explode') throw new Error(`cannot handle ${SECRET_VALUE}`);
  const pod = req.object as { metadata?: { annotations?: Record<string, string> } };
  const ours = Object.keys(pod?.metadata?.annotations ?? {}).some((k) => k.startsWith('secrets.k8s.aws/'));
  const denied = pod?.metadata?.annotations?.['secrets.k8s.aws/mode'] === 'bad';
  return {
    kind: 'review',
    response: {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: denied
        ? { uid: req.uid, allowed: false, status: { code: 400, message: 'secrets.k8s.aws/mode: bad' } }
        : ours
          ? { uid: req.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from('[]').toString('base64') }
          : { uid: req.uid, allowed: true },
    },
    log: {
      uid: req.uid,
      namespace: req.namespace as string,
      name: req.name as string,
      operation: req.operation as string,
      kind: 'Pod',
      dryRun: req.dryRun === true,
      outcome: denied ? 'denied' : ours ? 'injected' : 'skipped',
      warnings: 0,
      ...(denied ? { reason: 'secrets.k8s.aws/mode: bad' } : {}),
    },
  };
};

const certs = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const otherCa = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }).caCert;
const ca = certs.caCert;

let app: WebhookServer;
let port: number;
let metrics: WebhookMetrics;
const logLines: Array<Record<string, unknown>> = [];
let rawLog = '';

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      rawLog += chunk.toString();
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  metrics = new WebhookMetrics({ processMetrics: false });
  app = buildServer(
    { mutation: DEFAULT_MUTATION_CONFIG },
    { review: stubReview, logger: pino({ level: 'info' }, sink), metrics, tls: certs },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});

afterAll(async () => {
  await app.close();
});

const json = (body: string): Record<string, unknown> => JSON.parse(body) as Record<string, unknown>;

describe('POST /mutate', () => {
  it('answers a review with an AdmissionReview and echoes the uid', async () => {
    const res = await postJson(port, ca, podReview({ uid: 'uid-ok', annotations: { 'secrets.k8s.aws/secret.db': 'x' } }));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = json(res.body) as { response: { uid: string; allowed: boolean } };
    expect(body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(body.response.uid).toBe('uid-ok');
    expect(body.response.allowed).toBe(true);
  });

  it('accepts application/json with a charset', async () => {
    const res = await call(port, {
      ca,
      body: JSON.stringify(podReview({ uid: 'uid-charset' })),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(res.status).toBe(200);
  });

  it.each([
    ['malformed JSON', '{"apiVersion": "admission.k8s.io/v1", ', 'application/json', 400, /not valid JSON/],
    ['an empty body', '', 'application/json', 400, /empty/],
    ['a prototype-poisoning body', '{"__proto__": {"x": 1}}', 'application/json', 400, /not valid JSON/],
    ['JSON null', 'null', 'application/json', 400, /AdmissionReview/],
    ['a JSON array', '[]', 'application/json', 400, /AdmissionReview/],
    ['a JSON string', '"review"', 'application/json', 400, /AdmissionReview/],
    ['text/plain', JSON.stringify(podReview({})), 'text/plain', 415, /application\/json/],
    ['YAML', 'apiVersion: admission.k8s.io/v1', 'application/yaml', 415, /application\/json/],
    ['form data', 'a=1', 'application/x-www-form-urlencoded', 415, /application\/json/],
  ])('rejects %s with a short 4xx', async (_what, body, type, status, message) => {
    const res = await call(port, { ca, body, headers: { 'content-type': type } });
    expect(res.status).toBe(status);
    expect(res.body.length).toBeLessThan(300);
    expect((json(res.body) as { message: string }).message).toMatch(message);
  });

  it('rejects a body without a content type with 415', async () => {
    const res = await call(port, { ca, body: JSON.stringify(podReview({})) });
    expect(res.status).toBe(415);
  });

  it.each([
    ['wrong apiVersion', { ...podReview({}), apiVersion: 'admission.k8s.io/v1beta1' }],
    ['wrong kind', { ...podReview({}), kind: 'Pod' }],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }],
    ['no uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }],
  ])('answers a review with %s with 400 and the handler message', async (_what, review) => {
    const res = await postJson(port, ca, review);
    expect(res.status).toBe(400);
    expect(json(res.body)).toMatchObject({ statusCode: 400, error: 'Bad Request' });
  });

  it(`answers 413 to a body over ${BODY_LIMIT_BYTES} bytes announced by Content-Length`, async () => {
    const body = Buffer.alloc(BODY_LIMIT_BYTES + 1, 0x20);
    const res = await call(port, { ca, body, headers: { 'content-type': 'application/json' } }).catch((e: Error) => e);
    // The server may answer before it has read the whole body; either way it is a 413.
    expect(res).not.toBeInstanceOf(Error);
    expect((res as { status: number }).status).toBe(413);
  });

  it('answers 413 to a chunked body that grows over the limit', async () => {
    const big = JSON.stringify({ ...podReview({}), padding: 'x'.repeat(BODY_LIMIT_BYTES) });
    const res = await call(port, {
      ca,
      body: big,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    }).catch((e: Error) => e);
    expect(res).not.toBeInstanceOf(Error);
    expect((res as { status: number }).status).toBe(413);
  });

  it('accepts a review just under the limit', async () => {
    const review = podReview({ uid: 'uid-big', annotations: { padding: 'x'.repeat(BODY_LIMIT_BYTES - 4096) } });
    const res = await postJson(port, ca, review);
    expect(res.status).toBe(200);
  });

  it('answers 500 when the handler throws, and logs neither its message nor the body', async () => {
    const res = await postJson(port, ca, podReview({ uid: 'uid-throw', name: 'explode', env: [{ name: 'A', value: SECRET_VALUE }] }));
    expect(res.status).toBe(500);
    expect(res.body).not.toContain(SECRET_VALUE);
    const line = logLines.find((l) => l.uid === 'uid-throw');
    expect(line).toMatchObject({ outcome: 'error', errorName: 'Error', level: 50 });
    expect(rawLog).not.toContain(SECRET_VALUE);
  });

  it('answers 405 with Allow: POST to other methods', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await call(port, { ca, method });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('POST');
    }
  });

  it('answers 404 to an unknown path', async () => {
    const res = await call(port, { ca, method: 'GET', path: '/validate?x=1' });
    expect(res.status).toBe(404);
    expect(json(res.body).message).toBe('no route GET /validate');
  });

  it('keeps serving after every kind of bad input', async () => {
    const res = await postJson(port, ca, podReview({ uid: 'uid-after' }));
    expect(res.status).toBe(200);
  });
});

describe('logs', () => {
  it('writes one line per review with uid, namespace, name, operation, outcome and duration, never the body', async () => {
    await postJson(
      port,
      ca,
      podReview({
        uid: 'uid-log',
        namespace: 'team-a',
        name: 'api-0',
        annotations: { 'secrets.k8s.aws/secret.db': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf' },
        env: [{ name: 'PASSWORD', value: SECRET_VALUE }],
      }),
    );
    const lines = logLines.filter((l) => l.uid === 'uid-log');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'review',
      uid: 'uid-log',
      namespace: 'team-a',
      name: 'api-0',
      operation: 'CREATE',
      outcome: 'injected',
      dryRun: false,
    });
    expect(typeof lines[0]!.durationMs).toBe('number');
    expect(rawLog).not.toContain(SECRET_VALUE);
    expect(rawLog).not.toContain('secretsmanager');
  });

  it('logs rejected requests without their content', async () => {
    await call(port, { ca, body: `{"password": "${SECRET_VALUE}"`, headers: { 'content-type': 'application/json' } });
    expect(logLines.at(-1)).toMatchObject({ msg: 'request rejected', statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    expect(rawLog).not.toContain(SECRET_VALUE);
  });
});

describe('health and metrics', () => {
  it('answers /healthz and /readyz', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const res = await call(port, { ca, method: 'GET', path });
      expect(res.status).toBe(200);
      expect(json(res.body)).toEqual({ status: 'ok' });
    }
  });

  it('exposes reviews by outcome, latency and injections/denials by namespace in Prometheus text', async () => {
    const ns = 'metrics-ns';
    await postJson(port, ca, podReview({ uid: 'm1', namespace: ns, annotations: { 'secrets.k8s.aws/secret.a': 'x' } }));
    await postJson(port, ca, podReview({ uid: 'm2', namespace: ns, annotations: { 'secrets.k8s.aws/mode': 'bad' } }));
    await postJson(port, ca, podReview({ uid: 'm3', namespace: ns, dryRun: true, annotations: { 'secrets.k8s.aws/secret.a': 'x' } }));
    const res = await call(port, { ca, method: 'GET', path: '/metrics' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(text).toMatch(/^aws_secret_injector_reviews_total\{outcome="injected"\} [1-9]/m);
    expect(text).toMatch(/^aws_secret_injector_reviews_total\{outcome="denied"\} [1-9]/m);
    expect(text).toMatch(/^aws_secret_injector_reviews_total\{outcome="bad-request"\} [1-9]/m);
    expect(text).toMatch(/^aws_secret_injector_review_duration_seconds_bucket\{le="0.001",outcome="injected"\} \d+/m);
    // The dry run is a review like any other but not an injection.
    expect(text).toMatch(new RegExp(`^aws_secret_injector_injections_total\\{namespace="${ns}"\\} 1$`, 'm'));
    expect(text).toMatch(new RegExp(`^aws_secret_injector_denials_total\\{namespace="${ns}"\\} 1$`, 'm'));
  });
});

describe('TLS', () => {
  it('completes a handshake for a client that trusts the CA, fails one that trusts another CA', async () => {
    expect((await call(port, { ca, method: 'GET', path: '/healthz' })).fingerprint).toBeTruthy();
    await expect(call(port, { ca: otherCa, method: 'GET', path: '/healthz' })).rejects.toThrow(/self-signed|unable to verify|certificate/i);
  });

  it('refuses TLS 1.1 and negotiates TLS 1.3 with a current client', async () => {
    const { connect } = await import('node:tls');
    const handshake = (opts: Record<string, unknown>): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, ca, ...opts }, () => {
          resolve(s.getProtocol() ?? '');
          s.end();
        });
        s.on('error', reject);
      });
    expect(await handshake({})).toBe('TLSv1.3');
    // The client is allowed TLS 1.1 (security level 0), so the refusal is the server's.
    await expect(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow(/alert protocol version/);
  });
});
