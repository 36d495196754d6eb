// The chart's guard (a ValidatingAdmissionPolicy and its binding, rendered by the real helm) in the
// real apiserver: while the webhook is configured, annotated pods are injected and pass it; once
// the MutatingWebhookConfiguration is deleted, an annotated pod is refused with the guard's
// message, and a plain pod (or one opted out) is created as before.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { eventually, kubeRelease } from '../helpers/cluster.js';
import { registerWebhook, startWebhook, type WebhookProcess } from '../helpers/webhook-process.js';
import { CHART_DIR } from '../unit/chart-render.js';
import { describeE2E, e2e, GUARD_SUPPORTED, useNamespace } from './context.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:database-password-hlRvvF';
// Only this file's namespace is bound: the rest of the suite runs without the guard.
const LABEL = ['aws-secret-injector-e2e-guard', 'on'] as const;

function pod(name: string, annotations: Record<string, string> = {}): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, annotations }, spec: { containers: [{ name: 'app', image: 'busybox' }] } });
}

describeE2E('the guard policy: annotated pods fail closed without the webhook', () => {
  const namespace = useNamespace('guard', { [LABEL[0]]: LABEL[1] });
  let guard = '';
  let webhook: WebhookProcess | undefined;
  let unregister: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const { cluster } = e2e();
    if (!GUARD_SUPPORTED) return;
    const rendered = await cluster.helm([
      'template', 'asi', CHART_DIR, '--namespace', 'asi-guard-e2e', '--kube-version', kubeRelease().version, '--show-only', 'templates/guard.yaml',
      '--set-json', `webhook.namespaceSelector.matchExpressions=[{"key":"${LABEL[0]}","operator":"In","values":["${LABEL[1]}"]}]`,
    ]);
    guard = rendered.stdout;
    await cluster.kubectl(['apply', '-f', '-'], { input: guard });
    webhook = await startWebhook({ bundleDir: e2e().bundleDir });
    unregister = await registerWebhook(cluster, webhook);
  });
  afterAll(async () => {
    await unregister?.();
    await webhook?.stop();
    if (guard !== '') await e2e().cluster.kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: guard, allowFailure: true });
  });

  const apply = (manifest: string) => e2e().cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: manifest, allowFailure: true });

  it.runIf(!GUARD_SUPPORTED)(`before 1.30 (here ${kubeRelease().version}) the chart renders no guard`, async () => {
    const out = await e2e().cluster.helm(['template', 'asi', CHART_DIR, '--kube-version', kubeRelease().version]);
    expect(out.stdout).not.toContain('kind: ValidatingAdmissionPolicy');
  });

  it.runIf(GUARD_SUPPORTED)('with the webhook: the injected pod passes the guard', async () => {
    const out = await apply(pod('injected', { 'secrets.k8s.aws/secret-arn': ARN }));
    expect(out.code, out.stderr).toBe(0);
    const stored = JSON.parse((await e2e().cluster.kubectl(['get', 'pod', '-n', namespace(), 'injected', '-o', 'json'])).stdout);
    expect(stored.spec.initContainers[0].name).toBe('secret-fetcher');
  });

  it.runIf(GUARD_SUPPORTED)('without the MutatingWebhookConfiguration: an annotated pod is refused with the guard message; a plain pod is created', async () => {
    await unregister!();
    unregister = undefined;
    // The apiserver picks the policy up a moment after it is created. The guard checks creation
    // only: a pod admitted before then is deleted, or the next apply would be an update it passes.
    const refused = await eventually('the guard in effect', async () => {
      const out = await apply(pod('annotated', { 'secrets.k8s.aws/secret-arn': ARN }));
      if (out.code !== 0) return out;
      await e2e().cluster.kubectl(['delete', 'pod', '-n', namespace(), 'annotated'], { allowFailure: true });
      return undefined;
    });
    expect(refused.stderr).toMatch(/ValidatingAdmissionPolicy 'asi-aws-secret-injector-guard' with binding 'asi-aws-secret-injector-guard' denied request: aws-secret-injector guard: the pod asks for AWS secrets/);
    expect(refused.stderr).toContain('Fix: install or repair aws-secret-injector (helm upgrade --install), or remove the secret annotations from the pod template.');
    // A manifest the inject preview made, its fetcher since removed by hand, is refused too.
    const stale = await apply(pod('stale', { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/status': 'injected' }));
    expect(stale.stderr).toContain('aws-secret-injector guard:');
    for (const [name, annotations] of [
      ['plain', { team: 'payments' }],
      ['opted-out', { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/sidecarInjectorWebhook': 'disabled' }],
      ['options-only', { 'secrets.k8s.aws/mount-path': '/secrets' }],
    ] as const) {
      const out = await apply(pod(name, annotations));
      expect(out.code, `${name}: ${out.stderr}`).toBe(0);
    }
  });
});
