import { describe, expect, it } from 'vitest';
import { cpuLimits } from './cpu-limit.js';
import type { Container, Pod } from './mutate.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG, type MutationConfig } from './types.js';

const c = (name: string, cpu?: string, extra: Partial<Container> = {}): Container => ({
  name,
  image: 'busybox:1.36',
  ...(cpu === undefined ? {} : { resources: { limits: { cpu, memory: '64Mi' } } }),
  ...extra,
});
const pod = (containers: Container[], initContainers: Container[] = [], podLimit?: string): Pod => ({
  metadata: { name: 'p' },
  spec: { containers, initContainers, ...(podLimit === undefined ? {} : { resources: { limits: { cpu: podLimit } } }) },
});
const sidecar = (name: string, cpu?: string) => c(name, cpu, { restartPolicy: 'Always' });

describe('cpuLimits (policy pod, floor 200m, refresher 100m)', () => {
  it.each([
    ['an app without a limit: the pod is unlimited, so are ours', pod([c('app')]), {}],
    ['one limited app, one not: still unlimited', pod([c('app', '1'), c('logger')]), {}],
    ['an unlimited sidecar makes the pod unlimited', pod([c('app', '1')], [sidecar('proxy')]), {}],
    ['an app above the floor: the app\'s limit', pod([c('app', '1500m')]), { fetcher: '1500m', refresher: '100m' }],
    ['an app below the floor: the floor', pod([c('app', '50m')]), { fetcher: '200m', refresher: '100m' }],
    ['app and sidecar: the larger, not the sum (a LimitRange max admits each)', pod([c('app', '1')], [sidecar('proxy', '500m')]), { fetcher: '1', refresher: '100m' }],
    ['a larger ordinary init container already sets the pod\'s limit', pod([c('app', '300m')], [c('migrate', '2')]), { fetcher: '2', refresher: '100m' }],
    ['pod-level limit, no container limits: the pod\'s', pod([c('app')], [], '2'), { fetcher: '2', refresher: '100m' }],
    ['pod-level limit and a limited container: the container\'s', pod([c('app', '700m')], [], '2'), { fetcher: '700m', refresher: '100m' }],
    ['pod-level limit below the floor: the floor (validateResources refuses it)', pod([c('app')], [], '100m'), { fetcher: '200m', refresher: '100m' }],
    ['a numeric limit', pod([c('app', undefined, { resources: { limits: { cpu: 3 as unknown as string } } })]), { fetcher: '3', refresher: '100m' }],
  ])('%s', (_what, p, want) => {
    expect(cpuLimits(p, CONFIG)).toEqual(want);
  });

  it('no floor configured: the pod\'s limit alone', () => {
    const config: MutationConfig = { ...CONFIG, fetcherResources: { requests: CONFIG.fetcherResources.requests, limits: { memory: '64Mi' } } };
    expect(cpuLimits(pod([c('app', '50m')]), config)).toEqual({ fetcher: '50m', refresher: '100m' });
  });

  it('policy fixed: exactly the configured limits, whatever the pod', () => {
    const config: MutationConfig = { ...CONFIG, cpuLimitPolicy: 'fixed' };
    expect(cpuLimits(pod([c('app')]), config)).toEqual({ fetcher: '200m', refresher: '100m' });
    expect(cpuLimits(pod([c('app', '4')]), config)).toEqual({ fetcher: '200m', refresher: '100m' });
  });
});
