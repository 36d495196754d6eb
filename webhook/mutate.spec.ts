import { describe, expect, it } from 'vitest';
import { CA_BUNDLE_DIR, NODE_CREDENTIALS_ENV, parseSpec, SIGNAL_TARGET_ENV, SPEC_ENV } from '../fetcher/spec.js';
import { parseAnnotations, PREFIX, type InjectionRequest } from './annotations.js';
import { checkPod, FETCHER_DIR, findIdentity, mutate, validateResources, validateSignal, validateTarget, type Pod } from './mutate.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG } from './types.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';

function pod(annotations: Record<string, string>, spec: Partial<Pod['spec']> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', annotations: { [`${PREFIX}secret-arn`]: ARN, ...annotations } },
    spec: { containers: [{ name: 'app', image: 'busybox' }], ...spec },
  };
}
function request(p: Pod): InjectionRequest {
  const r = parseAnnotations(p.metadata!.annotations!, { mountPath: '/tmp' });
  if ('problems' in r) throw new Error(JSON.stringify(r.problems));
  return r.request;
}

describe('mutate', () => {
  it('leaves its input untouched and puts the fetcher first', () => {
    const p = pod({}, { initContainers: [{ name: 'migrate', image: 'busybox' }] });
    const before = structuredClone(p);
    const { pod: out } = mutate(p, request(p), CONFIG);
    expect(p).toEqual(before);
    expect(out.spec.initContainers!.map((c) => c.name)).toEqual(['secret-fetcher', 'migrate']);
    expect(out.metadata!.annotations![`${PREFIX}status`]).toBe('injected');
  });

  it('hands the fetcher a spec it accepts, with references only', () => {
    const p = pod({ [`${PREFIX}region`]: 'eu-west-1', [`${PREFIX}role-arn`]: 'arn:aws:iam::123456789012:role/r' });
    const { pod: out } = mutate(p, request(p), CONFIG);
    const env = out.spec.initContainers![0]!.env!;
    const spec = parseSpec(env.find((e) => e.name === SPEC_ENV)!.value!);
    expect(spec).toEqual({
      spec: { version: 1, dir: '/aws-secret-injector', mode: 0o444, region: 'eu-west-1', roleArn: 'arn:aws:iam::123456789012:role/r', items: [{ ref: ARN, file: 'secret' }] },
    });
  });

  it.each(['/nodejs/bin', '/app', '/etc', '/usr/lib', '/tmp'])('mounts the volume at %s in the app and at its own path in the fetcher', (path) => {
    const p = pod({ [`${PREFIX}mount-path`]: path });
    const { pod: out } = mutate(p, request(p), CONFIG);
    const init = out.spec.initContainers![0]!;
    expect(init.volumeMounts).toEqual([{ name: 'secret-vol', mountPath: FETCHER_DIR }]);
    expect(parseSpec(init.env!.find((e) => e.name === SPEC_ENV)!.value!)).toMatchObject({ spec: { dir: FETCHER_DIR } });
    expect(out.spec.containers[0]!.volumeMounts).toContainEqual({ name: 'secret-vol', mountPath: path });
  });

  it('is restricted-compliant', () => {
    const p = pod({});
    const init = mutate(p, request(p), CONFIG).pod.spec.initContainers![0]!;
    expect(init.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(init.terminationMessagePolicy).toBe('FallbackToLogsOnError');
  });

  it('picks names that do not clash', () => {
    const p = pod(
      {},
      {
        volumes: [{ name: 'secret-vol', emptyDir: {} }, { name: 'secret-vol-2', emptyDir: {} }],
        containers: [{ name: 'secret-fetcher', image: 'busybox' }],
      },
    );
    const { pod: out } = mutate(p, request(p), CONFIG);
    expect(out.spec.volumes!.map((v) => v.name)).toEqual(['secret-vol', 'secret-vol-2', 'secret-vol-3']);
    expect(out.spec.initContainers![0]!.name).toBe('secret-fetcher-2');
    expect(out.spec.containers[0]!.volumeMounts).toEqual([{ name: 'secret-vol-3', mountPath: '/tmp' }]);
  });

  it('mounts into the named containers only, init containers included', () => {
    const p = pod(
      { [`${PREFIX}containers`]: 'web,migrate' },
      {
        initContainers: [{ name: 'migrate', image: 'busybox' }, { name: 'other', image: 'busybox' }],
        containers: [{ name: 'web', image: 'busybox' }, { name: 'proxy', image: 'busybox' }],
      },
    );
    const { pod: out } = mutate(p, request(p), CONFIG);
    const mounted = (cs: Pod['spec']['containers']) => cs.filter((c) => c.volumeMounts?.length).map((c) => c.name);
    expect(mounted(out.spec.containers)).toEqual(['web']);
    expect(mounted(out.spec.initContainers!)).toEqual(['secret-fetcher', 'migrate']);
  });

  it('copies IRSA variables and the token mount from the app container', () => {
    const p = pod(
      {},
      {
        containers: [
          { name: 'plain', image: 'busybox' },
          {
            name: 'app',
            image: 'busybox',
            env: [
              { name: 'OTHER', value: 'x' },
              { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/app' },
              { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' },
            ],
            volumeMounts: [
              { name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount', readOnly: true },
              { name: 'data', mountPath: '/data' },
            ],
          },
        ],
      },
    );
    const init = mutate(p, request(p), CONFIG).pod.spec.initContainers![0]!;
    expect(init.env!.map((e) => e.name)).toEqual([
      'SECRET_INJECTOR_SPEC',
      'SECRET_INJECTOR_POD_NAME',
      'SECRET_INJECTOR_POD_NAMESPACE',
      'AWS_ROLE_ARN',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
    ]);
    expect(init.volumeMounts).toEqual([
      { name: 'secret-vol', mountPath: '/aws-secret-injector' },
      { name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount', readOnly: true },
    ]);
  });

  it('copies a token mounted as a single file (subPath)', () => {
    const token = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token';
    const mount = { name: 'eks-pod-identity-token', mountPath: token, subPath: 'eks-pod-identity-token', readOnly: true };
    const p = pod(
      {},
      {
        containers: [
          {
            name: 'app',
            image: 'busybox',
            env: [
              { name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: 'http://169.254.170.23/v1/credentials' },
              { name: 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', value: token },
            ],
            volumeMounts: [{ name: 'other', mountPath: '/var/run/secrets' }, mount],
          },
        ],
      },
    );
    expect(findIdentity(p, request(p)).mounts).toEqual([mount]);
  });

  it('takes the identity from one container, never a mix', () => {
    const p = pod(
      {},
      {
        containers: [
          { name: 'a', image: 'busybox', env: [{ name: 'AWS_REGION', value: 'eu-west-1' }] },
          {
            name: 'b',
            image: 'busybox',
            env: [
              { name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: 'http://169.254.170.23/v1/credentials' },
              { name: 'AWS_REGION', value: 'us-east-1' },
            ],
          },
        ],
      },
    );
    expect(findIdentity(p, request(p))).toMatchObject({ from: 'b', env: [{ name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI' }, { name: 'AWS_REGION', value: 'us-east-1' }] });
  });

  it('lets the fetcher use node credentials only when the webhook allows it, visibly in its env', () => {
    // An app container cannot opt its fetcher in: the variable is not one the webhook copies.
    const p = pod({}, { containers: [{ name: 'app', image: 'busybox', env: [{ name: NODE_CREDENTIALS_ENV, value: 'allow' }] }] });
    const names = (config: typeof CONFIG) => mutate(p, request(p), config).pod.spec.initContainers![0]!.env!.map((e) => e.name);
    expect(names(CONFIG)).not.toContain(NODE_CREDENTIALS_ENV);
    const env = mutate(p, request(p), { ...CONFIG, nodeCredentials: 'allow' }).pod.spec.initContainers![0]!.env!;
    expect(env.filter((e) => e.name === NODE_CREDENTIALS_ENV)).toEqual([{ name: NODE_CREDENTIALS_ENV, value: 'allow' }]);
  });
});

describe('mutate: the fetcher\'s network', () => {
  const network = {
    ...CONFIG,
    fetcherNetworkEnv: [
      { name: 'HTTPS_PROXY' as const, value: 'http://proxy.internal:3128' },
      { name: 'AWS_ENDPOINT_URL_SECRETS_MANAGER' as const, value: 'https://sm.example' },
    ],
    fetcherCaBundle: { configMap: 'corp-trust', key: 'trust-bundle.pem' },
  };

  it('gives the fetcher, and no app container, the network variables and the CA bundle mounted read-only', () => {
    const p = pod({}, { volumes: [{ name: 'secret-fetcher-ca', emptyDir: {} }] });
    const out = mutate(p, request(p), network).pod;
    const init = out.spec.initContainers![0]!;
    const env = Object.fromEntries(init.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      HTTPS_PROXY: 'http://proxy.internal:3128',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: 'https://sm.example',
      NODE_EXTRA_CA_CERTS: `${CA_BUNDLE_DIR}/ca.crt`,
    });
    expect(init.volumeMounts).toContainEqual({ name: 'secret-fetcher-ca-2', mountPath: CA_BUNDLE_DIR, readOnly: true });
    expect(out.spec.volumes).toContainEqual({
      name: 'secret-fetcher-ca-2',
      configMap: { name: 'corp-trust', items: [{ key: 'trust-bundle.pem', path: 'ca.crt' }], defaultMode: 0o444 },
    });
    expect(out.spec.containers[0]!.env).toBeUndefined();
    expect(out.spec.containers[0]!.volumeMounts!.map((m) => m.name)).toEqual(['secret-vol']);
  });

  it('adds nothing without network settings', () => {
    const p = pod({});
    const out = mutate(p, request(p), CONFIG).pod;
    expect(out.spec.volumes!.map((v) => v.name)).toEqual(['secret-vol']);
    expect(out.spec.initContainers![0]!.env!.map((e) => e.name)).toEqual([SPEC_ENV, 'SECRET_INJECTOR_POD_NAME', 'SECRET_INJECTOR_POD_NAMESPACE']);
  });

  it('keeps the CA bundle apart from a mount-path where the CA bundle goes: the fetcher mounts the secrets at its own path', () => {
    const p = pod({ [`${PREFIX}mount-path`]: `${CA_BUNDLE_DIR}/x` });
    const init = mutate(p, request(p), { ...CONFIG, fetcherCaBundle: { configMap: 'corp-ca', key: 'ca.crt' } }).pod.spec.initContainers![0]!;
    expect(init.volumeMounts!.map((m) => m.mountPath)).toEqual([FETCHER_DIR, CA_BUNDLE_DIR]);
  });
});

describe('the secrets volume and the app\'s temporary files', () => {
  it('by default has no sizeLimit, so the app\'s own files in /tmp never get the pod evicted, and nothing is warned', () => {
    const p = pod({});
    const { pod: out, warnings } = mutate(p, request(p), CONFIG);
    expect(out.spec.volumes).toEqual([{ name: 'secret-vol', emptyDir: { medium: 'Memory' } }]);
    expect(warnings).toEqual([]);
  });

  it.each([
    ['/tmp', {}, '(/tmp)'],
    ['/var/tmp', { [`${PREFIX}mount-path`]: '/var/tmp' }, '(/var/tmp)'],
    ['a TMPDIR inside the mount', { [`${PREFIX}mount-path`]: '/scratch' }, '(/scratch/t)'],
  ])('with a sizeLimit set, warns when the volume is a temporary directory: %s', (_, annotations, where) => {
    const p = pod(annotations, { containers: [{ name: 'app', image: 'busybox', env: [{ name: 'TMPDIR', value: '/scratch/t/' }] }] });
    const { pod: out, warnings } = mutate(p, request(p), { ...CONFIG, volumeSizeLimit: '16Mi' });
    expect(out.spec.volumes![0]!.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Mi' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`holds the app's temporary files ${where}, which count against its sizeLimit of 16Mi: past it the pod is evicted; set ${PREFIX}mount-path`);
    expect(warnings[0]!.length).toBeLessThanOrEqual(250);
  });

  it('with a sizeLimit set and a path of its own, nothing is warned', () => {
    const p = pod({ [`${PREFIX}mount-path`]: '/var/run/app-secrets' });
    expect(mutate(p, request(p), { ...CONFIG, volumeSizeLimit: '16Mi' }).warnings).toEqual([]);
  });
});

describe('validateResources: pod-level resources leave room for the fetcher', () => {
  const fetcher = CONFIG.fetcherResources; // requests 10m/32Mi, limits 200m/80Mi
  it.each([
    [{ limits: { memory: '32Mi' } }, ['spec.resources.limits.memory: "32Mi" is below the fetcher\'s memory limit of 80Mi']],
    [{ requests: { cpu: '5m', memory: '16Mi' } }, ['spec.resources.requests.cpu: "5m" is below the fetcher\'s cpu request of 10m', 'spec.resources.requests.memory: "16Mi" is below']],
  ])('refuses %j, naming what to raise', (resources, messages) => {
    const problems = validateResources(pod({}, { resources }), CONFIG);
    expect(problems.map((p) => p.code)).toEqual(messages.map(() => 'WEBHOOK_UNSUPPORTED_POD'));
    problems.forEach((p, i) => expect(`${p.subject}: ${p.message}`).toContain(messages[i]));
  });
  it.each([
    [undefined],
    [{ limits: { memory: '80Mi', cpu: '1' }, requests: { memory: '0.5Gi', cpu: '10m' } }],
    [{ limits: { 'hugepages-2Mi': '2Mi' } }],
  ])('accepts %j', (resources) => {
    expect(validateResources(pod({}, resources ? { resources } : {}), CONFIG)).toEqual([]);
    expect(fetcher.limits.memory).toBe('80Mi');
  });
  it('follows the configured fetcher resources; a fetcher without a limit fits any pod limit', () => {
    const config = { ...CONFIG, fetcherResources: { requests: { cpu: '10m', memory: '32Mi' }, limits: {} } };
    expect(validateResources(pod({}, { resources: { limits: { memory: '32Mi' } } }), config)).toEqual([]);
  });
});

describe('validateTarget', () => {
  it.each([
    [{ [`${PREFIX}containers`]: 'nope' }, {}, 'names container "nope", which the pod does not have (containers: app)'],
    [{}, { containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'cache', mountPath: '/tmp/' }] }], volumes: [{ name: 'cache', configMap: { name: 'c' } }] }, '/tmp is already a mount of volume "cache" (configMap) in container "app"; the secrets can share only an emptyDir there: set secrets.k8s.aws/mount-path to a free path such as /var/run/app-secrets'],
    [{ [`${PREFIX}mount-path`]: '/var/run/secrets/eks.amazonaws.com/serviceaccount', [`${PREFIX}containers`]: 'app' }, {
      containers: [
        { name: 'app', image: 'busybox' },
        { name: 'b', image: 'busybox', env: [{ name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' }], volumeMounts: [{ name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount' }] },
      ],
    }, 'where the AWS token volume "aws-iam-token" is mounted'],
    [{ [`${PREFIX}mount-path`]: '/var/run/secrets/eks.amazonaws.com/serviceaccount/app', [`${PREFIX}containers`]: 'app' }, {
      containers: [
        { name: 'app', image: 'busybox' },
        { name: 'b', image: 'busybox', env: [{ name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' }], volumeMounts: [{ name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount' }] },
      ],
    }, 'where the AWS token volume "aws-iam-token" is mounted'],
    [{}, { os: { name: 'windows' } }, 'windows pods'],
    [{ [`${PREFIX}mount-path`]: '/var/run/secrets/kubernetes.io/serviceaccount/aws' }, {
      containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'kube-api-access-x', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }] }],
      volumes: [{ name: 'kube-api-access-x', projected: { sources: [] } }],
    }, '/var/run/secrets/kubernetes.io/serviceaccount/aws is inside /var/run/secrets/kubernetes.io/serviceaccount, a read-only mount of volume "kube-api-access-x" in container "app"'],
    [{ [`${PREFIX}mount-path`]: '/data/secrets' }, {
      containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data/', readOnly: true }] }],
      volumes: [{ name: 'data', emptyDir: {} }],
    }, '/data/secrets is inside /data/, a read-only mount of volume "data"'],
    [{ [`${PREFIX}mount-path`]: '/dev/xvdf' }, { containers: [{ name: 'app', image: 'busybox', volumeDevices: [{ name: 'raw', devicePath: '/dev/xvdf' }] }] }, '/dev/xvdf is the device path of volume "raw" in container "app"'],
  ])('%j + %j is refused: %s', (annotations, spec, message) => {
    const p = pod(annotations, spec as Partial<Pod['spec']>);
    expect(validateTarget(p, request(p)).problems.map((x) => x.message).join('\n')).toContain(message);
  });

  it('lets a mount-path inside a writable mount, or around a read-only one, through', () => {
    const p = pod(
      { [`${PREFIX}mount-path`]: '/data/secrets' },
      {
        containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'conf', mountPath: '/data/secrets/conf' }] }],
        volumes: [{ name: 'data', emptyDir: {} }, { name: 'conf', configMap: { name: 'c' } }],
      },
    );
    expect(validateTarget(p, request(p)).problems).toEqual([]);
  });

  it('refuses a pod whose annotations the status annotation would take over the apiserver limit', () => {
    // 262144 bytes in all, names and values: the apiserver's limit, reached before the webhook adds 30.
    const full = pod({ note: 'x'.repeat(256 * 1024 - 4 - `${PREFIX}secret-arn`.length - ARN.length) });
    expect(validateTarget(full, request(full)).problems).toEqual([
      {
        code: 'WEBHOOK_UNSUPPORTED_POD',
        subject: 'metadata.annotations',
        message: `total 262174 bytes with ${PREFIX}status: injected added, over the apiserver's limit of 262144; shorten the pod's annotations`,
      },
    ]);
    const fits = pod({ note: 'x'.repeat(256 * 1024 - 4 - `${PREFIX}secret-arn`.length - ARN.length - 30) });
    expect(validateTarget(fits, request(fits)).problems).toEqual([]);
  });

  it('warns when a secret name has no region anywhere', () => {
    const p = pod({ [`${PREFIX}secret-arn`]: 'db-password' });
    expect(validateTarget(p, request(p)).warnings.join()).toContain('without a region');
    const q = pod({ [`${PREFIX}secret-arn`]: 'db-password', [`${PREFIX}region`]: 'us-east-1' });
    expect(validateTarget(q, request(q)).warnings).toEqual([]);
  });

  it('says that AWS_REGION from envFrom does not reach the fetcher', () => {
    const envFrom = [{ configMapRef: { name: 'aws' } }];
    const p = pod({ [`${PREFIX}secret-arn`]: 'db-password' }, { containers: [{ name: 'app', image: 'busybox', envFrom }] });
    const [warning] = validateTarget(p, request(p)).warnings;
    expect(warning).toBe(`secret "db-password" has no region; AWS_REGION from envFrom (container "app") is not passed to the fetcher: set ${PREFIX}region`);
    // Through mutate too: the fetcher gets the env of the container, never its envFrom.
    expect(mutate(p, request(p), CONFIG).pod.spec.initContainers![0]!.envFrom).toBeUndefined();
  });
});

describe('checkPod', () => {
  it.each([
    [null, 'no pod object'],
    [{ spec: 1 }, 'spec: must be an object'],
    [{ spec: {} }, 'must list at least one container'],
    [{ spec: { containers: [{}] } }, 'spec.containers: must be a list of objects with a string "name"'],
    [{ spec: { containers: [{ name: 'a', volumeMounts: {} }] } }, 'spec.containers[0].volumeMounts'],
    [{ spec: { containers: [{ name: 'a', env: [{ value: 'x' }] }] } }, 'spec.containers[0].env'],
    [{ spec: { containers: [{ name: 'a' }], volumes: 'x' } }, 'spec.volumes'],
  ])('%j: %s', (obj, message) => {
    expect(checkPod(obj).map((p) => `${p.subject}: ${p.message}`).join('\n')).toContain(message);
  });

  it('accepts a minimal pod', () => expect(checkPod({ spec: { containers: [{ name: 'a' }] } })).toEqual([]));
});

describe('a hardened pod: the app\'s own emptyDir at the mount path', () => {
  const hardened = (medium: Record<string, string>, extra: Partial<Pod['spec']> = {}, annotations: Record<string, string> = {}) =>
    pod(annotations, {
      containers: [{ name: 'app', image: 'busybox', securityContext: { readOnlyRootFilesystem: true }, volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] }],
      volumes: [{ name: 'tmp', emptyDir: medium }],
      ...extra,
    });

  it.each([
    [{ medium: 'Memory' }, []],
    [{}, ['the secrets go into volume "tmp", the app\'s emptyDir at /tmp, which is on the node\'s disk: they stay there until the pod is deleted; set medium: Memory on that emptyDir, or secrets.k8s.aws/mount-path to a free path']],
  ])('emptyDir %j: the fetcher writes into it, nothing else changes for the app', (medium, warnings) => {
    const p = hardened(medium);
    const fit = validateTarget(p, request(p));
    expect(fit.problems).toEqual([]);
    expect(fit.warnings).toEqual(warnings);
    for (const w of fit.warnings) expect(w.length).toBeLessThanOrEqual(250);
    const { pod: out, warnings: rendered } = mutate(p, request(p), CONFIG);
    expect(rendered).toEqual([]);
    expect(out.spec.volumes).toEqual([{ name: 'tmp', emptyDir: medium }]);
    expect(out.spec.containers[0]!.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(out.spec.initContainers![0]!.volumeMounts).toEqual([{ name: 'tmp', mountPath: FETCHER_DIR }]);
  });

  it('keeps the volume\'s own sizeLimit, with no warning about the configured one', () => {
    const p = hardened({ medium: 'Memory', sizeLimit: '8Mi' });
    const { pod: out, warnings } = mutate(p, request(p), { ...CONFIG, volumeSizeLimit: '1Mi' });
    expect(out.spec.volumes).toEqual([{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } }]);
    expect(warnings).toEqual([]);
  });

  it('mounts the same subPath in the fetcher and refresher, and the volume in target containers without it', () => {
    const p = pod({ [`${PREFIX}refresh`]: '5m' }, {
      containers: [
        { name: 'app', image: 'busybox', volumeMounts: [{ name: 'scratch', mountPath: '/tmp', subPath: 'tmp' }] },
        { name: 'side', image: 'busybox' },
      ],
      volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory' } }],
    });
    expect(validateTarget(p, request(p)).problems).toEqual([]);
    const { pod: out } = mutate(p, request(p), CONFIG);
    for (const init of out.spec.initContainers!) expect(init.volumeMounts).toEqual([{ name: 'scratch', mountPath: FETCHER_DIR, subPath: 'tmp' }]);
    expect(out.spec.containers[1]!.volumeMounts).toEqual([{ name: 'scratch', mountPath: '/tmp', subPath: 'tmp' }]);
    expect(out.spec.volumes).toHaveLength(1);
  });

  it.each([
    ['two emptyDirs', { containers: [
      { name: 'app', image: 'busybox', volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] },
      { name: 'b', image: 'busybox', volumeMounts: [{ name: 'other', mountPath: '/tmp' }] },
    ], volumes: [{ name: 'tmp', emptyDir: {} }, { name: 'other', emptyDir: {} }] }, {}, '/tmp is a mount of volume "tmp" in container "app" but of volume "other" in container "b"; the secrets can go into one emptyDir only: mount the same one in both, or set secrets.k8s.aws/mount-path to a free path such as /var/run/app-secrets'],
    ['a PVC', { volumes: [{ name: 'tmp', persistentVolumeClaim: { claimName: 'c' } }] }, {}, '/tmp is already a mount of volume "tmp" (persistentVolumeClaim) in container "app"; the secrets can share only an emptyDir there: set secrets.k8s.aws/mount-path to a free path such as /var/run/app-secrets'],
    ['subPathExpr', { containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'tmp', mountPath: '/tmp', subPathExpr: '$(POD)' }] }] }, {}, 'with subPathExpr in container "app", which the fetcher cannot expand'],
    ['a container left out', { containers: [
      { name: 'app', image: 'busybox', volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] },
      { name: 'logs', image: 'busybox', volumeMounts: [{ name: 'tmp', mountPath: '/scratch' }] },
    ] }, { [`${PREFIX}containers`]: 'app' }, '/tmp is volume "tmp", which container "logs" mounts too though secrets.k8s.aws/containers leaves it out: it would see the secrets; add it to secrets.k8s.aws/containers, or set secrets.k8s.aws/mount-path to a free path such as /var/run/app-secrets'],
  ])('%s: refused with the fix', (_what, spec, annotations, message) => {
    const p = hardened({}, spec as Partial<Pod['spec']>, annotations);
    const problems = validateTarget(p, request(p)).problems;
    expect(problems.map((x) => `${x.code} ${x.subject}: ${x.message}`)).toEqual([expect.stringContaining(message)]);
    expect(problems[0]!.code).toBe('WEBHOOK_MOUNT_CLASH');
  });

  it('offers a path the pod does not use', () => {
    const p = pod({}, {
      containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'c', mountPath: '/tmp' }, { name: 'd', mountPath: '/var/run/app-secrets' }] }],
      volumes: [{ name: 'c', configMap: { name: 'c' } }, { name: 'd', emptyDir: {} }],
    });
    expect(validateTarget(p, request(p)).problems[0]!.message).toContain('such as /var/run/app-secrets-2');
  });
});

describe('signal-on-refresh', () => {
  const SIG = { [`${PREFIX}refresh`]: '1m', [`${PREFIX}signal-on-refresh`]: 'app:SIGUSR1' };
  const ids = { securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 2000 } };
  const messages = (p: Pod) => validateSignal(p, request(p)).map((x) => `${x.code} ${x.subject}: ${x.message}`);

  it('shares the process namespace, runs the fetcher and the refresher as the app, and marks the app container', () => {
    const p = pod(SIG, { ...ids, containers: [{ name: 'app', image: 'busybox' }, { name: 'other', image: 'busybox' }] });
    expect(messages(p)).toEqual([]);
    const { pod: out, spec } = mutate(p, request(p), CONFIG);
    expect(out.spec.shareProcessNamespace).toBe(true);
    for (const c of out.spec.initContainers!.slice(0, 2)) {
      expect(c.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 2000, capabilities: { drop: ['ALL'] }, allowPrivilegeEscalation: false });
    }
    expect(out.spec.containers[0]!.env).toEqual([{ name: SIGNAL_TARGET_ENV, value: 'app' }]);
    expect(out.spec.containers[1]!.env).toBeUndefined();
    expect(spec.refresh).toEqual({ intervalSeconds: 60, signal: { container: 'app', signal: 'SIGUSR1' } });
  });

  it("takes the container's own uid and gid over the pod's", () => {
    const p = pod(SIG, { securityContext: { runAsUser: 1, runAsGroup: 1 }, containers: [{ name: 'app', image: 'busybox', securityContext: { runAsUser: 4000, runAsGroup: 5000 } }] });
    const { pod: out } = mutate(p, request(p), CONFIG);
    expect(out.spec.initContainers![1]!.securityContext).toMatchObject({ runAsUser: 4000, runAsGroup: 5000 });
  });

  it('leaves pods without it as they were: no shared namespace, the fetcher uid', () => {
    const p = pod({ [`${PREFIX}refresh`]: '1m' }, ids);
    const { pod: out } = mutate(p, request(p), CONFIG);
    expect(out.spec).not.toHaveProperty('shareProcessNamespace');
    expect(out.spec.initContainers![1]!.securityContext!.runAsUser).toBe(CONFIG.fetcherUid);
    expect(out.spec.containers[0]!.env).toBeUndefined();
  });

  it.each<[string, Partial<Pod['spec']>, Record<string, string>, string]>([
    ['no uid', { securityContext: { runAsGroup: 1 } }, {}, 'WEBHOOK_UNSUPPORTED_POD secrets.k8s.aws/signal-on-refresh: the refresher signals container "app" as its own uid and gid, with no added capability, so the pod must state them: set securityContext.runAsUser and runAsGroup on the container or the pod (runAsUser is not set)'],
    ['no gid', { securityContext: { runAsUser: 1000 } }, {}, '(runAsGroup is not set)'],
    ['root', { securityContext: { runAsUser: 0, runAsGroup: 0 } }, {}, 'container "app" runs as root (runAsUser 0), and the fetcher and refresher never do'],
    ['an unshared namespace on purpose', { ...ids, shareProcessNamespace: false }, {}, 'and the pod sets spec.shareProcessNamespace: false'],
    ['the node PID namespace', { ...ids, hostPID: true }, {}, "the pod uses the node's (spec.hostPID: true)"],
    ['a container the pod lacks', ids, { [`${PREFIX}signal-on-refresh`]: 'web' }, 'WEBHOOK_UNKNOWN_CONTAINER secrets.k8s.aws/signal-on-refresh: names container "web", which the pod does not have (containers: app)'],
    ['an init container', { ...ids, initContainers: [{ name: 'migrate', image: 'busybox' }] }, { [`${PREFIX}signal-on-refresh`]: 'migrate' }, 'is an init container; name an app container'],
    ['a container without the volume', { ...ids, containers: [{ name: 'app', image: 'busybox' }, { name: 'web', image: 'busybox' }] }, { [`${PREFIX}containers`]: 'web' }, 'which secrets.k8s.aws/containers leaves without the secrets volume'],
  ])('refuses %s, naming the annotation and the reason', (_name, spec, extra, message) => {
    expect(messages(pod({ ...SIG, ...extra }, spec)).join('\n')).toContain(message);
  });
});
