// What a user sees in kubectl: invalid annotations are denied with our message naming each bad
// annotation; an unknown annotation under our prefix is admitted with our warning.

import { expect, it } from 'vitest';
import { WEBHOOK_NAME } from '../helpers/webhook-process.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';

const MEMORY = DEFAULT_MUTATION_CONFIG.fetcherResources.limits.memory;

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf';

function pod(name: string, annotations: Record<string, string>) {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  });
}

describeE2E('annotation errors and warnings in kubectl', () => {
  useWebhook();
  const namespace = useNamespace('annotations');

  it('shows our denial message naming every invalid annotation', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], {
      input: pod('invalid', {
        'secrets.k8s.aws/secret-arn': 'not-an-arn:::',
        'secrets.k8s.aws/mode': '999',
        'secrets.k8s.aws/mount-path': 'relative/path',
      }),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`admission webhook "${WEBHOOK_NAME}" denied the request`);
    expect(out.stderr).toContain('secrets.k8s.aws/secret-arn');
    expect(out.stderr).toContain('secrets.k8s.aws/mode');
    expect(out.stderr).toContain('secrets.k8s.aws/mount-path');
  });

  it('names the parse and validate problems together in one denial', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], {
      input: pod('all-at-once', {
        'secrets.k8s.aws/secret-arn': ARN,
        'secrets.k8s.aws/mode': '999',
        'secrets.k8s.aws/refresh': '5s',
        'secrets.k8s.aws/containers': 'nope',
      }),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('aws-secret-injector (parse, validate): 3 problems: ');
    expect(out.stderr).toContain('secrets.k8s.aws/mode: "999"');
    expect(out.stderr).toContain('secrets.k8s.aws/refresh: "5s"');
    expect(out.stderr).toContain('secrets.k8s.aws/containers: names container "nope"');
  });

  it('names a bad template, JSON Pointer and whole path, and a signal the pod cannot take, in one denial', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], {
      input: pod('files', {
        'secrets.k8s.aws/secrets': [
          `- {ref: ${ARN}, file: db.url, template: "postgresql://{{ username }}:{{ password }@{{ host }}"}`,
          `- {ref: ${ARN}, file: pw, key: /db/pass~2word}`,
          '- {ref: "!prod/*", file: conf}',
        ].join('\n'),
        'secrets.k8s.aws/refresh': '1m',
        'secrets.k8s.aws/signal-on-refresh': 'app',
      }),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('entry 1: template placeholder "{{ password }@{{ host }}": "password }@{{ host" is not a path');
    expect(out.stderr).toContain('entry 2: key: JSON Pointer "/db/pass~2word" has a "~" not followed by 0 or 1');
    expect(out.stderr).toContain('entry 3: whole path "!prod/*" starts with "!"');
    expect(out.stderr).toContain('secrets.k8s.aws/signal-on-refresh: the refresher signals container "app" as its own uid and gid');
  });

  it('pod-level resources: below the fetcher\'s, our denial names them; with room, the injected pod is valid to the apiserver', async () => {
    const { cluster } = e2e();
    const withResources = (name: string, memory: string) => {
      const manifest = JSON.parse(pod(name, { 'secrets.k8s.aws/secret-arn': ARN }));
      manifest.spec.resources = { requests: { cpu: '50m', memory }, limits: { cpu: '500m', memory } };
      return JSON.stringify(manifest);
    };
    const short = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], { input: withResources('tight', '32Mi'), allowFailure: true });
    expect(short.code).not.toBe(0);
    expect(short.stderr).toContain(`aws-secret-injector (validate): spec.resources.limits.memory: "32Mi" is below the fetcher\'s memory limit of ${MEMORY}`);
    const roomy = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-', '-o', 'json'], { input: withResources('roomy', '128Mi') });
    const stored = JSON.parse(roomy.stdout);
    expect(stored.spec.initContainers[0].resources.limits.memory).toBe(MEMORY);
    expect(stored.spec.resources.limits.memory).toBe('128Mi');
  });

  it('denies a mount path that clashes with an existing mount other than an emptyDir, naming the fix', async () => {
    const { cluster } = e2e();
    const manifest = JSON.parse(pod('clash', { 'secrets.k8s.aws/secret-arn': ARN }));
    manifest.spec.volumes = [{ name: 'scratch', configMap: { name: 'scratch' } }];
    manifest.spec.containers[0].volumeMounts = [{ name: 'scratch', mountPath: '/tmp' }];
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], {
      input: JSON.stringify(manifest),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('denied the request');
    expect(out.stderr).toContain('set secrets.k8s.aws/mount-path to a free path such as /var/run/app-secrets');
  });

  it('a token mounted where the fetcher mounts its volume: our denial names it, not the apiserver\'s duplicate mountPath after the patch', async () => {
    const { cluster } = e2e();
    const manifest = JSON.parse(pod('token-clash', { 'secrets.k8s.aws/secret-arn': ARN }));
    manifest.spec.volumes = [{ name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } }];
    manifest.spec.containers[0].env = [
      { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/app' },
      { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/aws-secret-injector/token' },
    ];
    manifest.spec.containers[0].volumeMounts = [{ name: 'aws-iam-token', mountPath: '/aws-secret-injector', readOnly: true }];
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], { input: JSON.stringify(manifest), allowFailure: true });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`admission webhook "${WEBHOOK_NAME}" denied the request`);
    expect(out.stderr).toContain('spec.containers[0].env[AWS_WEB_IDENTITY_TOKEN_FILE]: "/aws-secret-injector/token" is read through mount "/aws-secret-injector"');
    expect(out.stderr).not.toContain('must be unique');
  });

  it('a token inside a hostPath: denied, the hostPath never reaches the fetcher', async () => {
    const { cluster } = e2e();
    const manifest = JSON.parse(pod('token-hostpath', { 'secrets.k8s.aws/secret-arn': ARN }));
    manifest.spec.volumes = [{ name: 'node-tokens', hostPath: { path: '/var/lib/tokens' } }];
    manifest.spec.containers[0].env = [{ name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/tokens/app' }];
    manifest.spec.containers[0].volumeMounts = [{ name: 'node-tokens', mountPath: '/tokens' }];
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-'], { input: JSON.stringify(manifest), allowFailure: true });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('volume "node-tokens", a hostPath, which the fetcher never mounts');
  });

  it('prints our warning for an unknown annotation and admits the pod', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-', '-o', 'json'], {
      input: pod('unknown', { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/mount-pth': '/secrets' }),
    });
    expect(out.stderr).toMatch(/^Warning: .*secrets\.k8s\.aws\/mount-pth/m);
    expect(out.stderr).toContain('mount-path');
    expect(JSON.parse(out.stdout).spec.initContainers).toHaveLength(1);
  });
});
