// The control plane the other e2e files rely on: the pinned Kubernetes version, TokenRequest with
// an STS audience, and the controller-manager turning a Deployment into a Pending pod.

import { AppsV1Api, CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { eventually, kubeRelease, uniqueName } from '../helpers/cluster.js';
import { describeE2E, e2e } from './context.js';

describeE2E('control plane', () => {
  it('reports the pinned Kubernetes version to clients (E2E_KUBERNETES=oldest: the oldest supported minor)', async () => {
    const { cluster } = e2e();
    const { version } = kubeRelease();
    const v = await cluster.kubeConfig.makeApiClient(VersionApi).getCode();
    expect(v.gitVersion).toBe(version);
    const out = await cluster.kubectl(['version', '-o', 'json']);
    expect(JSON.parse(out.stdout).serverVersion.gitVersion).toBe(version);
  });

  it('issues ServiceAccount tokens for the STS audience', async () => {
    const core = e2e().cluster.kubeConfig.makeApiClient(CoreV1Api);
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'default',
      namespace: 'default',
      body: { spec: { audiences: ['sts.amazonaws.com'], expirationSeconds: 600 } },
    });
    const payload = JSON.parse(Buffer.from(tr.status!.token!.split('.')[1]!, 'base64url').toString());
    expect(payload.aud).toEqual(['sts.amazonaws.com']);
    expect(payload.sub).toBe('system:serviceaccount:default:default');
  });

  it('turns a Deployment into a Pending pod', async () => {
    const { cluster } = e2e();
    const name = uniqueName('plain');
    const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name },
        spec: {
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'busybox' }] } },
        },
      },
    });
    try {
      const pod = await eventually('the Deployment pod', async () => {
        const list = await core.listNamespacedPod({ namespace: 'default', labelSelector: `app=${name}` });
        return list.items[0];
      });
      expect(pod.status?.phase).toBe('Pending');
    } finally {
      await apps.deleteNamespacedDeployment({ name, namespace: 'default' });
    }
  });
});
