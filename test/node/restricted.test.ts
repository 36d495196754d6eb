// Pod Security "restricted" on a real node: a restricted-compliant annotated pod is admitted
// after our mutation (the fetcher we add is itself compliant) and runs.

import type { V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { createSecret, describeNode, nodeSuite, podWhen, printed, running, useAwsFront, useNamespace, withIrsa } from './context.js';

const VALUE = 'restricted value';

describeNode('Pod Security restricted on a real node', () => {
  const namespace = useNamespace('restricted', {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });
  useAwsFront();

  it('the mutated pod is admitted and its app prints the secret', async () => {
    const { core, images, node } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`restricted-${ns}`, VALUE);
    const pod: V1Pod = withIrsa({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', annotations: { 'secrets.k8s.aws/secret-arn': arn } },
      spec: {
        terminationGracePeriodSeconds: 0,
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'app',
            image: images.busybox,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', 'echo "secret: $(cat /tmp/secret)"; exec sleep 3600'],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    });
    const stored = await core.createNamespacedPod({ namespace: ns, body: pod });
    expect(stored.metadata?.annotations?.['secrets.k8s.aws/status']).toBe('injected');
    const ran = await podWhen(ns, 'app', 'app running', running('app'));
    // On the pod network (restricted forbids the host's).
    expect(ran.status?.podIP).not.toBe(node.gateway);
    expect(ran.status?.podIP?.split('.').slice(0, 3)).toEqual(node.gateway.split('.').slice(0, 3));
    expect(ran.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    const out = await printed(ns, 'app', 'app', /^secret: /m);
    expect(out).toContain(`secret: ${VALUE}`);
  });
});
