// The fetcher's CPU limit read from the pod (webhook/cpu-limit.ts), against the apiserver's own
// LimitRanger and ResourceQuota admission: LimitRange defaults reach the webhook already applied,
// a LimitRange maximum admits the injected pod, a `limits.cpu` quota charges the pod no more than
// its own containers' limits, and pod-level resources bound the fetcher.

import { expect, it } from 'vitest';
import { eventually } from '../helpers/cluster.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';

// The fetcher's memory limit is the webhook's default, whatever the pod.
const MEMORY = DEFAULT_MUTATION_CONFIG.fetcherResources.limits.memory;

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf';
type Resources = { requests?: Record<string, string>; limits?: Record<string, string> };

function pod(name: string, app: Resources | undefined, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations: { 'secrets.k8s.aws/secret-arn': ARN } },
    spec: { containers: [{ name: 'app', image: 'busybox:1.36', ...(app ? { resources: app } : {}) }], ...extra },
  };
}

async function apply(namespace: string, manifest: object, dryRun = true) {
  const args = ['apply', '-n', namespace, '-f', '-', '-o', 'json', ...(dryRun ? ['--dry-run=server'] : [])];
  return e2e().cluster.kubectl(args, { input: JSON.stringify(manifest), allowFailure: true });
}

const fetcherOf = (stdout: string) => JSON.parse(stdout).spec.initContainers[0] as { name: string; resources: Resources };

describeE2E('the fetcher\'s CPU limit, read from the pod', () => {
  useWebhook();
  const plain = useNamespace('cpu-plain');
  const ranged = useNamespace('cpu-limitrange');
  const quota = useNamespace('cpu-quota');

  it('an app without a CPU limit: the fetcher has none either', async () => {
    const out = await apply(plain(), pod('unlimited', { requests: { cpu: '50m' } }));
    expect(out.code, out.stderr).toBe(0);
    const fetcher = fetcherOf(out.stdout);
    expect(fetcher.name).toBe('secret-fetcher');
    expect(fetcher.resources.limits).toEqual({ memory: MEMORY });
  });

  it('a LimitRange: its defaults reach the webhook applied, and its per-container max admits the injected pod where the sum would not', async () => {
    const { cluster } = e2e();
    await cluster.kubectl(['apply', '-n', ranged(), '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'LimitRange',
        metadata: { name: 'cpu' },
        spec: { limits: [{ type: 'Container', default: { cpu: '700m' }, defaultRequest: { cpu: '100m' }, max: { cpu: '1' } }] },
      }),
    });
    // The app gets the default 700m from LimitRanger before the webhook sees it; the fetcher gets the same.
    const defaulted = await apply(ranged(), pod('defaulted', undefined));
    expect(defaulted.code, defaulted.stderr).toBe(0);
    expect(fetcherOf(defaulted.stdout).resources.limits).toEqual({ cpu: '700m', memory: MEMORY });

    // App and sidecar at the maximum: the fetcher gets 1, the largest, and the pod passes LimitRanger.
    const sidecar = { name: 'proxy', image: 'busybox:1.36', restartPolicy: 'Always', resources: { limits: { cpu: '1' } } };
    const full = await apply(ranged(), pod('app-and-sidecar', { limits: { cpu: '1' } }, { initContainers: [sidecar] }));
    expect(full.code, full.stderr).toBe(0);
    expect(fetcherOf(full.stdout).resources.limits).toEqual({ cpu: '1', memory: MEMORY });
    // The sum of the two, 2, is what LimitRanger would refuse for any one container.
    const summed = {
      ...pod('summed', { limits: { cpu: '1' } }, { initContainers: [{ name: 'first', image: 'busybox:1.36', resources: { limits: { cpu: '2' } } }, sidecar] }),
      metadata: { name: 'summed' },
    };
    const refused = await apply(ranged(), summed);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('maximum cpu usage per Container is 1');
  });

  it('a limits.cpu ResourceQuota charges the injected pod what its app asks, not more', async () => {
    const { cluster } = e2e();
    await cluster.kubectl(['apply', '-n', quota(), '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'cpu' }, spec: { hard: { 'limits.cpu': '600m' } } }),
    });
    await eventually('the quota has a status', async () => {
      const q = JSON.parse((await cluster.kubectl(['get', 'resourcequota', 'cpu', '-n', quota(), '-o', 'json'])).stdout);
      return q.status?.hard?.['limits.cpu'] !== undefined ? true : undefined;
    });
    const created = await apply(quota(), pod('charged', { limits: { cpu: '500m', memory: '128Mi' } }), false);
    expect(created.code, created.stderr).toBe(0);
    expect(fetcherOf(created.stdout).resources.limits).toEqual({ cpu: '500m', memory: MEMORY });
    await eventually('the quota charges 500m', async () => {
      const q = JSON.parse((await cluster.kubectl(['get', 'resourcequota', 'cpu', '-n', quota(), '-o', 'json'])).stdout);
      return q.status?.used?.['limits.cpu'] === '500m' ? true : undefined;
    });
  });

  it('pod-level resources: the fetcher takes the pod\'s limit, which the apiserver accepts', async () => {
    const out = await apply(plain(), pod('pod-level', undefined, { resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '256Mi' } } }));
    expect(out.code, out.stderr).toBe(0);
    expect(fetcherOf(out.stdout).resources.limits).toEqual({ cpu: '2', memory: MEMORY });
  });
});
