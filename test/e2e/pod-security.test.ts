// A namespace enforcing Pod Security "restricted" admits a restricted-compliant annotated pod after
// our mutation: the init container we add must itself be restricted-compliant.

import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';

function restrictedPod(name: string, compliant: boolean): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      annotations: { 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:restricted-AbCdEf' },
    },
    spec: {
      securityContext: compliant ? { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } } : {},
      containers: [
        {
          name: 'app',
          image: 'busybox',
          securityContext: compliant ? { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } : {},
        },
      ],
    },
  };
}

describeE2E('Pod Security restricted', () => {
  useWebhook();
  const namespace = useNamespace('restricted', {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });

  it('admits a restricted-compliant annotated pod after mutation', async () => {
    const core = e2e().cluster.kubeConfig.makeApiClient(CoreV1Api);
    const stored = await core.createNamespacedPod({ namespace: namespace(), body: restrictedPod('compliant', true) });
    expect(stored.spec?.initContainers?.[0]?.args).toEqual(['fetch']);
    expect(stored.metadata?.annotations?.['secrets.k8s.aws/status']).toBe('injected');
  });

  it('still rejects a non-compliant pod (the namespace really enforces)', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], {
      input: JSON.stringify(restrictedPod('not-compliant', false)),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/violates PodSecurity "restricted/);
  });
});
