// `kubectl apply --dry-run=server` goes through admission, our webhook included: it returns the
// mutated pod and stores nothing.

import { expect, it } from 'vitest';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';

describeE2E('kubectl apply --dry-run=server', () => {
  useWebhook();
  const namespace = useNamespace('dryrun');

  it('returns the mutated pod and stores nothing', async () => {
    const { cluster } = e2e();
    const ns = namespace();
    const manifest = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'preview',
        annotations: { 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:preview-AbCdEf' },
      },
      spec: { containers: [{ name: 'app', image: 'busybox' }] },
    });
    const out = await cluster.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-', '-o', 'json'], { input: manifest });
    const pod = JSON.parse(out.stdout);
    expect(pod.spec.initContainers).toHaveLength(1);
    expect(pod.spec.initContainers[0].args).toEqual(['fetch']);
    expect(pod.spec.containers[0].volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/tmp' }));
    expect(pod.spec.volumes).toContainEqual(expect.objectContaining({ emptyDir: expect.objectContaining({ medium: 'Memory' }) }));

    const get = await cluster.kubectl(['get', 'pod', 'preview', '-n', ns], { allowFailure: true });
    expect(get.code).not.toBe(0);
    expect(get.stderr).toMatch(/NotFound|not found/);
  });
});
