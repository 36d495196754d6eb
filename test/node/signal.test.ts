// signal-on-refresh on a real node, under Pod Security "restricted": an app that counts SIGHUPs
// and re-reads its file on each sees every rotation exactly once. The kubelet runs the fetcher,
// then the refresh sidecar as the app's uid and gid, in the pod's shared process namespace; the
// sidecar finds the app's process by the webhook's mark and signals it with no added capability.

import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { createSecret, describeNode, logs, nodeSuite, podWhen, printed, running, useAwsFront, useNamespace, withIrsa } from './context.js';

describeNode('signal-on-refresh on a real node', () => {
  const namespace = useNamespace('signal', {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });
  useAwsFront();

  it('an app counting SIGHUPs sees each rotation exactly once, and none when nothing changed', async () => {
    const { core, images, awsEndpoint } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`signal-${ns}`, 'value-1');
    // `wait` returns when a trapped signal arrives, so the trap runs at once. `$$$$` is the
    // shell's `$$`: the kubelet reads `$$` in a command as an escaped `$`.
    const app = [
      'n=0',
      'trap \'n=$((n+1)); echo "hup $n: $(cat /tmp/secret)"\' HUP',
      'echo "start: $(cat /tmp/secret) as $(id -u):$(id -g), pid $$$$"',
      'while :; do sleep 1 & wait $!; done',
    ].join('\n');
    const pod: V1Pod = withIrsa({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', annotations: { 'secrets.k8s.aws/secret-arn': arn, 'secrets.k8s.aws/refresh': '10s', 'secrets.k8s.aws/signal-on-refresh': 'app' } },
      spec: {
        terminationGracePeriodSeconds: 0,
        securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 3000, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'app',
            image: images.busybox,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', app],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    });
    const stored = await core.createNamespacedPod({ namespace: ns, body: pod });
    expect(stored.spec?.shareProcessNamespace).toBe(true);
    const refresher = stored.spec!.initContainers!.find((c) => c.name === 'secret-refresher')!;
    expect(refresher.securityContext).toMatchObject({ runAsUser: 1000, runAsGroup: 3000, capabilities: { drop: ['ALL'] }, allowPrivilegeEscalation: false });
    expect(refresher.securityContext?.capabilities?.add).toBeUndefined();
    await podWhen(ns, 'app', 'app running', running('app'));
    // In a shared process namespace the app's shell is not PID 1 (the pause process is).
    expect(await printed(ns, 'app', 'app', /^start: /m)).toMatch(/start: value-1 as 1000:3000, pid (?!1\b)\d+/);

    const secrets = new SecretsManagerClient({ region: 'us-east-1', endpoint: awsEndpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    await secrets.send(new PutSecretValueCommand({ SecretId: arn, SecretString: 'value-2' }));
    expect(await printed(ns, 'app', 'app', /^hup 1: /m, 90_000)).toContain('hup 1: value-2');
    await secrets.send(new PutSecretValueCommand({ SecretId: arn, SecretString: 'value-3' }));
    expect(await printed(ns, 'app', 'app', /^hup 2: /m, 90_000)).toContain('hup 2: value-3');

    // Refreshes that change nothing send nothing: three more intervals, still two signals.
    await new Promise((r) => setTimeout(r, 35_000));
    const out = await logs(ns, 'app', 'app');
    expect(out.match(/^hup \d+: .*$/gm)).toEqual(['hup 1: value-2', 'hup 2: value-3']);
    expect(await logs(ns, 'app', 'secret-refresher')).toMatch(/sent SIGHUP to container app \(pid \d+\)/);
  });
});
