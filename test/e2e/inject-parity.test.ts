// `inject` equals the webhook: the chart rendered by the real helm with non-default values (native
// sidecars off, a proxy, a CA bundle, other resources and image), the webhook started with the
// environment the chart gives it, and for every golden pod, the apiserver's dry-run create through
// the webhook stores exactly what it stores for `aws-secret-injector inject --values` of the same
// pod (which carries the status annotation, so the webhook leaves it alone); a pod the webhook
// refuses, inject refuses with the same message.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OPTIONS } from '../../webhook/config.js';
import { SERVER_OPTIONS } from '../../webhook/inject-cli.js';
import { registerWebhook, startWebhook, type WebhookProcess } from '../helpers/webhook-process.js';
import { CHART_DIR, parseManifests } from '../unit/chart-render.js';
import { describeE2E, e2e, useNamespace } from './context.js';
import { createDryRun, loadFixtures, normalise } from './replay.js';

const VALUES = {
  nativeSidecars: false,
  volumeSizeLimit: '16Mi',
  fetcher: {
    image: { repository: 'registry.example.com/team/fetcher', tag: 'parity' },
    deadlineSeconds: 20,
    resources: { requests: { cpu: '20m', memory: '48Mi' }, limits: { cpu: '300m', memory: '96Mi' } },
    network: { httpsProxy: 'http://proxy.internal:3128', noProxy: '.internal,169.254.170.23', caBundle: { configMap: 'corp-ca', key: 'bundle.pem' } },
  },
  refresher: { resources: { requests: { cpu: '6m', memory: '40Mi' }, limits: { memory: '72Mi' } } },
};

const dir = mkdtempSync(join(tmpdir(), 'asi-parity-'));
const valuesFile = join(dir, 'values.yaml');
writeFileSync(valuesFile, JSON.stringify(VALUES));

const fixtures = loadFixtures().filter((f) => f.object?.kind === 'Pod');

describeE2E('inject equals the webhook under non-default settings', () => {
  let webhook: WebhookProcess | undefined;
  let unregister: (() => Promise<void>) | undefined;
  const namespace = useNamespace('parity');

  beforeAll(async () => {
    const { cluster, bundleDir } = e2e();
    // The webhook container's environment as the chart renders it for VALUES, server settings left out.
    const out = await cluster.helm(['template', 'parity', CHART_DIR, '--namespace', 'asi-parity', '--kube-version', '1.36.3', '--values', valuesFile]);
    const deployment = parseManifests(out.stdout).find((o) => o.kind === 'Deployment' && o.metadata.name === 'parity-aws-secret-injector')!;
    const rendered = (deployment.spec as any).template.spec.containers.find((c: any) => c.name === 'webhook').env as Array<{ name: string; value: string }>;
    const server = new Set(SERVER_OPTIONS.map((k) => OPTIONS[k].env));
    const env = Object.fromEntries(rendered.filter((e) => !server.has(e.name)).map((e) => [e.name, e.value]));
    webhook = await startWebhook({ bundleDir, env });
    unregister = await registerWebhook(cluster, webhook);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    for (const name of new Set(fixtures.map((f) => f.object.spec?.serviceAccountName).filter(Boolean) as string[])) {
      await core.createNamespacedServiceAccount({ namespace: namespace(), body: { metadata: { name } } });
    }
  });
  afterAll(async () => {
    try {
      await unregister?.();
    } finally {
      await webhook?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the webhook runs with the chart\'s environment for these values', () => {
    expect(webhook!.log()).toContain('registry.example.com/team/fetcher:parity');
    expect(fixtures.length).toBeGreaterThan(15);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (_name, f) => {
    const { cluster, bundleDir } = e2e();
    const object = { ...f.object, metadata: { ...f.object.metadata, namespace: namespace() } };
    const viaWebhook = await createDryRun(cluster, namespace(), object);
    const inject = spawnSync(process.execPath, [join(bundleDir, 'cli.mjs'), 'inject', '--values', valuesFile, '-f', '-'], { input: JSON.stringify(object), encoding: 'utf8' });
    if (viaWebhook.code !== 0) {
      const message = /denied the request: (.*)$/m.exec(viaWebhook.stderr)?.[1];
      expect(message, viaWebhook.stderr).toBeDefined();
      expect(inject.status, inject.stderr).toBe(1);
      expect(inject.stderr).toContain(message!);
      return;
    }
    expect(inject.status, inject.stderr).toBe(0);
    for (const w of viaWebhook.stderr.split('\n').filter((l) => l.startsWith('Warning: '))) expect(inject.stderr).toContain(w.slice('Warning: '.length));
    const viaInject = await createDryRun(cluster, namespace(), parse(inject.stdout));
    expect(viaInject.code, viaInject.stderr).toBe(0);
    expect(normalise(viaInject.object)).toEqual(normalise(viaWebhook.object));
  });
});
