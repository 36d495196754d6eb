// With the webhook unreachable, a pod that asked for secrets is rejected with a message naming our
// webhook (failurePolicy Fail: it must never start without its secrets), while a pod without our
// annotations is admitted (the match condition never sends it to the webhook).

import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { freePort } from '../helpers/moto.js';
import { registerWebhook, WEBHOOK_NAME } from '../helpers/webhook-process.js';
import { describeE2E, e2e, useNamespace } from './context.js';

function pod(name: string, annotations: Record<string, string> = {}) {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  });
}

describeE2E('webhook down', () => {
  const namespace = useNamespace('down');
  let unregister: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    // A URL on which nothing listens, with a valid CA bundle: the apiserver's call is refused.
    const port = await freePort();
    const { caCert } = generateCertificates({ ipAddresses: ['127.0.0.1'] });
    unregister = await registerWebhook(e2e().cluster, {
      url: `https://127.0.0.1:${port}`,
      caBundle: Buffer.from(caCert).toString('base64'),
    });
  });
  afterAll(async () => {
    await unregister?.();
  });

  it('rejects an annotated pod with a clear message', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], {
      input: pod('annotated', { 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf' }),
      allowFailure: true,
    });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`failed calling webhook "${WEBHOOK_NAME}"`);
    expect(out.stderr).toMatch(/connection refused/);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace: namespace() });
    expect(list.items.map((p) => p.metadata?.name)).not.toContain('annotated');
  });

  it('admits an unannotated pod untouched', async () => {
    const { cluster } = e2e();
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: pod('plain', { team: 'payments' }) });
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const stored = await core.readNamespacedPod({ name: 'plain', namespace: namespace() });
    expect(stored.spec?.initContainers ?? []).toHaveLength(0);
    expect(stored.spec?.volumes?.some((v) => v.emptyDir) ?? false).toBe(false);
  });
});
