// What an e2e test file gets from the global set-up: the running control plane (as a Cluster
// with kubectl/helm runners and a client), the AWS endpoint and the bundles. `describeE2E`
// skips the whole file with the set-up's message when the real parts are not installed.

import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { connectCluster, eventually, kubeRelease, uniqueName, type Cluster } from '../helpers/cluster.js';
import { registerWebhook, startWebhook, type RegisterOptions, type WebhookProcess } from '../helpers/webhook-process.js';
import type { E2EContext } from './global-setup.js';

export interface E2E extends Omit<E2EContext, 'cluster'> {
  cluster: Cluster;
}

/** The Kubernetes minor the suite runs against (36 for v1.36.3; see kubeRelease()). */
export const KUBE_MINOR = Number(/^v1\.(\d+)\./.exec(kubeRelease().version)?.[1] ?? 0);

/**
 * Features newer than the oldest supported minor, each with the 1.x minor from which it is on by
 * default (docs/compatibility.md says what the injector does without them).
 */
export const FEATURE_SINCE = {
  'native sidecars': 29,
  ValidatingAdmissionPolicy: 30,
  'in-place pod resize (resizePolicy)': 33,
  'pod-level resources': 34,
  // cert-manager 1.21's CRDs declare them (CRD field selectors: beta, on by default, in 1.31).
  'selectableFields in CRDs': 31,
} as const;
export type Feature = keyof typeof FEATURE_SINCE;

/** Whether the running Kubernetes has `feature`. */
export const supports = (feature: Feature): boolean => KUBE_MINOR >= FEATURE_SINCE[feature];

/** Why a test of `feature` is skipped on the running Kubernetes ('' where it runs). */
export const lacking = (feature: Feature): string =>
  supports(feature) ? '' : `skipped: ${feature} needs Kubernetes 1.${FEATURE_SINCE[feature]}+, this is ${kubeRelease().version}`;

/** ValidatingAdmissionPolicy v1 is served from Kubernetes 1.30; the chart leaves its guard out before. */
export const GUARD_SUPPORTED = supports('ValidatingAdmissionPolicy');

/** it() for a test of `features`: skipped, saying why, where the running Kubernetes lacks one. */
export function itNeeds(features: Feature | readonly Feature[], name: string, fn: () => Promise<void> | void, timeout?: number): void {
  const why = (typeof features === 'string' ? [features] : features).map(lacking).find(Boolean);
  if (why) it.skip(`${name} (${why})`, fn, timeout);
  else it(name, fn, timeout);
}

let cached: E2E | undefined;

/** The e2e context; only call inside tests or hooks of a describeE2E block. */
export function e2e(): E2E {
  if (cached) return cached;
  const ctx = inject('e2e');
  if (!ctx) throw new Error(`e2e suite not set up: ${inject('e2eSkip')}`);
  cached = { ...ctx, cluster: connectCluster(ctx.cluster) };
  return cached;
}

/**
 * describe() that skips with the set-up's message when the real parts are missing, and, given the
 * feature the whole block tests, where the running Kubernetes lacks it.
 */
export function describeE2E(name: string, fn: () => void, needs?: Feature): void {
  const skip = inject('e2eSkip')?.split('\n')[0];
  const why = skip ? `skipped: ${skip}` : needs ? lacking(needs) : '';
  if (why) describe.skip(`${name} (${why})`, fn);
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
