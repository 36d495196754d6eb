// The seed example on a real node: the busybox `webserver` Deployment, annotated as in the
// original AWS sample, with the IRSA identity EKS's pod identity webhook gives it. The
// controller-manager makes the pod, our webhook (its image, running on the node) mutates it, the
// scheduler places it, the kubelet runs the fetcher image and then the app, which prints what it
// finds in /tmp. The fetcher's AssumeRoleWithWebIdentity carried the pod's projected token.

import { AppsV1Api, AuthenticationV1Api, type V1Deployment } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { join } from 'node:path';
import { eventually, runCommand } from '../helpers/cluster.js';
import { BIN_DIR } from '../helpers/tools.js';
import { createSecret, describeNode, nodeSuite, podWhen, printed, running, useAwsFront, useNamespace } from './context.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/webserver';
const VALUE = 'correct horse battery staple';

function webserver(secretArn: string): V1Deployment {
  const { images } = nodeSuite();
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
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: 'webserver',
              image: images.busybox,
              imagePullPolicy: 'Never',
              command: [
                'sh',
                '-c',
                'echo "secret: $(cat /tmp/secret)"; echo "stat: $(stat -L -c "%a %u %g" /tmp/secret)"; ' +
                  'echo "mount: $(grep " /tmp " /proc/mounts)"; ' +
                  // The app's own temporary file, in the volume that now is its /tmp.
                  'dd if=/dev/zero of=/tmp/scratch bs=1M count=20 2>/dev/null; echo "scratch: $? $(stat -c %s /tmp/scratch)"; exec sleep 3600',
              ],
              env: [
                { name: 'AWS_ROLE_ARN', value: ROLE_ARN },
                { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
                { name: 'AWS_STS_REGIONAL_ENDPOINTS', value: 'regional' },
                { name: 'AWS_REGION', value: 'us-east-1' },
              ],
              resources: { limits: { memory: '256Mi' } },
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

describeNode('seed example on a real node', () => {
  const namespace = useNamespace('seed');
  const front = useAwsFront();
  let podName = '';

  it('the app container prints the secret the fetcher wrote to a memory-backed /tmp', async () => {
    const { cluster, core } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`webserver-${ns}`, VALUE);
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'webserver', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } },
    });
    await cluster.kubeConfig.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace: ns, body: webserver(arn) });
    podName = await eventually('the webserver pod', async () => {
      const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=webserver' });
      return list.items[0]?.metadata?.name;
    });
    const pod = await podWhen(ns, podName, 'webserver running', running('webserver'));
    // The kubelet's report: the fetcher ran to completion before the app started.
    const fetcher = pod.status!.initContainerStatuses![0]!;
    expect(fetcher.name).toBe('secret-fetcher');
    expect(fetcher.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    // …from the fetcher image built in this run.
    expect(fetcher.imageID).toBe(nodeSuite().built.config.fetcher.id);
    const out = await printed(ns, podName, 'webserver', /^scratch: /m);
    expect(out).toContain(`secret: ${VALUE}`);
    expect(out).toContain('stat: 444 65532 65532');
    // No sizeLimit by default: the kubelet sizes the tmpfs by the pod's memory limit (256Mi), and
    // the app's own 20 MB temporary file fits.
    expect(out).toMatch(/^mount: tmpfs \/tmp tmpfs rw,.*size=262144k/m);
    expect(out).toMatch(/^scratch: 0 20971520$/m);
    // …and the kubelet does not evict the pod for it (its eviction manager looks every 10 s).
    await new Promise((r) => setTimeout(r, 15_000));
    const after = await core.readNamespacedPod({ namespace: ns, name: podName });
    expect(after.status?.phase).toBe('Running');
    expect(after.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    // The fetcher's log says what it wrote, never the value.
    const fetcherLog = (await cluster.kubectl(['logs', '-n', ns, podName, '-c', 'secret-fetcher'])).stdout;
    expect(fetcherLog).not.toContain(VALUE);
  });

  it('hardened: readOnlyRootFilesystem and an emptyDir of its own at /tmp, unchanged, the app reads /tmp/secret', async () => {
    const { cluster, core, images } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`hardened-${ns}`, VALUE);
    // The first test's ServiceAccount, made here too when this test runs alone.
    await core
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'webserver', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } } })
      .catch((e: { code?: number }) => {
        if (e.code !== 409) throw e;
      });
    const body = webserver(arn);
    body.metadata = { name: 'hardened', labels: { app: 'hardened' } };
    body.spec!.selector = { matchLabels: { app: 'hardened' } };
    const template = body.spec!.template;
    template.metadata!.labels = { app: 'hardened' };
    const spec = template.spec!;
    spec.securityContext = { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } };
    spec.volumes!.push({ name: 'tmp', emptyDir: {} });
    spec.containers[0] = {
      ...spec.containers[0]!,
      image: images.busybox,
      command: ['sh', '-c', 'echo "secret: $(cat /tmp/secret)"; touch /tmp/own && echo "own: ok"; touch /root-test 2>/dev/null || echo "root: read-only"; exec sleep 3600'],
      securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      volumeMounts: [...spec.containers[0]!.volumeMounts!, { name: 'tmp', mountPath: '/tmp' }],
    };
    // What a user sees applying it: admitted, with the warning that this emptyDir is on disk.
    const applied = await cluster.kubectl(['apply', '-n', ns, '-f', '-'], { input: JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', ...body }) });
    expect(applied.stdout).toContain('deployment.apps/hardened created');
    const name = await eventually('the hardened pod', async () => {
      const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=hardened' });
      return list.items[0]?.metadata?.name;
    });
    const pod = await podWhen(ns, name, 'app running', running('webserver'));
    // The pod's own volume, no secrets volume beside it (only the fetcher's CA bundle, which this suite's webhook trusts).
    expect(pod.spec!.volumes!.map((v) => v.name).filter((n) => !n.startsWith('kube-api-access-'))).toEqual(['aws-iam-token', 'tmp', 'secret-fetcher-ca']);
    const out = await printed(ns, name, 'webserver', /^root: /m);
    expect(out).toContain(`secret: ${VALUE}`);
    expect(out).toContain('own: ok');
    expect(out).toContain('root: read-only');
  });

  it("the fetcher's web identity is the pod's projected token, audience sts.amazonaws.com", async () => {
    expect(podName, 'the previous test ran the pod').not.toBe('');
    const { cluster } = nodeSuite();
    const call = front().calls.find((c) => c.operation === 'sts.AssumeRoleWithWebIdentity');
    expect(call, `STS calls: ${front().calls.map((c) => c.operation).join(', ')}`).toBeDefined();
    expect(call!.params.RoleArn).toBe(ROLE_ARN);
    const review = await cluster.kubeConfig.makeApiClient(AuthenticationV1Api).createTokenReview({
      body: { spec: { token: call!.params.WebIdentityToken!, audiences: ['sts.amazonaws.com'] } },
    });
    expect(review.status?.authenticated).toBe(true);
    expect(review.status?.audiences).toEqual(['sts.amazonaws.com']);
    expect(review.status?.user?.username).toBe(`system:serviceaccount:${namespace()}:webserver`);
    expect(review.status?.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual([podName]);
    // …and the secret was then read with the role's credentials.
    const ops = front().calls.map((c) => c.operation);
    expect(ops.slice(ops.indexOf('sts.AssumeRoleWithWebIdentity') + 1)).toContainEqual(expect.stringMatching(/^secretsmanager\./));
  });

  it('the fetcher runs without a CPU quota: the app has no CPU limit, so the pod has none to keep', async () => {
    expect(podName, 'the first test ran the pod').not.toBe('');
    const { core, node } = nodeSuite();
    const pod = await core.readNamespacedPod({ namespace: namespace(), name: podName });
    const fetcherSpec = pod.spec!.initContainers!.find((c) => c.name === 'secret-fetcher')!;
    expect(fetcherSpec.resources?.limits?.cpu).toBeUndefined();
    // What runc was given for the container the kubelet ran: no CFS quota.
    const id = pod.status!.initContainerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
    const info = await runCommand(join(BIN_DIR, 'ctr'), ['--address', node.socket, '--namespace', 'k8s.io', 'containers', 'info', id], process.env, { timeoutMs: 30_000 });
    const cpu = JSON.parse(info.stdout).Spec.linux.resources.cpu ?? {};
    expect(cpu.quota ?? -1, JSON.stringify(cpu)).toBeLessThanOrEqual(0);
  });
});
