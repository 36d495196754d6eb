// Property tests: whatever arrives, `review` returns a well-formed answer and never throws; when
// it patches, the patch is additive, applies to the object, reproduces the mutation exactly, hands
// the fetcher a spec it accepts, and a second pass is empty. The webhook does not check the last
// three on every review: these tests (and the golden fixtures) hold them.

import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { parseSpec, serialiseSpec, SPEC_ENV } from '../../fetcher/spec.js';
import { parseAnnotations, PREFIX, REGISTRY } from '../../webhook/annotations.js';
import { expandLikeKubelet } from '../../webhook/kubelet-env.js';
import { buildSpec } from '../../webhook/mutate.js';
import { review, reviewPod } from '../../webhook/review.js';
import { DEFAULT_MUTATION_CONFIG, type ReviewResult } from '../../webhook/types.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';

function wellFormed(result: ReviewResult, body: unknown): Operation[] | undefined {
  if (result.kind === 'bad-request') {
    expect(result.statusCode).toBe(400);
    expect(result.message.length).toBeGreaterThan(0);
    return undefined;
  }
  const { response, log } = result;
  expect(response.apiVersion).toBe('admission.k8s.io/v1');
  expect(response.kind).toBe('AdmissionReview');
  expect(response.response.uid).toBe((body as { request: { uid: string } }).request.uid);
  expect(typeof response.response.allowed).toBe('boolean');
  expect(log.uid).toBe(response.response.uid);
  for (const w of response.response.warnings ?? []) expect(typeof w).toBe('string');
  expect(response.response.warnings?.length ?? 0).toBe(log.warnings);
  if (!response.response.allowed) {
    expect(log.outcome).toBe('denied');
    expect(response.response.patch).toBeUndefined();
    expect(response.response.status?.message.length).toBeGreaterThan(0);
    return undefined;
  }
  if (response.response.patch === undefined) {
    expect(response.response.patchType).toBeUndefined();
    expect(log.outcome).not.toBe('injected');
    return undefined;
  }
  expect(response.response.patchType).toBe('JSONPatch');
  expect(log.outcome).toBe('injected');
  const ops = JSON.parse(Buffer.from(response.response.patch, 'base64').toString('utf8')) as Operation[];
  expect(Array.isArray(ops)).toBe(true);
  for (const op of ops) expect(['add', 'replace']).toContain(op.op);
  return ops;
}

const keyNames = [
  ...REGISTRY.filter((d) => d.stem === undefined).map((d) => `${PREFIX}${d.name}`),
  `${PREFIX}secret.a`,
  `${PREFIX}secret.b.json`,
  `${PREFIX}secret..`,
  `${PREFIX}mountPath`,
  'secret.k8s.aws/secret-arn',
  'example.com/x',
];
const goodValues = [
  ARN,
  'db-password',
  'arn:aws:ssm:us-east-1:123456789012:parameter/a/b',
  'enabled',
  'disabled',
  'injected',
  '/var/run/secrets/app',
  '/tmp',
  'app',
  'app,init',
  'us-east-1',
  '0440',
  '30s',
  'arn:aws:iam::123456789012:role/r',
  `- ref: ${ARN}\n  file: x`,
  `[{"ref":"${ARN}","explode":true}]`,
  `- {ref: ${ARN}, key: k, file: d/k, mode: 0400, format: env}`,
];
const value = fc.oneof(fc.constantFrom(...goodValues), fc.string(), fc.string({ unit: 'binary', maxLength: 40 }));
const randomAnnotations = fc.dictionary(fc.oneof(fc.constantFrom(...keyNames), fc.string({ maxLength: 30 })), value, { maxKeys: 8 });
// Mostly valid requests, so the injection path is exercised as much as the denials.
const plausibleAnnotations = fc
  .tuple(
    fc.record(
      {
        [`${PREFIX}secret-arn`]: fc.constantFrom(ARN, 'db-password'),
        [`${PREFIX}secret.db`]: fc.constant(ARN),
        [`${PREFIX}secrets`]: fc.constantFrom(...goodValues.filter((v) => v.includes('ref'))),
        [`${PREFIX}mount-path`]: fc.constantFrom('/var/run/secrets/app', '/tmp', '/data'),
        [`${PREFIX}containers`]: fc.constantFrom('app', 'init', 'app,migrate'),
        [`${PREFIX}region`]: fc.constant('us-east-1'),
        [`${PREFIX}mode`]: fc.constantFrom('0440', '0400'),
      },
      { requiredKeys: [`${PREFIX}secret-arn`] },
    ),
    randomAnnotations,
  )
  .map(([good, random]) => ({ ...random, ...good }));
const annotations = fc.oneof(randomAnnotations, plausibleAnnotations);

const mount = fc.record(
  { name: fc.constantFrom('data', 'secret-vol', 'aws-iam-token'), mountPath: fc.constantFrom('/tmp', '/data', '/tmp/', '/var/run/secrets/eks.amazonaws.com/serviceaccount') },
  { requiredKeys: ['name', 'mountPath'] },
);
const env = fc.record({
  name: fc.constantFrom('AWS_ROLE_ARN', 'AWS_REGION', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'OTHER'),
  value: fc.constantFrom('arn:aws:iam::123456789012:role/r', 'us-east-1', '/var/run/secrets/eks.amazonaws.com/serviceaccount/token', 'x'),
});
const container = (names: string[]) =>
  fc.record(
    {
      name: fc.constantFrom(...names),
      image: fc.constant('busybox'),
      volumeMounts: fc.array(mount, { maxLength: 3 }),
      env: fc.array(env, { maxLength: 4 }),
      restartPolicy: fc.constant('Always'),
      extra: fc.jsonValue(),
    },
    { requiredKeys: ['name'] },
  );
const pod = fc.record(
  {
    apiVersion: fc.constant('v1'),
    kind: fc.constant('Pod'),
    metadata: fc.record({ name: fc.string(), generateName: fc.string(), annotations }, { requiredKeys: ['annotations'] }),
    spec: fc.record(
      {
        containers: fc.array(container(['app', 'web', 'secret-fetcher']), { minLength: 1, maxLength: 3 }),
        initContainers: fc.array(container(['init', 'secret-fetcher', 'migrate']), { maxLength: 3 }),
        volumes: fc.array(fc.record({ name: fc.constantFrom('data', 'secret-vol', 'secret-vol-2'), emptyDir: fc.constant({}) }), { maxLength: 3 }),
        futureField: fc.jsonValue(),
      },
      { requiredKeys: ['containers'] },
    ),
  },
  { requiredKeys: ['metadata', 'spec'] },
);

const envelope = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'default', object, ...extra },
});

describe('review, whatever it is given', () => {
  it('answers any JSON value without throwing', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (body) => {
        wellFormed(review(body, DEFAULT_MUTATION_CONFIG), body);
      }),
      { numRuns: 500 },
    );
  });

  it('answers any envelope with junk inside', () => {
    const junkRequest = fc.record({
      uid: fc.oneof(fc.constant('u-1'), fc.anything()),
      kind: fc.oneof(fc.constant({ group: '', version: 'v1', kind: 'Pod' }), fc.anything()),
      operation: fc.oneof(fc.constant('CREATE'), fc.anything()),
      namespace: fc.anything(),
      dryRun: fc.anything(),
      subResource: fc.anything(),
      object: fc.oneof(fc.anything(), pod),
    }, { requiredKeys: [] });
    fc.assert(
      fc.property(junkRequest, (request) => {
        const body = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
        wellFormed(review(body, DEFAULT_MUTATION_CONFIG), body);
      }),
      { numRuns: 500 },
    );
  });

  it('patches additively, cleanly and idempotently, for random pods and annotation values', () => {
    let injected = 0;
    fc.assert(
      fc.property(pod, (object) => {
        const body = envelope(object);
        const before = structuredClone(object);
        const ops = wellFormed(review(body, DEFAULT_MUTATION_CONFIG), body);
        expect(object).toEqual(before);
        if (!ops) return;
        injected++;
        const after = jsonpatch.applyPatch(structuredClone(object), ops, true, false).newDocument;
        // Exactly the mutation: the patch is a diff of what mutate built, and mutate's copy shares
        // the parts it leaves alone with the request.
        const outcome = reviewPod(object, DEFAULT_MUTATION_CONFIG);
        expect(outcome.outcome).toBe('injected');
        // (Through JSON, as the apiserver reads the answer: a -0 in the request is 0 in the patch.)
        if (outcome.outcome === 'injected') expect(after).toEqual(JSON.parse(JSON.stringify(outcome.pod)));
        expect(object).toEqual(before);
        // The fetcher reads back exactly what the webhook wrote.
        // As the container receives it: the kubelet undoes the webhook's `$$`.
        const value = expandLikeKubelet((after as any).spec.initContainers[0].env.find((e: { name: string }) => e.name === SPEC_ENV).value);
        const spec = parseSpec(value);
        expect(spec).toHaveProperty('spec');
        if ('spec' in spec) expect(JSON.parse(serialiseSpec(spec.spec))).toEqual(JSON.parse(value));
        const again = review(envelope(after), DEFAULT_MUTATION_CONFIG);
        expect(again.kind === 'review' && again.response.response.patch).toBe(undefined);
        expect(again.kind === 'review' && again.response.response.allowed).toBe(true);
      }),
      { numRuns: 1000 },
    );
    // The generator must reach the interesting path, not only denials.
    expect(injected).toBeGreaterThan(20);
  }, 60_000); // thousands of reviews: room for a busy machine

  it('hands the fetcher a spec it accepts for any annotations the parser accepts', () => {
    // The full form with every field, each drawn from values the parser takes and ones it refuses.
    const entry = fc.record(
      {
        ref: fc.constantFrom(ARN, 'db-password', 'prod/api', 'arn:aws:ssm:us-east-1:123456789012:parameter/a/b', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x'),
        file: fc.constantFrom('db', 'a/b.json', 'x.env', '.hidden', 'a/../b', '/abs', 'a//b'),
        key: fc.constantFrom('password', 'user name', ''),
        explode: fc.boolean(),
        prefix: fc.constantFrom('DB_', 'app.', 'a/b'),
        versionStage: fc.constantFrom('AWSCURRENT', 'AWSPREVIOUS', 'bad stage'),
        versionId: fc.constantFrom('01234567-89ab-cdef-0123-456789abcdef', 'short'),
        mode: fc.constantFrom('0400', '0440', '0644', 400, 440, '0755', '0o440'),
        format: fc.constantFrom('raw', 'json', 'env', 'yaml'),
      },
      { requiredKeys: ['ref'] },
    );
    const full = fc.array(entry, { minLength: 1, maxLength: 4 }).map((entries) => JSON.stringify(entries));
    const options = fc.record(
      {
        [`${PREFIX}secrets`]: full,
        [`${PREFIX}secret-arn`]: fc.constantFrom(ARN, 'db-password'),
        [`${PREFIX}secret-filename`]: fc.constantFrom('secret.json', 'x'),
        [`${PREFIX}secret.db`]: fc.constant(ARN),
        [`${PREFIX}mount-path`]: fc.constantFrom('/var/run/secrets/app', '/tmp', '/data'),
        [`${PREFIX}region`]: fc.constantFrom('us-east-1', 'eu-central-1', 'us-gov-west-1'),
        [`${PREFIX}role-arn`]: fc.constantFrom('arn:aws:iam::123456789012:role/r', 'arn:aws-cn:iam::123456789012:role/path/r'),
        [`${PREFIX}mode`]: fc.constantFrom('0440', '0400', '600'),
        [`${PREFIX}refresh`]: fc.constantFrom('30s', '1h'),
      },
      { requiredKeys: [] },
    );
    const configs = [DEFAULT_MUTATION_CONFIG, { ...DEFAULT_MUTATION_CONFIG, fetchTimeouts: { deadlineSeconds: 3600 } }];
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(options, annotations), fc.constantFrom(...configs), (a, config) => {
        const parsed = parseAnnotations(a, { mountPath: config.defaultMountPath });
        if ('problems' in parsed || parsed.request.items.length === 0) return;
        accepted++;
        const built = buildSpec(parsed.request, config);
        const text = serialiseSpec(built);
        const spec = parseSpec(text);
        expect(spec, text).toHaveProperty('spec');
        if ('spec' in spec) expect(spec.spec).toEqual(built);
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(200);
  }, 60_000);
});
