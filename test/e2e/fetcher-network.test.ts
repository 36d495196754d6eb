// The chart's fetcher.network values reach the injected fetcher: `helm template` renders them
// into the webhook's environment, the built webhook runs with exactly that environment, the real
// apiserver stores an IRSA pod with the fetcher's proxy, endpoint and CA bundle (a ConfigMap
// mounted read-only), and the fetcher, run as the kubelet would, reaches the emulator only
// through the proxy, over TLS signed by the ConfigMap's private CA, as a session named after the pod.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { startAwsProxy, type AwsProxy } from '../helpers/aws-proxy.js';
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.js';
import { findTool, missingToolMessage } from '../helpers/tools.js';
import { one, renderChart } from '../unit/chart-render.js';
import { createSecret, describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { fetcherContainer, runFetcherLikeKubelet } from './kubelet.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/web';
const CA_DIR = '/etc/aws-secret-injector/ca';

describeE2E("chart: fetcher.network values reach the injected fetcher", () => {
  let front: AwsProxy;
  let proxy: ConnectProxy;
  let caCert: string;
  // Filled before the webhook starts (useWebhook reads it then): the chart's own FETCHER_* environment.
  const webhookEnv: Record<string, string> = {};

  beforeAll(async () => {
    const helm = findTool('helm');
    if (!helm) throw new Error(missingToolMessage('helm'));
    const tls = generateCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
    caCert = tls.caCert;
    front = await startAwsProxy(e2e().awsEndpoint, undefined, { tls: { key: tls.key, cert: tls.cert } });
    proxy = await startConnectProxy();
    const objects = renderChart(helm, {
      set: {
        'fetcher.network.httpsProxy': proxy.url,
        'fetcher.network.endpoints.secretsManager': front.endpoint,
        'fetcher.network.endpoints.sts': front.endpoint,
        'fetcher.network.caBundle.configMap': 'corp-trust',
        'fetcher.network.caBundle.key': 'bundle.pem',
      },
    });
    const container = (one(objects, 'Deployment').spec as any).template.spec.containers[0];
    for (const e of container.env as Array<{ name: string; value: string }>) {
      if (e.name.startsWith('FETCHER_') && e.name !== 'FETCHER_IMAGE') webhookEnv[e.name] = e.value;
    }
    expect(Object.keys(webhookEnv)).toEqual(
      expect.arrayContaining(['FETCHER_HTTPS_PROXY', 'FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER', 'FETCHER_AWS_ENDPOINT_URL_STS', 'FETCHER_CA_BUNDLE_CONFIGMAP', 'FETCHER_CA_BUNDLE_KEY']),
    );
  });
  useWebhook({ env: webhookEnv });
  const namespace = useNamespace('net');
  afterAll(async () => {
    await proxy?.close();
    await front?.close();
  });

  let pod: V1Pod;

  it('the stored pod carries the proxy, the endpoints and the CA bundle in the fetcher only', async () => {
    const { cluster } = e2e();
    const ns = namespace();
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'corp-trust' }, data: { 'bundle.pem': caCert } } });
    const arn = await createSecret(`net-${ns}`, 'via the proxy');
    pod = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'web', annotations: { 'secrets.k8s.aws/secret-arn': arn } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'busybox:1.36',
              env: [
                { name: 'AWS_ROLE_ARN', value: ROLE_ARN },
                { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
                { name: 'AWS_REGION', value: 'us-east-1' },
              ],
              volumeMounts: [{ name: 'aws-iam-token', mountPath: TOKEN_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } }],
        },
      },
    });
    const init = fetcherContainer(pod);
    const env = Object.fromEntries((init.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      HTTPS_PROXY: proxy.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: front.endpoint,
      AWS_ENDPOINT_URL_STS: front.endpoint,
      NODE_EXTRA_CA_CERTS: `${CA_DIR}/ca.crt`,
    });
    const caMount = init.volumeMounts?.find((m) => m.mountPath === CA_DIR);
    expect(caMount?.readOnly).toBe(true);
    expect(pod.spec?.volumes?.find((v) => v.name === caMount?.name)?.configMap).toMatchObject({
      name: 'corp-trust',
      items: [{ key: 'bundle.pem', path: 'ca.crt' }],
    });
    const app = pod.spec!.containers[0]!;
    expect(app.env?.map((e) => e.name)).not.toContain('HTTPS_PROXY');
    expect(app.volumeMounts?.map((m) => m.mountPath)).not.toContain(CA_DIR);
  });

  it('the fetcher reaches AWS only through the proxy, trusting the ConfigMap, as a session named after the pod', async () => {
    expect(pod, 'the previous test made the pod').toBeDefined();
    const ctx = e2e();
    const ns = namespace();
    // What the kubelet projects at the mount: the ConfigMap's key, read back from the apiserver.
    const cm = await ctx.cluster.kubeConfig.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'corp-trust', namespace: ns });
    const dir = mkdtempSync(join(tmpdir(), 'asi-ca-'));
    try {
      const caFile = join(dir, 'ca.crt');
      writeFileSync(caFile, cm.data!['bundle.pem']!);
      const before = front.calls.length;
      // AWS_ENDPOINT_URL (the kubelet stand-in's default) is unreachable: only the pod's per-service URLs work.
      const run = await runFetcherLikeKubelet(ctx.cluster, pod, {
        bundleDir: ctx.bundleDir,
        awsEndpoint: 'http://127.0.0.1:9',
        extraEnv: { NODE_EXTRA_CA_CERTS: caFile },
      });
      expect(run.result.code, run.result.stderr + run.termination).toBe(0);
      expect(run.files.secret?.content).toBe('via the proxy');
      const calls = front.calls.slice(before);
      expect(calls.map((c) => c.operation)).toEqual(['sts.AssumeRoleWithWebIdentity', 'secretsmanager.GetSecretValue']);
      for (const c of calls) expect(proxy.upstreamPorts.has(c.remotePort), c.operation).toBe(true);
      expect(calls[0]!.params.RoleSessionName).toBe(`${ns}.web`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
