// The kubelet expands `$(VAR)` and `$$` in env values. The fetcher's spec travels in its env, and a
// JSON key may hold a `$`: on a real node the fetcher must look up the key exactly as annotated.

import type { V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { createSecret, describeNode, nodeSuite, podWhen, printed, running, useAwsFront, useNamespace, withIrsa } from './context.js';

describeNode('env expansion on a real node', () => {
  const namespace = useNamespace('dollar');
  useAwsFront();

  it('a key with $$ and $(VAR) reaches the fetcher literally', async () => {
    const { core, images } = nodeSuite();
    const ns = namespace();
    // Unescaped, the kubelet would turn `a$$b` into `a$b` (another key, another value) and
    // `$(KUBERNETES_SERVICE_PORT)` into the apiserver's port (a key the secret does not have).
    const arn = await createSecret(`dollar-${ns}`, JSON.stringify({ 'a$$b': 'right-1', 'a$b': 'wrong-1', '$(KUBERNETES_SERVICE_PORT)': 'right-2' }));
    const pod: V1Pod = withIrsa({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'app',
        annotations: {
          'secrets.k8s.aws/secrets': `- ref: ${arn}\n  key: a$$b\n  file: one\n- ref: ${arn}\n  key: $(KUBERNETES_SERVICE_PORT)\n  file: two`,
        },
      },
      spec: {
        terminationGracePeriodSeconds: 0,
        containers: [
          {
            name: 'app',
            image: images.busybox,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', 'echo "one: $(cat /tmp/one)"; echo "two: $(cat /tmp/two)"; exec sleep 3600'],
          },
        ],
      },
    });
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const ran = await podWhen(ns, 'app', 'app running', running('app'));
    expect(ran.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    const out = await printed(ns, 'app', 'app', /^two: /m);
    expect(out).toContain('one: right-1');
    expect(out).toContain('two: right-2');
  });
});
