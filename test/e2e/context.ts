// What an e2e test file gets from the global set-up: the running control plane (as a Cluster
// with kubectl/helm runners and a client), the AWS endpoint and the bundles. `describeE2E`
// skips the whole file with the set-up's message when the real parts are not installed.

import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import { connectCluster, eventually, kubeRelease, uniqueName, type Cluster } from '../helpers/cluster.js';
import { registerWebhook, startWebhook, type RegisterOptions, type WebhookProcess } from '../helpers/webhook-process.js';
import type { E2EContext } from './global-setup.js';

export interface E2E extends Omit<E2EContext, 'cluster'> {
  cluster: Cluster;
}

/** ValidatingAdmissionPolicy v1 is served from Kubernetes 1.30; the chart leaves its guard out before. */
export const GUARD_SUPPORTED = Number(/^v1\.(\d+)\./.exec(kubeRelease().version)?.[1] ?? 0) >= 30;

let cached: E2E | undefined;

/** The e2e context; only call inside tests or hooks of a describeE2E block. */
export function e2e(): E2E {
  if (cached) return cached;
  const ctx = inject('e2e');
  if (!ctx) throw new Error(`e2e suite not set up: ${inject('e2eSkip')}`);
  cached = { ...ctx, cluster: connectCluster(ctx.cluster) };
  return cached;
}

/** describe() that skips with the set-up's message when the real parts are missing. */
export function describeE2E(name: string, fn: () => void): void {
  const skip = inject('e2eSkip');
  if (skip) describe.skip(`${name} (skipped: ${skip.split('\n')[0]})`, fn);
  else describe(name, fn);
}

/**
 * Starts the built webhook before the file's tests and registers it with the apiserver; stops and
 * unregisters it afterwards. Returns a getter for the running process.
 */
export function useWebhook(opts: RegisterOptions & { env?: Record<string, string> } = {}): () => WebhookProcess {
  let webhook: WebhookProcess | undefined;
  let unregister: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const ctx = e2e();
    webhook = await startWebhook({ bundleDir: ctx.bundleDir, ...(opts.env ? { env: opts.env } : {}) });
    unregister = await registerWebhook(ctx.cluster, webhook, opts);
  });
  afterAll(async () => {
    try {
      await unregister?.();
    } finally {
      await webhook?.stop();
    }
  });
  return () => {
    if (!webhook) throw new Error('webhook not started');
    return webhook;
  };
}

/** Creates a namespace (unique name) before the file's tests and deletes it afterwards. */
export function useNamespace(prefix: string, labels: Record<string, string> = {}): () => string {
  const name = uniqueName(prefix);
  beforeAll(async () => {
    const core = e2e().cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name, labels } } });
    // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
    await eventually(`ServiceAccount default in ${name}`, async () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
    );
  });
  afterAll(async () => {
    const core = e2e().cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.deleteNamespace({ name }).catch(() => undefined);
  });
  return () => name;
}

/** AWS SDK clients pointed at the emulator (moto accepts any credentials). */
export function awsClients(region = 'us-east-1'): { secrets: SecretsManagerClient; ssm: SSMClient } {
  const config = {
    region,
    endpoint: e2e().awsEndpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  };
  return { secrets: new SecretsManagerClient(config), ssm: new SSMClient(config) };
}

/** Creates a secret in the emulator and returns its full ARN. */
export async function createSecret(name: string, value: string, region = 'us-east-1'): Promise<string> {
  const { secrets } = awsClients(region);
  const out = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
  return out.ARN!;
}
