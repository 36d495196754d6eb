// What a node-suite test file gets: the running control plane and node from the global set-up,
// the AWS front (the emulator over HTTPS at the node's bridge address, started per file), and
// small helpers to wait for what the kubelet reports and read what containers printed
// (`kubectl logs`).

import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { BatchV1Api, CoreV1Api, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import { startAwsFront, type AwsFront } from '../helpers/aws-front.js';
import { connectCluster, eventually, uniqueName, type Cluster } from '../helpers/cluster.js';
import type { NodeContext } from './global-setup.js';

export interface NodeSuite extends Omit<NodeContext, 'cluster'> {
  cluster: Cluster;
  core: CoreV1Api;
}

let cached: NodeSuite | undefined;

export function nodeSuite(): NodeSuite {
  if (cached) return cached;
  const ctx = inject('node');
  if (!ctx) throw new Error(`node suite not set up: ${inject('nodeSkip')}`);
  const cluster = connectCluster(ctx.cluster);
  cached = { ...ctx, cluster, core: cluster.kubeConfig.makeApiClient(CoreV1Api) };
  return cached;
}

export function describeNode(name: string, fn: () => void): void {
  const skip = inject('nodeSkip');
  if (skip) describe.skip(`${name} (skipped: ${skip.split('\n')[0]})`, fn);
  else describe(name, fn);
}

/**
 * Creates a namespace before the file's tests and deletes it (and its pods) afterwards. It holds
 * the CA bundle ConfigMap the webhook gives the fetcher (the AWS front's CA), as trust-manager
 * would distribute it.
 */
export function useNamespace(prefix: string, labels: Record<string, string> = {}): () => string {
  const name = uniqueName(prefix);
  beforeAll(async () => {
    const { core, front } = nodeSuite();
    await core.createNamespace({ body: { metadata: { name, labels } } });
    await core.createNamespacedConfigMap({
      namespace: name,
      body: { metadata: { name: front.caConfigMap }, data: { 'ca.crt': front.caCert } },
    });
    await eventually(`ServiceAccount default in ${name}`, async () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
    );
  });
  afterAll(async () => {
    const { core } = nodeSuite();
    await core.deleteCollectionNamespacedPod({ namespace: name, gracePeriodSeconds: 0 }).catch(() => undefined);
    await core.deleteNamespace({ name }).catch(() => undefined);
  });
  return () => name;
}

/** Serves the emulator where the webhook points the fetcher during the file's tests. */
export function useAwsFront(): () => AwsFront {
  let front: AwsFront | undefined;
  beforeAll(async () => {
    const ctx = nodeSuite();
    front = await startAwsFront({
      address: ctx.node.gateway,
      port: ctx.front.port,
      cert: ctx.front.cert,
      key: ctx.front.key,
      upstream: ctx.awsEndpoint,
    });
  });
  afterAll(async () => {
    await front?.close();
  });
  return () => {
    if (!front) throw new Error('AWS front not started');
    return front;
  };
}

/** Creates a secret in the emulator and returns its full ARN. */
export async function createSecret(name: string, value: string): Promise<string> {
  const client = new SecretsManagerClient({
    region: 'us-east-1',
    endpoint: nodeSuite().awsEndpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  const out = await client.send(new CreateSecretCommand({ Name: name, SecretString: value }));
  return out.ARN!;
}

/** Waits until `check(pod)` holds for the named pod (the kubelet's reports), or fails with its status. */
export async function podWhen(namespace: string, name: string, what: string, check: (pod: V1Pod) => boolean, timeoutMs = 90_000): Promise<V1Pod> {
  const { core } = nodeSuite();
  let last: V1Pod | undefined;
  try {
    return await eventually(
      `pod ${namespace}/${name}: ${what}`,
      async () => {
        last = await core.readNamespacedPod({ name, namespace });
        return check(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${String(e)}\nlast status: ${JSON.stringify(last?.status)}`);
  }
}

/** What a container printed, as `kubectl logs` shows it. */
export async function logs(namespace: string, pod: string, container: string): Promise<string> {
  return (await nodeSuite().cluster.kubectl(['logs', '-n', namespace, pod, '-c', container])).stdout;
}

/** Waits until the container has printed a line matching `pattern` and returns its output. */
export async function printed(namespace: string, pod: string, container: string, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  let out = '';
  try {
    return await eventually(
      `${namespace}/${pod}/${container} prints ${pattern}`,
      async () => {
        out = await logs(namespace, pod, container);
        return pattern.test(out) ? out : undefined;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${String(e)}\nprinted so far:\n${out}`);
  }
}

export const running = (container: string) => (pod: V1Pod) =>
  pod.status?.containerStatuses?.some((c) => c.name === container && c.state?.running) ?? false;

const IRSA_TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';

/**
 * Gives the pod's first container the IRSA identity EKS's pod identity webhook would add (role,
 * token file, projected token of audience sts.amazonaws.com); the webhook copies it to the fetcher.
 */
export function withIrsa(pod: V1Pod, roleArn = 'arn:aws:iam::123456789012:role/app'): V1Pod {
  const [first, ...rest] = pod.spec!.containers;
  return {
    ...pod,
    spec: {
      ...pod.spec!,
      containers: [
        {
          ...first!,
          env: [
            ...(first!.env ?? []),
            { name: 'AWS_ROLE_ARN', value: roleArn },
            { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${IRSA_TOKEN_DIR}/token` },
            { name: 'AWS_REGION', value: 'us-east-1' },
          ],
          volumeMounts: [...(first!.volumeMounts ?? []), { name: 'aws-iam-token', mountPath: IRSA_TOKEN_DIR, readOnly: true }],
        },
        ...rest,
      ],
      volumes: [
        ...(pod.spec!.volumes ?? []),
        { name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } },
      ],
    },
  };
}

/**
 * Starts Job `reader` in `namespace`: one pod with the IRSA identity and `annotations`, whose app
 * (busybox) runs `script` and then exits, so the Job completes. Returns the pod's name.
 */
export async function startReaderJob(namespace: string, annotations: Record<string, string>, script: string): Promise<string> {
  const { cluster, core, images } = nodeSuite();
  const template = withIrsa({
    metadata: { annotations },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      containers: [{ name: 'app', image: images.busybox, imagePullPolicy: 'Never', command: ['sh', '-c', script] }],
    },
  });
  const job: V1Job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'reader' }, spec: { backoffLimit: 0, template } };
  await cluster.kubeConfig.makeApiClient(BatchV1Api).createNamespacedJob({ namespace, body: job });
  return eventually('the Job pod', async () => {
    const list = await core.listNamespacedPod({ namespace, labelSelector: 'job-name=reader' });
    return list.items[0]?.metadata?.name;
  });
}
