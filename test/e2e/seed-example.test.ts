// The seed example, end to end: the busybox `webserver` Deployment of the original AWS sample
// injector, annotated with `sidecarInjectorWebhook: enabled` and a Secrets Manager ARN, becomes a
// Pending pod (made by the real controller-manager, admitted through the real apiserver and our
// webhook) carrying the memory volume, our init container first, the /tmp mount and the pod's IRSA
// identity. Then the test plays kubelet and runs the built fetcher against the AWS emulator.

import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { eventually } from '../helpers/cluster.js';
import { FETCHER_DIR } from '../../webhook/mutate.js';
import { E2E_FETCHER_IMAGE } from '../helpers/webhook-process.js';
import { createSecret, describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { fetcherContainer, runFetcherLikeKubelet } from './kubelet.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/webserver';

/** What EKS's pod identity webhook gives an IRSA pod: role, token file, projected token volume. */
function webserver(secretArn: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'webserver', labels: { app: 'webserver' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'webserver' } },
      template: {
        metadata: {
          labels: { app: 'webserver' },
          annotations: {
            'secrets.k8s.aws/sidecarInjectorWebhook': 'enabled',
            'secrets.k8s.aws/secret-arn': secretArn,
          },
        },
        spec: {
          serviceAccountName: 'webserver',
          containers: [
            {
              name: 'webserver',
              image: 'busybox:1.28',
              command: ['sh', '-c', 'echo "$(cat /tmp/secret)" && sleep 3600'],
              env: [
                { name: 'AWS_ROLE_ARN', value: ROLE_ARN },
                { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
                { name: 'AWS_STS_REGIONAL_ENDPOINTS', value: 'regional' },
                { name: 'AWS_REGION', value: 'us-east-1' },
              ],
              volumeMounts: [{ name: 'aws-iam-token', mountPath: TOKEN_DIR, readOnly: true }],
            },
          ],
          volumes: [
            {
              name: 'aws-iam-token',
              projected: {
                sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', expirationSeconds: 86400, path: 'token' } }],
              },
            },
          ],
        },
      },
    },
  };
}

describeE2E('seed example: the webserver Deployment', () => {
  useWebhook();
  const namespace = useNamespace('seed');
  let pod: V1Pod;
  let secretArn: string;

  it('the controller-manager creates the pod and the webhook mutates it', async () => {
    const { cluster } = e2e();
    const ns = namespace();
    secretArn = await createSecret(`webserver-${ns}`, 'correct horse battery staple');
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'webserver', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } },
    });
    await cluster.kubeConfig.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace: ns, body: webserver(secretArn) });
    pod = await eventually('the webserver pod', async () => {
      const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=webserver' });
      return list.items[0];
    });
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.metadata?.ownerReferences?.[0]?.kind).toBe('ReplicaSet');

    // The memory volume.
    const volume = pod.spec!.volumes!.find((v) => v.emptyDir?.medium === 'Memory');
    expect(volume, 'a memory-backed emptyDir volume').toBeDefined();
    expect(volume!.name).toBe('secret-vol');
    // Our init container, first.
    const init = fetcherContainer(pod);
    expect(init.image).toBe(E2E_FETCHER_IMAGE);
    expect(init.args).toEqual(['fetch']);
    // At a path of its own: the app's mount path could hide the fetcher's program or TLS roots.
    expect(init.volumeMounts).toContainEqual(expect.objectContaining({ name: volume!.name, mountPath: FETCHER_DIR }));
    // The /tmp mount in the app container.
    const app = pod.spec!.containers[0]!;
    expect(app.volumeMounts).toContainEqual(expect.objectContaining({ name: volume!.name, mountPath: '/tmp' }));
    // The copied identity: env and the token mount.
    const env = Object.fromEntries((init.env ?? []).map((e) => [e.name, e.value]));
    expect(env.AWS_ROLE_ARN).toBe(ROLE_ARN);
    expect(env.AWS_WEB_IDENTITY_TOKEN_FILE).toBe(`${TOKEN_DIR}/token`);
    expect(env.AWS_STS_REGIONAL_ENDPOINTS).toBe('regional');
    expect(init.volumeMounts).toContainEqual(expect.objectContaining({ name: 'aws-iam-token', mountPath: TOKEN_DIR }));
    // Restricted-compliant init container, references only (never the value) in the pod.
    expect(init.securityContext).toMatchObject({ allowPrivilegeEscalation: false, runAsNonRoot: true });
    expect(JSON.stringify(pod)).not.toContain('correct horse');
    expect(pod.metadata?.annotations?.['secrets.k8s.aws/status']).toBe('injected');
  });

  it('the fetcher, run as the kubelet would with a real ServiceAccount token, writes /tmp/secret', async () => {
    expect(pod, 'the previous test made the pod').toBeDefined();
    const ctx = e2e();
    const run = await runFetcherLikeKubelet(ctx.cluster, pod, { bundleDir: ctx.bundleDir, awsEndpoint: ctx.awsEndpoint });
    expect(run.result.code, run.result.stderr).toBe(0);
    expect(run.files.secret).toEqual({ content: 'correct horse battery staple', mode: 0o444 });
    expect(run.files['.secrets-ready']).toBeDefined();
    expect(run.files['.secrets-ready']!.content).not.toContain('correct horse');
    expect(run.result.stdout + run.result.stderr).not.toContain('correct horse');
  });
});
