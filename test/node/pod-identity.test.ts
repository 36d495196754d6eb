// EKS Pod Identity on a real node: the pod carries what EKS's pod identity webhook adds (the
// credentials endpoint and a projected token of audience pods.eks.amazonaws.com). A local
// credentials endpoint stands in for the EKS Pod Identity Agent (host network: the pods reach it on
// 127.0.0.1, which the SDK accepts over http as it does the agent's link-local address): it hands
// out credentials only for a token the apiserver accepts for that audience. This pod alone uses
// the host's network, for that loopback endpoint.

import { createServer, type Server } from 'node:http';
import { AuthenticationV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../helpers/moto.js';
import { createSecret, describeNode, nodeSuite, podWhen, printed, running, useAwsFront, useNamespace } from './context.js';

const AUDIENCE = 'pods.eks.amazonaws.com';
const TOKEN_DIR = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';
const VALUE = 'pod identity value';

interface Served {
  username: string;
  podName: string;
}

describeNode('EKS Pod Identity on a real node', () => {
  const namespace = useNamespace('podid');
  useAwsFront();
  const served: Served[] = [];
  let server: Server;
  let endpoint = '';

  beforeAll(async () => {
    const auth = nodeSuite().cluster.kubeConfig.makeApiClient(AuthenticationV1Api);
    server = createServer((req, res) => {
      const token = req.headers.authorization ?? '';
      void auth
        .createTokenReview({ body: { spec: { token, audiences: [AUDIENCE] } } })
        .then((review) => {
          if (!review.status?.authenticated) {
            res.writeHead(403).end(JSON.stringify({ message: 'token not accepted' }));
            return;
          }
          served.push({
            username: review.status.user?.username ?? '',
            podName: review.status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0] ?? '',
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              AccessKeyId: 'AKIAPODIDENTITYTEST1',
              SecretAccessKey: 'pod-identity-secret-access-key',
              Token: 'pod-identity-session-token',
              Expiration: new Date(Date.now() + 3_600_000).toISOString(),
              AccountId: '123456789012',
            }),
          );
        })
        .catch(() => res.writeHead(500).end());
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${port}/v1/credentials`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('the fetcher gets credentials with the projected token and the app prints the secret', async () => {
    const { core, images } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`podid-${ns}`, VALUE);
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'app' } } });
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', annotations: { 'secrets.k8s.aws/secret.db': arn } },
      spec: {
        serviceAccountName: 'app',
        hostNetwork: true,
        terminationGracePeriodSeconds: 0,
        containers: [
          {
            name: 'app',
            image: images.busybox,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', 'echo "db: $(cat /tmp/db)"; exec sleep 3600'],
            env: [
              { name: 'AWS_REGION', value: 'us-east-1' },
              { name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: endpoint },
              { name: 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', value: `${TOKEN_DIR}/eks-pod-identity-token` },
            ],
            volumeMounts: [{ name: 'eks-pod-identity-token', mountPath: TOKEN_DIR, readOnly: true }],
          },
        ],
        volumes: [
          {
            name: 'eks-pod-identity-token',
            projected: {
              sources: [{ serviceAccountToken: { audience: AUDIENCE, expirationSeconds: 86400, path: 'eks-pod-identity-token' } }],
            },
          },
        ],
      },
    };
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await podWhen(ns, 'app', 'app running', running('app'));
    const out = await printed(ns, 'app', 'app', /^db: /m);
    expect(out).toContain(`db: ${VALUE}`);
    expect(served).toContainEqual({ username: `system:serviceaccount:${ns}:app`, podName: 'app' });
  });
});
