import { describe, expect, it } from 'vitest';
import { parseSpec, SPEC_ENV } from '../fetcher/spec.js';
import { PREFIX } from './annotations.js';
import { expandLikeKubelet, kubeletLiteral } from './kubelet-env.js';
import { reviewPod } from './review.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG } from './types.js';

describe('expandLikeKubelet: the kubelet\'s rules', () => {
  it.each([
    ['plain', {}, 'plain'],
    ['$$', {}, '$'],
    ['a$$(B)c', { B: 'x' }, 'a$(B)c'],
    ['$(B)', { B: 'x' }, 'x'],
    ['$(MISSING)', {}, '$(MISSING)'],
    ['$(unclosed', {}, '$(unclosed'],
    ['$x', {}, '$x'],
    ['end$', {}, 'end$'],
    ['$$$(B)', { B: 'x' }, '$x'],
  ])('%j with %j -> %j', (value, vars, want) => expect(expandLikeKubelet(value, vars)).toBe(want));

  it.each(['$(HOME)', '$$', 'a$b', '$', '$$(X)$', 'no dollar', '$(PATH)$(PATH)'])('kubeletLiteral(%j) comes out of the kubelet unchanged', (v) => {
    expect(expandLikeKubelet(kubeletLiteral(v), { HOME: '/root', PATH: '/bin', X: 'x' })).toBe(v);
  });
});

describe('every value the webhook writes into the fetcher\'s env reaches it literally', () => {
  const keyed = {
    [`${PREFIX}region`]: 'us-east-1',
    [`${PREFIX}secrets`]: '- ref: db\n  key: $(SECRET_INJECTOR_POD_NAME)\n  file: a\n- ref: api\n  key: a$$b$\n  file: c',
  };
  const pod = {
    metadata: { name: 'app', annotations: keyed },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  };
  const network = { ...CONFIG, fetcherNetworkEnv: [{ name: 'HTTPS_PROXY' as const, value: 'http://proxy.internal:3128/$(X)' }] };

  it('the spec (keys, files) and the network settings, with the pod\'s own variables defined before them', () => {
    const out = reviewPod(pod, network);
    expect(out.outcome === 'denied' ? out.message : out.outcome).toBe('injected');
    if (out.outcome !== 'injected') return;
    const init = out.pod.spec.initContainers![0]!;
    // The kubelet resolves each value against the variables defined before it in the container.
    const vars: Record<string, string> = { SECRET_INJECTOR_POD_NAME: 'app-1', X: 'x' };
    const seen = Object.fromEntries(init.env!.filter((e) => e.value !== undefined).map((e) => [e.name, expandLikeKubelet(e.value!, vars)]));
    const spec = parseSpec(seen[SPEC_ENV]!);
    expect(spec).toHaveProperty('spec');
    if (!('spec' in spec)) return;
    expect(spec.spec.items.map((i) => [i.key, i.file])).toEqual([
      ['$(SECRET_INJECTOR_POD_NAME)', 'a'],
      ['a$$b$', 'c'],
    ]);
    expect(seen.HTTPS_PROXY).toBe('http://proxy.internal:3128/$(X)');
  });
});
