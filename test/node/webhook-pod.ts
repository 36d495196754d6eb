// The webhook image, built from the Dockerfile, running on the node as a pod and admitting the
// suite's pods. It uses the host's network, so the apiserver reaches it on 127.0.0.1 the way a
// control plane reaches a webhook outside its cluster network (the chart's `hostNetwork` +
// `webhook.url`); its serving certificate comes from certs/generate.ts through a Secret. Its
// settings point the fetcher at the AWS front and have it trust the front's CA.

import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { generateCertificates } from '../../certs/generate.js';
import { eventually, type Cluster, type ClusterInfo, connectCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/moto.js';
import { registerWebhook } from '../helpers/webhook-process.js';
import type { NODE_IMAGES } from '../helpers/images.js';

export const WEBHOOK_NAMESPACE = 'aws-secret-injector';
/** The webhook's WRITE_THROUGH_CLUSTER: what `secrets push --cluster` names in the node suite. */
export const NODE_SUITE_CLUSTER = 'node-suite';

/** The AWS front every test file starts (serialisable). */
export interface AwsFrontInfo {
  address: string;
  port: number;
  cert: string;
  key: string;
  caCert: string;
  /** The ConfigMap holding caCert as `ca.crt` in each test namespace. */
  caConfigMap: string;
}

function webhookPod(image: string, fetcherImage: string, port: number, front: AwsFrontInfo): V1Pod {
  const endpoint = `https://${front.address}:${front.port}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'webhook', labels: { app: 'aws-secret-injector' } },
    spec: {
      hostNetwork: true,
      terminationGracePeriodSeconds: 1,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'webhook',
          image,
          imagePullPolicy: 'Never',
          env: [
            { name: 'HOST', value: '127.0.0.1' },
            { name: 'PORT', value: String(port) },
            { name: 'TLS_CERT_FILE', value: '/tls/tls.crt' },
            { name: 'TLS_KEY_FILE', value: '/tls/tls.key' },
            { name: 'FETCHER_IMAGE', value: fetcherImage },
            // The node has the image from the import; there is no registry to pull it from.
            { name: 'FETCHER_IMAGE_PULL_POLICY', value: 'Never' },
            { name: 'FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER', value: endpoint },
            { name: 'FETCHER_AWS_ENDPOINT_URL_SSM', value: endpoint },
            { name: 'FETCHER_AWS_ENDPOINT_URL_STS', value: endpoint },
            { name: 'FETCHER_CA_BUNDLE_CONFIGMAP', value: front.caConfigMap },
            // Where write-through keeps Secrets, for pods' fromSecret entries.
            { name: 'WRITE_THROUGH_CLUSTER', value: NODE_SUITE_CLUSTER },
            { name: 'WRITE_THROUGH_REGION', value: 'us-east-1' },
          ],
          readinessProbe: { httpGet: { scheme: 'HTTPS', host: '127.0.0.1', path: '/readyz', port }, periodSeconds: 1 },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
        },
      ],
      volumes: [{ name: 'tls', secret: { secretName: 'webhook-tls' } }],
    },
  };
}

/** Runs the webhook pod, waits until it is Ready and registers it; resolves with a remover. */
export async function startWebhookPod(info: ClusterInfo, images: typeof NODE_IMAGES, front: AwsFrontInfo): Promise<() => Promise<void>> {
  const cluster: Cluster = connectCluster(info);
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const certs = generateCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
  await core.createNamespace({ body: { metadata: { name: WEBHOOK_NAMESPACE } } });
  await eventually('the default ServiceAccount of the webhook namespace', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: WEBHOOK_NAMESPACE }).then(() => true),
  );
  await core.createNamespacedSecret({
    namespace: WEBHOOK_NAMESPACE,
    body: {
      metadata: { name: 'webhook-tls' },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': certs.cert, 'tls.key': certs.key },
    },
  });
  const port = await freePort();
  await core.createNamespacedPod({ namespace: WEBHOOK_NAMESPACE, body: webhookPod(images.webhook, images.fetcher, port, front) });
  await eventually(
    'the webhook pod Ready',
    async () => {
      const pod = await core.readNamespacedPod({ name: 'webhook', namespace: WEBHOOK_NAMESPACE });
      const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason && /Err|BackOff|Invalid/.test(waiting.reason)) {
        throw new Error(`webhook container ${waiting.reason}: ${waiting.message ?? ''}`);
      }
      return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    },
    120_000,
  );
  const unregister = await registerWebhook(
    cluster,
    { url: `https://127.0.0.1:${port}`, caBundle: Buffer.from(certs.caCert).toString('base64') },
    { name: 'aws-secret-injector-node' },
  );
  return async () => {
    await unregister().catch(() => undefined);
    await core.deleteNamespacedPod({ name: 'webhook', namespace: WEBHOOK_NAMESPACE, gracePeriodSeconds: 0 }).catch(() => undefined);
  };
}
