// Rotation end to end: a Deployment annotated with `refresh` becomes a pod (the real
// controller-manager, apiserver and our webhook) whose init containers are the fetcher, then the
// refresh sidecar with `restartPolicy: Always` as the apiserver stored it. Then the test plays the
// kubelet: a real ServiceAccount token, the fetcher with its container's args and environment,
// then the sidecar with its own; a PutSecretValue in the emulator reaches the file; SIGTERM ends
// the sidecar with 0.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { AppsV1Api, CoreV1Api, type V1Container, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { REFRESHER_ENV } from '../../fetcher/spec.js';
import { startCommand } from '../helpers/bundles.js';
import { eventually, runCommand } from '../helpers/cluster.js';
import { awsClients, createSecret, describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { resolveEnv, STS_AUDIENCE } from './kubelet.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/rotating';

function deployment(secretArn: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'rotating', labels: { app: 'rotating' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'rotating' } },
      template: {
        metadata: {
          labels: { app: 'rotating' },
          annotations: { 'secrets.k8s.aws/secret.db': secretArn, 'secrets.k8s.aws/refresh': '10s' },
        },
        spec: {
          serviceAccountName: 'rotating',
          containers: [
            {
              name: 'app',
              image: 'busybox:1.36',
              command: ['sh', '-c', 'sleep 3600'],
              env: [
                { name: 'AWS_ROLE_ARN', value: ROLE_ARN },
                { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
                { name: 'AWS_REGION', value: 'us-east-1' },
              ],
              volumeMounts: [{ name: 'aws-iam-token', mountPath: TOKEN_DIR, readOnly: true }],
            },
          ],
          volumes: [
            { name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: STS_AUDIENCE, expirationSeconds: 86400, path: 'token' } }] } },
          ],
        },
      },
    },
  };
}

describeE2E('refresh: the sidecar through the real apiserver, run as the kubelet would', () => {
  useWebhook();
  const namespace = useNamespace('refresh');
  let pod: V1Pod;
  let secretArn: string;

  it("a Deployment's pod gets the refresh sidecar right after the fetcher, restartPolicy Always intact", async () => {
    const { cluster } = e2e();
    const ns = namespace();
    secretArn = await createSecret(`rotating-${ns}`, 'first-password');
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'rotating' } } });
    await cluster.kubeConfig.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace: ns, body: deployment(secretArn) });
    pod = await eventually('the rotating pod', async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=rotating' })).items[0]);
    expect(pod.metadata?.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
    const [fetcher, refresher] = pod.spec!.initContainers as [V1Container, V1Container];
    expect(fetcher).toMatchObject({ name: 'secret-fetcher', args: ['fetch'] });
    expect(fetcher.restartPolicy).toBeUndefined();
    expect(refresher).toMatchObject({ name: 'secret-refresher', args: ['refresh'], restartPolicy: 'Always', image: fetcher.image });
    expect(refresher.env).toEqual([...fetcher.env!, ...Object.entries(REFRESHER_ENV).map(([name, value]) => ({ name, value }))]);
    expect(refresher.volumeMounts).toEqual(fetcher.volumeMounts);
    expect(refresher.securityContext).toEqual(fetcher.securityContext);
  });

  it('the fetcher, then the sidecar: a PutSecretValue reaches the file within one interval, SIGTERM exits 0', async () => {
    expect(pod, 'the previous test made the pod').toBeDefined();
    const { cluster, bundleDir, awsEndpoint } = e2e();
    const scratch = mkdtempSync(join(tmpdir(), 'asi-kubelet-refresh-'));
    try {
      const volume = join(scratch, 'volume');
      mkdirSync(volume);
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const tr = await core.createNamespacedServiceAccountToken({
        name: 'rotating',
        namespace: pod.metadata!.namespace!,
        body: { spec: { audiences: [STS_AUDIENCE], expirationSeconds: 3600 } },
      });
      writeFileSync(join(scratch, 'token'), tr.status!.token!);
      const envOf = (c: V1Container): Record<string, string> => ({
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: scratch,
        ...resolveEnv(pod, c),
        AWS_WEB_IDENTITY_TOKEN_FILE: join(scratch, 'token'),
        AWS_ENDPOINT_URL: awsEndpoint,
        SECRET_INJECTOR_TERMINATION_LOG: join(scratch, `termination-${c.name}`),
      });
      const [command, ...entry] = startCommand(join(bundleDir, 'fetcher'));
      const argsOf = (c: V1Container) => [...entry, ...(c.args ?? []), '--dir', volume];
      const [fetcher, refresher] = pod.spec!.initContainers as [V1Container, V1Container];

      const first = await runCommand(command!, argsOf(fetcher), envOf(fetcher), { allowFailure: true, timeoutMs: 60_000 });
      expect(first.code, first.stderr).toBe(0);
      expect(readFileSync(join(volume, 'db'), 'utf8')).toBe('first-password');

      const sidecar = spawn(command!, argsOf(refresher), { env: envOf(refresher), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      sidecar.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exit = new Promise<number | null>((resolve) => sidecar.on('close', (code) => resolve(code)));
      try {
        await awsClients().secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: 'second-password' }));
        const started = Date.now();
        while (readFileSync(join(volume, 'db'), 'utf8') !== 'second-password') {
          if (Date.now() - started > 15_000) throw new Error(`the rotated value did not reach the file within 15 s; sidecar said: ${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(stderr).toContain('refresh: rewrote 1 file(s): db');
        expect(stderr).not.toContain('second-password');
      } finally {
        const stopped = Date.now();
        sidecar.kill('SIGTERM');
        const killer = setTimeout(() => sidecar.kill('SIGKILL'), 10_000);
        expect(await exit).toBe(0);
        clearTimeout(killer);
        expect(Date.now() - stopped).toBeLessThan(3_000);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 90_000);
}, 'native sidecars');
