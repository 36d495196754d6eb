// Fail closed, end to end: a pod whose secret does not exist gets its init container like any
// other, and the fetcher, run as the kubelet would, exits non-zero with a termination message
// naming the reference and the AWS error, and leaves no file and no marker behind, so the app
// container never starts without its secrets.

import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { createSecret, describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { runFetcherLikeKubelet } from './kubelet.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';

describeE2E('a secret that does not exist', () => {
  useWebhook();
  const namespace = useNamespace('failclosed');

  it('the fetcher exits non-zero, says why in the termination message, and writes nothing', async () => {
    const ctx = e2e();
    const ns = namespace();
    const present = await createSecret(`${ns}/present`, 'value-that-must-not-be-written');
    const missing = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf';
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'app',
        annotations: { 'secrets.k8s.aws/secret.present': present, 'secrets.k8s.aws/secret.missing': missing },
      },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'busybox',
            env: [
              { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/app' },
              { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
            ],
            volumeMounts: [{ name: 'aws-iam-token', mountPath: TOKEN_DIR, readOnly: true }],
          },
        ],
        volumes: [
          { name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } },
        ],
      },
    };
    const stored = await ctx.cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespacedPod({ namespace: ns, body: pod });
    const run = await runFetcherLikeKubelet(ctx.cluster, stored, { bundleDir: ctx.bundleDir, awsEndpoint: ctx.awsEndpoint });
    expect(run.result.code).not.toBe(0);
    const termination = run.termination;
    expect(termination).toContain(missing);
    expect(termination).toContain('ResourceNotFoundException');
    expect(run.files).toEqual({});
    expect(termination + run.result.stdout + run.result.stderr).not.toContain('value-that-must-not-be-written');
  });
});
