// The chart's write-through writer, rendered by the real helm: off by default; when on, a second
// Deployment with its own ServiceAccount, Service, certificate and MutatingWebhookConfiguration
// (labelled Secrets only, fail closed, NoneOnDryRun), and the pods' webhook still without AWS.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../webhook/config.js';
import { findTool } from '../helpers/tools.js';
import { CERT_MODES, CHART_DIR, renderChart, runHelm, valueArgs, type K8sObject } from './chart-render.js';

const helm = findTool('helm');
const suite = helm ? describe : describe.skip;
const HELM = helm ?? '';
type Json = Record<string, any>;

const named = (objects: K8sObject[], kind: string, name: string): Json => {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0] as Json;
};
const envOf = (deployment: Json): Record<string, string> =>
  Object.fromEntries((deployment.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]));

const ON = { 'writeThrough.enabled': true, 'writeThrough.cluster': 'prod-eu1', 'writeThrough.region': 'eu-west-1' };

suite('chart: write-through', () => {
  it('is off by default: no writer, and the pods\' webhook gets no WRITE_THROUGH_* setting', () => {
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec' });
    expect(objects.filter((o) => o.metadata.name.includes('write-through'))).toEqual([]);
    expect(Object.keys(envOf(named(objects, 'Deployment', 'acme-aws-secret-injector'))).filter((k) => k.startsWith('WRITE_THROUGH'))).toEqual([]);
  });

  it('writeThrough.cluster alone gives the pods\' webhook the store settings for fromSecret', () => {
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec', set: { 'writeThrough.cluster': 'prod-eu1' } });
    expect(envOf(named(objects, 'Deployment', 'acme-aws-secret-injector'))).toMatchObject({ WRITE_THROUGH_CLUSTER: 'prod-eu1', WRITE_THROUGH_PREFIX: 'k8s' });
    expect(objects.filter((o) => o.kind === 'Deployment')).toHaveLength(1);
  });

  it.each(Object.entries(CERT_MODES))('with certificates.mode=%s: helm lint is clean and the writer has its own objects', (_mode, set) => {
    const values = { ...set, ...ON };
    const lint = runHelm(HELM, ['lint', '--strict', CHART_DIR, ...valueArgs(values)]);
    expect(lint.stderr + lint.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec', set: values });
    const name = 'acme-aws-secret-injector-write-through';
    const deployment = named(objects, 'Deployment', name);
    named(objects, 'ServiceAccount', name);
    const service = named(objects, 'Service', name);
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe(name);
    expect(pod.containers[0].args).toEqual(['write-through']);
    // Neither selects the other's pods.
    const webhookSelector = named(objects, 'Deployment', 'acme-aws-secret-injector').spec.selector.matchLabels;
    expect(Object.entries(webhookSelector).every(([k, v]) => pod.metadata?.labels?.[k] === v || deployment.spec.template.metadata.labels[k] === v)).toBe(false);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    const w = named(objects, 'MutatingWebhookConfiguration', name).webhooks[0];
    expect(w).toMatchObject({
      name: 'write-through.secrets.k8s.aws',
      sideEffects: 'NoneOnDryRun',
      failurePolicy: 'Fail',
      rules: [{ operations: ['CREATE', 'UPDATE', 'DELETE'], apiGroups: [''], apiVersions: ['v1'], resources: ['secrets'], scope: 'Namespaced' }],
      objectSelector: { matchLabels: { 'secrets.k8s.aws/write-through': 'true' } },
    });
    expect(w.namespaceSelector.matchExpressions[0].values).toEqual(['kube-system', 'kube-public', 'kube-node-lease', 'sec']);
    expect(w.clientConfig.service).toEqual({ name, namespace: 'sec', path: '/mutate', port: 443 });
  });

  it("the writer's environment is what its settings loader accepts, and the writer alone has an AWS region", () => {
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec', set: { ...ON, 'writeThrough.deletionPolicy': 'Delete', 'writeThrough.timeoutSeconds': 15 } });
    const env = envOf(named(objects, 'Deployment', 'acme-aws-secret-injector-write-through'));
    expect(env).toMatchObject({ WRITE_THROUGH_CLUSTER: 'prod-eu1', AWS_REGION: 'eu-west-1', WRITE_THROUGH_DELETION_POLICY: 'Delete', WRITE_THROUGH_DEADLINE_SECONDS: '13', WRITE_THROUGH_NAMESPACE: 'sec' });
    expect(envOf(named(objects, 'Deployment', 'acme-aws-secret-injector')).AWS_REGION).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'asi-wt-env-'));
    try {
      env.TLS_CERT_FILE = join(dir, 'c');
      env.TLS_KEY_FILE = join(dir, 'k');
      writeFileSync(env.TLS_CERT_FILE, '');
      writeFileSync(env.TLS_KEY_FILE, '');
      const loaded = loadConfig([], env);
      expect(loaded).toHaveProperty('config');
      if ('config' in loaded) expect(loaded.config.writeThrough).toMatchObject({ deletionPolicy: 'Delete', deadlineSeconds: 13, namespace: 'sec' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses writeThrough.enabled without a cluster name, naming the value', () => {
    const r = runHelm(HELM, ['template', 'r', CHART_DIR, ...valueArgs({ 'writeThrough.enabled': true })]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('writeThrough.enabled needs writeThrough.cluster');
  });

  it('guards the final state with a ValidatingAdmissionPolicy from Kubernetes 1.30: a labelled Secret is never stored with data', () => {
    const on = (version: string) => renderChart(HELM, { release: 'acme', namespace: 'sec', set: ON, extra: ['--kube-version', version] });
    const objects = on('1.31.0');
    const policy = named(objects, 'ValidatingAdmissionPolicy', 'acme-aws-secret-injector-write-through');
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.matchConstraints.objectSelector).toEqual({ matchLabels: { 'secrets.k8s.aws/write-through': 'true' } });
    expect(policy.spec.validations[0].expression).toBe('!has(object.data) || size(object.data) == 0');
    const binding = named(objects, 'ValidatingAdmissionPolicyBinding', 'acme-aws-secret-injector-write-through');
    expect(binding.spec).toMatchObject({ policyName: 'acme-aws-secret-injector-write-through', validationActions: ['Deny'] });
    expect(on('1.29.0').filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy') && o.metadata.name.endsWith('-write-through'))).toEqual([]);
  });
});
