import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { PREFIX } from './annotations.js';
import { admissionWarnings, review, reviewPod } from './review.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG } from './types.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';
const POD = { group: '', version: 'v1', kind: 'Pod' };

function envelope(request: Record<string, unknown>) {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'uid-1', kind: POD, operation: 'CREATE', ...request } };
}
function pod(annotations: Record<string, string>) {
  return { metadata: { name: 'p', annotations }, spec: { containers: [{ name: 'app', image: 'busybox' }] } };
}
function answer(body: unknown) {
  const r = review(body, CONFIG);
  if (r.kind !== 'review') throw new Error(`bad request: ${r.message}`);
  return r;
}

describe('review: the envelope', () => {
  it.each([
    [null, 'JSON object'],
    [[], 'JSON object'],
    ['x', 'JSON object'],
    [{ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }, 'apiVersion must be admission.k8s.io/v1'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'Pod' }, 'kind must be AdmissionReview'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'request is missing'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: POD } }, 'request.uid is missing'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '' } }, 'request.uid is missing'],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u' } }, 'request.kind'],
  ])('%j -> 400 %s', (body, message) => {
    const r = review(body, CONFIG);
    expect(r).toMatchObject({ kind: 'bad-request', statusCode: 400 });
    if (r.kind === 'bad-request') expect(r.message).toContain(message);
  });
});

describe('review: a pod that says it is injected', () => {
  const injected = () => {
    const r = reviewPod(pod({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}region`]: 'us-east-1' }), CONFIG);
    if (r.outcome !== 'injected') throw new Error(r.outcome);
    return r.pod;
  };

  it('is left alone without a word when its fetcher matches its annotations', () => {
    expect(reviewPod(injected(), CONFIG)).toEqual({ outcome: 'already-injected', warnings: [] });
  });

  it('is left alone with a warning when its annotations changed after injection', () => {
    const p = injected();
    p.metadata!.annotations![`${PREFIX}secret.api-key`] = ARN;
    expect(reviewPod(p, CONFIG)).toEqual({
      outcome: 'already-injected',
      warnings: [`${PREFIX}status is set, but the fetcher was made for other secret annotations than the pod has now and fetches the old set; inject the manifest again`],
    });
  });

  it('is left alone with a warning when it has no fetcher', () => {
    const p = pod({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}status`]: 'injected' });
    expect(reviewPod(p, CONFIG)).toEqual({
      outcome: 'already-injected',
      warnings: [`${PREFIX}status is set but the pod has no fetcher init container, so no secret is fetched; remove ${PREFIX}status`],
    });
  });
});

describe('review: a pod with thousands of problems', () => {
  it('lists the first 30 in the denial and in the log, and counts the rest', () => {
    const duplicates = Array.from({ length: 1000 }, () => `- {ref: "${ARN}", file: db}`).join('\n');
    const r = answer(envelope({ object: pod({ [`${PREFIX}secrets`]: duplicates }) }));
    const message = r.response.response.status!.message!;
    expect(message).toMatch(/^aws-secret-injector \(parse\): 999 problems: /);
    expect(message).toMatch(/; … and 969 more$/);
    expect(message.length).toBeLessThan(5000);
    expect(r.log.reason).toMatch(/, … and 969 more$/);

    const bad = Array.from({ length: 1000 }, () => '- {file: db}').join('\n');
    const m2 = answer(envelope({ object: pod({ [`${PREFIX}secrets`]: bad }) })).response.response.status!.message!;
    expect(m2).toContain('entry 30: ref is required; … and 970 more');
    expect(m2.length).toBeLessThan(2000);
  });
});

describe('review: answers', () => {
  it('echoes the uid and patches a pod that asks for secrets', () => {
    const r = answer(envelope({ namespace: 'ns', object: pod({ [`${PREFIX}secret-arn`]: ARN }) }));
    expect(r.response.response).toMatchObject({ uid: 'uid-1', allowed: true, patchType: 'JSONPatch' });
    expect(r.log).toMatchObject({ uid: 'uid-1', namespace: 'ns', name: 'p', operation: 'CREATE', kind: 'Pod', outcome: 'injected', dryRun: false });
  });

  it.each([
    ['a non-pod', { kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, object: pod({ [`${PREFIX}secret-arn`]: ARN }) }],
    ['an update', { operation: 'UPDATE', object: pod({ [`${PREFIX}secret-arn`]: ARN }) }],
    ['a subresource', { subResource: 'ephemeralcontainers', object: pod({ [`${PREFIX}secret-arn`]: ARN }) }],
    ['a pod without annotations', { object: { spec: { containers: [{ name: 'a' }] } } }],
    ['an opted-out pod', { object: pod({ [`${PREFIX}sidecarInjectorWebhook`]: 'disabled', [`${PREFIX}secret-arn`]: 'bad ref' }) }],
  ])('allows %s unchanged', (_, request) => {
    const r = answer(envelope(request));
    expect(r.response.response).toEqual({ uid: 'uid-1', allowed: true });
    expect(r.log.outcome).toBe('skipped');
  });

  it('denies with every reason in one message, and no patch', () => {
    const r = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: 'bad ref', [`${PREFIX}region`]: 'x' }) }));
    expect(r.response.response.allowed).toBe(false);
    expect(r.response.response.patch).toBeUndefined();
    expect(r.response.response.status!.code).toBe(403);
    expect(r.response.response.status!.message).toMatch(/2 problems: .*region.*; .*secret-arn/);
    expect(r.log).toMatchObject({
      outcome: 'denied',
      reason: `parse: ${PREFIX}region (WEBHOOK_INVALID_ANNOTATION), ${PREFIX}secret-arn (WEBHOOK_INVALID_ANNOTATION)`,
    });
    expect(r.log.reason).not.toContain('bad ref');
  });

  it('names the problems of every stage in one denial', () => {
    const r = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}mode`]: '999', [`${PREFIX}refresh`]: '5s', [`${PREFIX}containers`]: 'nope' }) }));
    const message = r.response.response.status!.message;
    expect(message).toMatch(/^aws-secret-injector \(parse, validate\): 3 problems: /);
    for (const key of ['mode', 'refresh', 'containers']) expect(message).toContain(`${PREFIX}${key}: `);
    expect(r.log.reason).toBe(
      `parse: ${PREFIX}mode (WEBHOOK_INVALID_ANNOTATION), ${PREFIX}refresh (WEBHOOK_INVALID_ANNOTATION); validate: ${PREFIX}containers (WEBHOOK_UNKNOWN_CONTAINER)`,
    );
  });

  it('adds the later stages to a should-inject denial', () => {
    const r = answer(envelope({ object: pod({ [`${PREFIX}sidecarInjectorWebhook`]: 'maybe', [`${PREFIX}secret-arn`]: 'bad ref', [`${PREFIX}containers`]: 'web' }) }));
    const message = r.response.response.status!.message;
    expect(message).toMatch(/^aws-secret-injector \(should-inject, parse, validate\): 3 problems: /);
    expect(message).toContain(`${PREFIX}sidecarInjectorWebhook: "maybe"`);
    expect(message).toContain(`${PREFIX}secret-arn: reference`);
    expect(message).toContain(`${PREFIX}containers: names container "web"`);
  });

  it('skips the checks that depend on a refused value instead of running them on its default', () => {
    const scratch = { name: 'scratch', configMap: { name: 'scratch' } };
    const withTmp = (annotations: Record<string, string>) => ({
      metadata: { name: 'p', annotations },
      spec: { containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }] }], volumes: [scratch] },
    });
    // /tmp (the default) is taken, but the pod asked for another path, which did not parse.
    const badPath = answer(envelope({ object: withTmp({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}mount-path`]: 'relative' }) }));
    expect(badPath.response.response.status!.message).toMatch(/^aws-secret-injector \(parse\): secrets\.k8s\.aws\/mount-path: /);
    // The clash is in a container the pod may not have meant to select.
    const badList = answer(envelope({ object: withTmp({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}containers`]: 'App' }) }));
    expect(badList.response.response.status!.message).toMatch(/^aws-secret-injector \(parse\): secrets\.k8s\.aws\/containers: /);
    // Either parsed: the clash is reported beside the other problem.
    const both = answer(envelope({ object: withTmp({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}region`]: 'x' }) }));
    expect(both.response.response.status!.message).toMatch(/\(parse, validate\): 2 problems: .*region.*; .*mount-path: \/tmp is already a mount/);
  });

  it('denies a pod it cannot use', () => {
    const r = answer(envelope({ object: { metadata: { annotations: { [`${PREFIX}secret-arn`]: ARN } }, spec: { containers: 'x' } } }));
    expect(r.response.response.status!.message).toContain('spec.containers');
  });

  it('denies annotations that are not strings', () => {
    const r = answer(envelope({ object: { metadata: { annotations: { a: 1 } }, spec: {} } }));
    expect(r.response.response.status!.message).toContain('metadata.annotations');
  });

  it('warns about unknown keys and still allows', () => {
    const r = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}mountpath`]: '/x' }) }));
    expect(r.response.response.allowed).toBe(true);
    expect(r.response.response.warnings).toEqual([`unknown annotation ${PREFIX}mountpath is ignored; did you mean ${PREFIX}mount-path?`]);
    expect(r.log.warnings).toBe(1);
  });

  it('answers a dry run the same way', () => {
    const a = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: ARN }) }));
    const b = answer(envelope({ dryRun: true, object: pod({ [`${PREFIX}secret-arn`]: ARN }) }));
    expect(b.response).toEqual(a.response);
    expect(b.log.dryRun).toBe(true);
  });

  it('names the pod by generateName when it has no name yet', () => {
    const object = { metadata: { generateName: 'web-', annotations: {} }, spec: { containers: [{ name: 'a' }] } };
    expect(answer(envelope({ object })).log.name).toBe('web-');
  });

  it('keeps every field it does not model, in pod, containers and metadata', () => {
    const object = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', annotations: { [`${PREFIX}secret-arn`]: ARN }, futureMeta: { a: 1 } },
      spec: {
        futurePodField: ['kept', { deep: null }],
        initContainers: [{ name: 'sidecar', image: 'busybox', restartPolicy: 'Always', futureInit: true }],
        containers: [{ name: 'app', image: 'busybox', futureContainerField: { x: [1, 2] }, volumeMounts: [{ name: 'd', mountPath: '/d', futureMount: 'y' }] }],
        volumes: [{ name: 'd', futureVolumeSource: {} }],
      },
      status: { phase: 'Pending' },
    };
    const r = answer(envelope({ object }));
    const ops = JSON.parse(Buffer.from(r.response.response.patch!, 'base64').toString());
    expect(ops.every((op: { op: string }) => op.op === 'add')).toBe(true);
    const out = jsonpatch.applyPatch(structuredClone(object), ops).newDocument as any;
    expect(out.metadata.futureMeta).toEqual({ a: 1 });
    expect(out.spec.futurePodField).toEqual(['kept', { deep: null }]);
    expect(out.spec.initContainers[1]).toEqual(object.spec.initContainers[0]);
    expect(out.spec.containers[0].futureContainerField).toEqual({ x: [1, 2] });
    expect(out.spec.containers[0].volumeMounts[0]).toEqual({ name: 'd', mountPath: '/d', futureMount: 'y' });
    expect(out.spec.volumes[0]).toEqual({ name: 'd', futureVolumeSource: {} });
    expect(out.status).toEqual({ phase: 'Pending' });
  });

  it('keeps warnings printable and short', () => {
    const r = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}x\u0007y`]: '1', [`secret.k8s.aws/${'z'.repeat(400)}`]: '1' }) }));
    const warnings = r.response.response.warnings!;
    expect(warnings).toHaveLength(2);
    for (const w of warnings) {
      expect(w).not.toMatch(/[\u0000-\u001f]/);
      expect(w.length).toBeLessThanOrEqual(250);
    }
  });

  it('carries the first 8 warnings and counts the rest; the log counts them all', () => {
    const typos = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${PREFIX}typo-${i}-${'x'.repeat(300)}`.slice(0, 60), '1']));
    const r = answer(envelope({ object: pod({ [`${PREFIX}secret-arn`]: ARN, ...typos }) }));
    const warnings = r.response.response.warnings!;
    expect(warnings).toHaveLength(9);
    expect(warnings[8]).toBe('… and 12 more aws-secret-injector warnings; `aws-secret-injector inject -f <manifest>` lists them all');
    expect(warnings.join('').length).toBeLessThan(2_300);
    expect(r.log.warnings).toBe(20);
    expect(admissionWarnings(['a'.repeat(9), 'b'])).toEqual(['a'.repeat(9), 'b']);
  });
});

describe('review: refresh', () => {
  const refreshPod = (extra: Record<string, string> = {}) =>
    pod({ [`${PREFIX}secret.db`]: ARN, [`${PREFIX}refresh`]: '2m', ...extra });

  it('adds the refresh sidecar right after the fetcher: the same container, restartPolicy Always, its own resources', () => {
    // Under the fixed policy: the configured resources, whatever the pod (cpu-limit.spec.ts: the pod policy).
    const r = reviewPod(refreshPod(), { ...CONFIG, cpuLimitPolicy: 'fixed' });
    if (r.outcome !== 'injected') throw new Error(r.outcome);
    const [fetcher, refresher, ...rest] = r.pod.spec.initContainers!;
    expect(rest).toEqual([]);
    expect(fetcher).toMatchObject({ name: 'secret-fetcher', args: ['fetch'] });
    expect(fetcher!.restartPolicy).toBeUndefined();
    expect(refresher).toMatchObject({ name: 'secret-refresher', args: ['refresh'], restartPolicy: 'Always', resources: CONFIG.refresherResources });
    for (const field of ['image', 'imagePullPolicy', 'securityContext', 'volumeMounts'] as const) {
      expect(refresher![field], field).toEqual(fetcher![field]);
    }
    expect(refresher!.env).toEqual([...fetcher!.env!, { name: 'BUN_JSC_useJIT', value: 'false' }]);
    const spec = JSON.parse(String(refresher!.env!.find((e) => e.name === 'SECRET_INJECTOR_SPEC')!.value));
    expect(spec.refresh).toEqual({ intervalSeconds: 120 });
  });

  it('names the sidecar around containers that take its name', () => {
    const p = refreshPod() as { spec: { containers: Array<{ name: string; image: string }> } };
    p.spec.containers.push({ name: 'secret-refresher', image: 'busybox' });
    const r = reviewPod(p, CONFIG);
    if (r.outcome !== 'injected') throw new Error(r.outcome);
    expect(r.pod.spec.initContainers!.map((c) => c.name)).toEqual(['secret-fetcher', 'secret-refresher-2']);
  });

  it('is refused, naming the annotation and why, where the cluster runs no native sidecars', () => {
    const r = answer(envelope({ object: refreshPod() }));
    expect(r.response.response.allowed).toBe(true);
    const off = review(envelope({ object: refreshPod() }), { ...CONFIG, nativeSidecars: false });
    if (off.kind !== 'review') throw new Error(off.kind);
    expect(off.response.response.allowed).toBe(false);
    expect(off.response.response.status?.message).toMatch(/secrets\.k8s\.aws\/refresh: needs native sidecars \(Kubernetes 1\.29\+\).*NATIVE_SIDECARS=false/);
    // Pods without refresh are not affected.
    const plain = review(envelope({ object: pod({ [`${PREFIX}secret.db`]: ARN }) }), { ...CONFIG, nativeSidecars: false });
    expect(plain.kind === 'review' && plain.response.response.allowed).toBe(true);
  });

  it('adds no sidecar, with a warning, when every secret is pinned to a versionId', () => {
    const r = reviewPod(
      pod({ [`${PREFIX}secrets`]: `[{ref: "${ARN}", file: db, versionId: "01234567-89ab-cdef-0123-456789abcdef"}]`, [`${PREFIX}refresh`]: '1m' }),
      CONFIG,
    );
    if (r.outcome !== 'injected') throw new Error(r.outcome);
    expect(r.pod.spec.initContainers!.map((c) => c.name)).toEqual(['secret-fetcher']);
    expect(r.warnings).toContainEqual(expect.stringMatching(/refresh ignored: every secret is pinned to a versionId/));
  });

  it('states both insertions before existing init containers as adds at 0 and 1', () => {
    const p = refreshPod() as Record<string, any>;
    p.spec.initContainers = [{ name: 'migrate', image: 'busybox' }];
    const r = reviewPod(p, CONFIG);
    if (r.outcome !== 'injected') throw new Error(r.outcome);
    const adds = r.patch.filter((op) => op.path.startsWith('/spec/initContainers'));
    expect(adds.map((op) => `${op.op} ${op.path}`)).toEqual(['add /spec/initContainers/0', 'add /spec/initContainers/1']);
    expect(jsonpatch.applyPatch(structuredClone(p), r.patch).newDocument.spec.initContainers.map((c: { name: string }) => c.name)).toEqual([
      'secret-fetcher',
      'secret-refresher',
      'migrate',
    ]);
  });
});

describe('review: annotations sized to stall the webhook', () => {
  // Each case costs seconds and hundreds of MB when a parse or suggestion runs before the bounds.
  const timed = (annotations: Record<string, string>) => {
    const started = performance.now();
    const r = answer(envelope({ object: pod(annotations) }));
    return { ms: performance.now() - started, response: r.response.response, log: r.log };
  };

  it('denies a key of 1 MB in milliseconds, naming the key cut short', () => {
    const r = timed({ [`${PREFIX}${'x'.repeat(1_000_000)}`]: 'v' });
    expect(r.ms).toBeLessThan(100);
    expect(r.response.allowed).toBe(false);
    expect(r.response.status!.message).toMatch(/metadata\.annotations: total 1000017 bytes, over the apiserver's limit of 262144/);
  });

  it('denies a name of 200,000 characters under the total in milliseconds', () => {
    const r = timed({ [`${PREFIX}secret.${'x'.repeat(200_000)}`]: ARN });
    expect(r.ms).toBeLessThan(100);
    expect(r.response.status!.message).toMatch(/the name after secrets\.k8s\.aws\/ is 200007 characters long; the apiserver allows at most 63$/);
    expect(r.response.status!.message!.length).toBeLessThan(300);
    expect(r.log.reason!.length).toBeLessThan(200);
  });

  it('ignores a long foreign prefix without comparing it to ours', () => {
    const r = timed({ [`${'x'.repeat(200_000)}/a`]: 'v' });
    expect(r.ms).toBeLessThan(100);
    expect(r.response).toMatchObject({ allowed: true });
    expect(r.response.warnings).toBeUndefined();
  });

  // Bounds that hold on a machine busy with other work yet catch the quadratic versions: each
  // compares the review with one of the same shape, measured in the same run (best of a few).
  const best = (annotations: Record<string, string>, runs: number) => Math.min(...Array.from({ length: runs }, () => timed(annotations).ms));

  it('refuses an unknown field of 200,000 characters in a secrets entry without a suggestion', () => {
    const long = 'f'.repeat(200_000);
    const r = timed({ [`${PREFIX}secrets`]: `- {ref: ${ARN}, ${long}: 1}` });
    expect(r.response.status!.message).toContain('entry 1: unknown field "ffff');
    expect(r.response.status!.message).not.toContain('did you mean');
    // As long as reading the same text in a known field: no suggestion is computed for it.
    const unknown = best({ [`${PREFIX}secrets`]: `- {ref: ${ARN}, ${long}: 1}` }, 3);
    const known = best({ [`${PREFIX}secrets`]: `- {ref: ${ARN}, key: ${long}}` }, 3);
    expect(unknown / known).toBeLessThan(5);
  }, 60_000);

  it('finds a repeated key among tens of thousands in linear time', () => {
    const mapping = (n: number) => ({
      [`${PREFIX}secrets`]: `- {ref: ${ARN}, ${Array.from({ length: n }, (_, i) => `k${i}: 1`).join(', ')}, k${n - 1}: 2}`,
    });
    expect(timed(mapping(12_000)).response.status!.message).toContain('key "k11999" appears twice in one mapping');
    // 12 times the keys: about 12 times the time when linear, about 144 times when quadratic.
    expect(best(mapping(12_000), 2) / best(mapping(1_000), 5)).toBeLessThan(50);
  }, 60_000);

  it('finds a container named twice at the end of a long list', () => {
    const names = [...Array.from({ length: 24_000 }, (_, i) => `c${i}`), 'c0'].join(',');
    expect(timed({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}containers`]: names }).response.status!.message).toContain('names container "c0" twice');
  });
});

describe('review: fromSecret entries', () => {
  const STORE_CONFIG = { ...CONFIG, store: { cluster: 'prod-eu1', prefix: 'k8s', region: 'eu-west-1' } };

  it("resolve in the review's namespace to the store name, one file per key, read in the store's region", () => {
    const body = envelope({ namespace: 'payments', object: pod({ [`${PREFIX}secrets`]: '- fromSecret: db-creds' }) });
    const r = review(body, STORE_CONFIG);
    if (r.kind !== 'review') throw new Error(r.message);
    expect(r.response.response.allowed).toBe(true);
    const patch = JSON.parse(Buffer.from(r.response.response.patch!, 'base64').toString()) as Array<{ path: string; value: unknown }>;
    const fetcher = JSON.stringify(patch);
    const spec = JSON.parse(JSON.parse(fetcher.match(/"name":"SECRET_INJECTOR_SPEC","value":("(?:[^"\\]|\\.)*")/)![1]!) as string);
    expect(spec.items).toEqual([{ ref: 'k8s/prod-eu1/payments/db-creds', explode: true, file: 'db-creds' }]);
    expect(spec.region).toBe('eu-west-1');
  });

  it('are refused, naming the setting, where the webhook has no write-through settings', () => {
    const body = envelope({ namespace: 'payments', object: pod({ [`${PREFIX}secrets`]: '- fromSecret: db-creds' }) });
    const r = answer(body);
    expect(r.response.response.allowed).toBe(false);
    expect(r.response.response.status!.message).toContain('fromSecret needs the webhook setting WRITE_THROUGH_CLUSTER');
  });
});
