// The Helm chart, rendered by the real helm: lint, every certificate mode and notable value,
// the webhook configuration's safety properties, least-privilege RBAC, the pod's hardening, the
// schema's errors, and the values that flow into the webhook's environment.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMap, parseDocument, type YAMLMap } from 'yaml';
import { SPEC_ENV } from '../../fetcher/spec.js';
import { checkValues, envFromValues, VALUE_ENV } from '../../webhook/chart-values.js';
import { loadConfig, OPTIONS } from '../../webhook/config.js';
import { SERVER_OPTIONS } from '../../webhook/inject-cli.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { findTool, missingToolMessage } from '../helpers/tools.js';
import { ANNOTATED_POD_CONDITION, ANNOTATED_TEMPLATE_CONDITION, TEMPLATES_WEBHOOK_NAME, WEBHOOK_NAME } from '../helpers/webhook-process.js';
import { CERT_MODES, CHART_DIR, one, renderChart, runHelm, servingCertificate, valueArgs, type K8sObject } from './chart-render.js';

const helm = findTool('helm');
if (!helm) console.warn(`skipping the chart specs: ${missingToolMessage('helm')}`);
const suite = helm ? describe : describe.skip;
const HELM = helm ?? '';

type Json = Record<string, any>;
const spec = (o: K8sObject): Json => o.spec as Json;
const webhookOf = (objects: K8sObject[]): Json => (one(objects, 'MutatingWebhookConfiguration').webhooks as Json[])[0]!;
const podSpec = (objects: K8sObject[]): Json => spec(one(objects, 'Deployment')).template.spec;
const container = (objects: K8sObject[]): Json => podSpec(objects).containers[0];
function envOf(objects: K8sObject[]): Record<string, string> {
  return Object.fromEntries((container(objects).env as Json[]).map((e) => [e.name, e.value]));
}

/** The webhook's own configuration loader, fed the chart's environment (TLS files stood in for). */
function loadChartEnv(objects: K8sObject[]) {
  const dir = mkdtempSync(join(tmpdir(), 'asi-chart-env-'));
  try {
    const env = envOf(objects);
    env.TLS_CERT_FILE = join(dir, 'tls.crt');
    env.TLS_KEY_FILE = join(dir, 'tls.key');
    writeFileSync(env.TLS_CERT_FILE, '');
    writeFileSync(env.TLS_KEY_FILE, '');
    return loadConfig([...(container(objects).args as string[]).slice(1)], env);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

suite('chart: lint', () => {
  it.each(Object.entries(CERT_MODES))('helm lint --strict is clean with certificates.mode=%s', (_mode, set) => {
    const r = runHelm(HELM, ['lint', '--strict', CHART_DIR, ...valueArgs(set)]);
    expect(r.stderr + r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(r.ok).toBe(true);
  });
});

suite('chart: default values', () => {
  const objects = renderChart(HELM, { release: 'acme', namespace: 'secrets-system' });

  it('renders the expected objects, each once', () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole/acme-aws-secret-injector',
        'ClusterRoleBinding/acme-aws-secret-injector',
        'Deployment/acme-aws-secret-injector',
        'MutatingWebhookConfiguration/0-acme-aws-secret-injector',
        'NetworkPolicy/acme-aws-secret-injector',
        'ValidatingAdmissionPolicy/acme-aws-secret-injector-guard',
        'ValidatingAdmissionPolicyBinding/acme-aws-secret-injector-guard',
        'PodDisruptionBudget/acme-aws-secret-injector',
        'Role/acme-aws-secret-injector',
        'RoleBinding/acme-aws-secret-injector',
        'Secret/acme-aws-secret-injector-tls',
        'Service/acme-aws-secret-injector',
        'Service/acme-aws-secret-injector-metrics',
        'ServiceAccount/acme-aws-secret-injector',
      ].sort(),
    );
    for (const o of objects) {
      if (!['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind)) {
        expect(o.metadata.namespace, `${o.kind} namespace`).toBe('secrets-system');
      }
    }
  });

  it('configures the webhook: v1 reviews, no side effects, short timeout, reinvocation, pod CREATE', () => {
    const w = webhookOf(objects);
    expect(w.admissionReviewVersions).toEqual(['v1']);
    expect(w.sideEffects).toBe('None');
    expect(w.timeoutSeconds).toBeGreaterThanOrEqual(1);
    expect(w.timeoutSeconds).toBeLessThanOrEqual(10);
    expect(w.reinvocationPolicy).toBe('IfNeeded');
    expect(w.rules).toEqual([
      { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
    ]);
    expect(w.clientConfig).toEqual({
      service: { name: 'acme-aws-secret-injector', namespace: 'secrets-system', path: '/mutate', port: 443 },
    });
  });

  it('names the configuration so that it sorts before EKS pod-identity-webhook', () => {
    const name = one(objects, 'MutatingWebhookConfiguration').metadata.name;
    // The API server orders configurations with Go's byte-wise string comparison.
    expect(Buffer.compare(Buffer.from(name), Buffer.from('pod-identity-webhook'))).toBeLessThan(0);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });

  it('sends only pods with a secrets.k8s.aws/ annotation, and fails closed for exactly those', () => {
    const w = webhookOf(objects);
    expect(w.failurePolicy).toBe('Fail');
    expect(w.matchConditions).toHaveLength(1);
    const expr: string = w.matchConditions[0].expression;
    // Absent annotations must not be an evaluation error (that would apply failurePolicy).
    expect(expr).toMatch(/^has\(object\.metadata\.annotations\) &&/);
    expect(expr).toContain("startsWith('secrets.k8s.aws/')");
  });

  it('reviews workload templates too, never blocking a deployment: Ignore, no reinvocation, the e2e suite\'s condition', () => {
    const hooks = one(objects, 'MutatingWebhookConfiguration').webhooks as Json[];
    expect(hooks.map((h) => h.name)).toEqual([WEBHOOK_NAME, TEMPLATES_WEBHOOK_NAME]);
    const t = hooks[1]!;
    expect(t).toMatchObject({ failurePolicy: 'Ignore', reinvocationPolicy: 'Never', sideEffects: 'None', timeoutSeconds: 5 });
    expect(t.clientConfig.service).toEqual({ name: 'acme-aws-secret-injector', namespace: 'secrets-system', path: '/templates', port: 443 });
    expect(t.rules).toEqual([
      { operations: ['CREATE', 'UPDATE'], apiGroups: ['apps'], apiVersions: ['v1'], resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets'], scope: 'Namespaced' },
      { operations: ['CREATE', 'UPDATE'], apiGroups: ['batch'], apiVersions: ['v1'], resources: ['jobs', 'cronjobs'], scope: 'Namespaced' },
    ]);
    expect(t.namespaceSelector).toEqual(hooks[0]!.namespaceSelector);
    // The e2e suite registers the same conditions the chart ships.
    expect(t.matchConditions).toEqual([{ name: 'template-asks-for-secrets', expression: ANNOTATED_TEMPLATE_CONDITION }]);
    expect(hooks[0]!.matchConditions).toEqual([{ name: 'asks-for-secrets', expression: ANNOTATED_POD_CONDITION }]);
    expect(webhookOf(renderChart(HELM, { set: { 'webhook.templates.enabled': false } })).name).toBe(WEBHOOK_NAME);
    expect((one(renderChart(HELM, { set: { 'webhook.templates.enabled': false } }), 'MutatingWebhookConfiguration').webhooks as Json[]).length).toBe(1);
  });

  it('the guard: pods asking for secrets without our fetcher are refused, in the webhook\'s namespaces, kept on uninstall', () => {
    const policy = one(objects, 'ValidatingAdmissionPolicy');
    expect(policy.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
    const p = spec(policy);
    expect(p.failurePolicy).toBe('Fail');
    expect(p.validations[0].expression).toContain(`e.name == '${SPEC_ENV}'`);
    expect(p.validations[0].message).toMatch(/^aws-secret-injector guard: .* Fix: install or repair aws-secret-injector/);
    const binding = spec(one(objects, 'ValidatingAdmissionPolicyBinding'));
    expect(binding).toMatchObject({ policyName: 'acme-aws-secret-injector-guard', validationActions: ['Deny'] });
    expect(binding.matchResources.namespaceSelector).toEqual(webhookOf(objects).namespaceSelector);
    const kept = renderChart(HELM, { set: { 'guard.keepOnUninstall': false } });
    expect(one(kept, 'ValidatingAdmissionPolicy').metadata.annotations).toBeUndefined();
    expect(renderChart(HELM, { set: { 'guard.enabled': false } }).filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
    // Before 1.30 (no v1 ValidatingAdmissionPolicy) it is left out, and NOTES say so.
    const old = renderChart(HELM, { extra: ['--kube-version', '1.29.4'] });
    expect(old.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
  });

  it('inject --values configures the mutation as the chart does: the webhook environment of non-default values', () => {
    const values = {
      nativeSidecars: false,
      defaultMountPath: '/var/run/app',
      volumeSizeLimit: '8Mi',
      fetcher: {
        image: { repository: 'registry.example.com/fetcher', tag: 'x', pullPolicy: 'Always' },
        uid: 1001,
        deadlineSeconds: 20,
        nodeCredentials: 'allow',
        resources: { requests: { cpu: '20m', memory: '40Mi' }, limits: { cpu: null, memory: '80Mi' } },
        network: { httpsProxy: 'http://proxy.internal:3128', noProxy: '.internal', useFipsEndpoint: true, caBundle: { configMap: 'corp-ca', key: 'bundle.pem' } },
      },
      refresher: { resources: { requests: { cpu: '6m' }, limits: null } },
    };
    const server = new Set(SERVER_OPTIONS.map((k) => OPTIONS[k].env));
    const dir = mkdtempSync(join(tmpdir(), 'asi-values-'));
    try {
      writeFileSync(join(dir, 'values.yaml'), JSON.stringify(values));
      const chart = envOf(renderChart(HELM, { extra: ['--values', join(dir, 'values.yaml')] }));
      const mutationEnv = (env: Record<string, string>) => {
        const loaded = loadConfig([], Object.fromEntries(Object.entries(env).filter(([k]) => !server.has(k))));
        if (!('config' in loaded)) throw new Error(JSON.stringify(loaded));
        return loaded.config.mutation;
      };
      expect(mutationEnv(envFromValues(values))).toEqual(mutationEnv(chart));
      expect(mutationEnv(envFromValues({}, '1.36.3'))).toEqual(mutationEnv(envOf(objects)));
      // Every variable the chart gives the webhook is in inject's table, or a server setting.
      const mapped = new Set([...VALUE_ENV.map(([env]) => env), 'FETCHER_IMAGE', 'NATIVE_SIDECARS']);
      expect(Object.keys(chart).filter((k) => !mapped.has(k) && !server.has(k))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['a key the chart does not have', { fetcher: { resources: { limit: { cpu: '1' } } } }, false],
    ['a number out of range', { fetcher: { deadlineSeconds: 0 } }, false],
    ['a value outside an enum', { cpuLimitPolicy: 'sum' }, false],
    ['an http endpoint', { fetcher: { network: { endpoints: { sts: 'http://sts.internal' } } } }, false],
    ['a required value left to the default', { image: { tag: 'x' } }, true],
    ['a null removing a required default', { fetcher: { uid: null } }, false],
    ['a null removing a default', { fetcher: { deadlineSeconds: null, resources: { limits: null } } }, true],
  ])('inject --values refuses what helm refuses: %s', (_what, values, accepted) => {
    const dir = mkdtempSync(join(tmpdir(), 'asi-values-'));
    try {
      writeFileSync(join(dir, 'values.yaml'), JSON.stringify(values));
      const r = runHelm(HELM, ['template', 'r', CHART_DIR, '--values', join(dir, 'values.yaml')]);
      expect(r.ok, r.stderr).toBe(accepted);
      expect(checkValues(values)).toHaveLength(accepted ? 0 : 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves out kube-system, the release namespace and opted-out namespaces', () => {
    expect(webhookOf(objects).namespaceSelector).toEqual({
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'secrets-system'] },
        { key: 'secrets.k8s.aws/injection', operator: 'NotIn', values: ['disabled'] },
      ],
    });
  });

  it('grants only its own TLS Secret and its own webhook configuration, by name', () => {
    const role = one(objects, 'Role');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['acme-aws-secret-injector-tls'], verbs: ['get', 'update'] },
    ]);
    const clusterRole = one(objects, 'ClusterRole');
    expect(clusterRole.rules).toEqual([
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['mutatingwebhookconfigurations'],
        resourceNames: ['0-acme-aws-secret-injector'],
        verbs: ['get', 'patch'],
      },
    ]);
    for (const b of [one(objects, 'RoleBinding'), one(objects, 'ClusterRoleBinding')]) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'acme-aws-secret-injector', namespace: 'secrets-system' }]);
    }
  });

  it('runs 2 replicas spread over nodes, with a PodDisruptionBudget', () => {
    const d = one(objects, 'Deployment');
    expect(spec(d).replicas).toBe(2);
    const ps = podSpec(objects);
    expect(ps.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe(
      'kubernetes.io/hostname',
    );
    expect(ps.topologySpreadConstraints.map((t: Json) => t.topologyKey)).toEqual([
      'topology.kubernetes.io/zone',
      'kubernetes.io/hostname',
    ]);
    const pdb = one(objects, 'PodDisruptionBudget');
    expect(spec(pdb)).toEqual({ minAvailable: 1, selector: spec(d).selector });
    expect(spec(one(objects, 'Service', 'acme-aws-secret-injector')).selector).toEqual(spec(d).selector.matchLabels);
  });

  it('hardens the pod: non-root, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const ps = podSpec(objects);
    expect(ps.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(ps.securityContext.runAsUser).toBeGreaterThan(0);
    for (const c of [...ps.containers, ...(ps.initContainers ?? [])]) {
      expect(c.securityContext, c.name).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    }
    expect(container(objects).resources.requests).toBeDefined();
  });

  it('probes /healthz and /readyz over HTTPS on the monitoring port, apart from the reviews', () => {
    const c = container(objects);
    expect(c.ports).toEqual([
      { name: 'https', containerPort: 8443, protocol: 'TCP' },
      { name: 'monitor', containerPort: 8444, protocol: 'TCP' },
    ]);
    expect(envOf(objects)).toMatchObject({ PORT: '8443', MONITOR_PORT: '8444' });
    expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'monitor', scheme: 'HTTPS' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'monitor', scheme: 'HTTPS' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'monitor', scheme: 'HTTPS' });
    expect(c.args).toEqual(['webhook']);
  });

  it('sets only environment variables the webhook knows, with their defaults', () => {
    const known = new Set(Object.values(OPTIONS).map((o) => o.env));
    const env = envOf(objects);
    for (const name of Object.keys(env)) expect(known.has(name), `${name} is not a webhook option`).toBe(true);
    const defaults = Object.fromEntries(Object.values(OPTIONS).map((o) => [o.env, o.default]));
    for (const name of [
      'PORT',
      'LOG_LEVEL',
      'FETCHER_IMAGE_PULL_POLICY',
      'FETCHER_CPU_REQUEST',
      'FETCHER_MEMORY_REQUEST',
      'FETCHER_CPU_LIMIT',
      'FETCHER_MEMORY_LIMIT',
      'FETCHER_UID',
      'DEFAULT_MOUNT_PATH',
      'REFRESHER_CPU_REQUEST',
      'REFRESHER_MEMORY_REQUEST',
      'REFRESHER_CPU_LIMIT',
      'REFRESHER_MEMORY_LIMIT',
      'FETCHER_NODE_CREDENTIALS',
      'SHUTDOWN_TIMEOUT_SECONDS',
    ]) {
      expect(env[name], name).toBe(defaults[name]);
    }
    // No sizeLimit, the webhook's default: left out, as the apiserver would drop an empty value.
    expect(defaults.VOLUME_SIZE_LIMIT).toBe('');
    expect(env.VOLUME_SIZE_LIMIT).toBeUndefined();
    expect(env.FETCHER_IMAGE).toBe('ghcr.io/aws-secret-injector/fetcher:0.1.0');
    expect(env.TLS_CERT_FILE).toBe('/etc/aws-secret-injector/tls/tls.crt');
    expect(env.TLS_KEY_FILE).toBe('/etc/aws-secret-injector/tls/tls.key');
    const mount = (container(objects).volumeMounts as Json[]).find((m) => m.name === 'tls');
    expect(mount).toEqual({ name: 'tls', mountPath: '/etc/aws-secret-injector/tls', readOnly: true });
    expect(env.FETCH_DEADLINE_SECONDS).toBeUndefined();
  });

  it("the webhook's configuration loader accepts the chart's environment as it is", () => {
    const loaded = loadChartEnv(objects);
    expect(loaded).toHaveProperty('config');
    if (!('config' in loaded)) return;
    expect(loaded.config.port).toBe(8443);
    expect(loaded.config.mutation.fetcherImage).toBe('ghcr.io/aws-secret-injector/fetcher:0.1.0');
  });
});

suite('chart: certificate modes', () => {
  it('self-managed: an empty Secret, certs bootstrap before the webhook and certs manage beside it, sharing an in-memory directory', () => {
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec', set: CERT_MODES['self-managed'] });
    const secret = one(objects, 'Secret');
    expect(secret.metadata.name).toBe('acme-aws-secret-injector-tls');
    expect(secret.data).toBeUndefined();
    expect(secret.stringData).toBeUndefined();
    const ps = podSpec(objects);
    const bootstrap = ps.initContainers as Json[];
    const manage = (ps.containers as Json[]).filter((c) => c.name !== 'webhook');
    expect(bootstrap.map((c) => c.name)).toEqual(['certs-bootstrap']);
    expect(manage.map((c) => c.name)).toEqual(['certs-manage']);
    for (const [c, command] of [[bootstrap[0]!, 'bootstrap'], [manage[0]!, 'manage']] as const) {
      expect(c.args).toEqual([
        'certs',
        command,
        '--namespace=sec',
        '--secret=acme-aws-secret-injector-tls',
        '--service=acme-aws-secret-injector',
        '--webhook-configuration=0-acme-aws-secret-injector',
        '--validity-days=365',
        '--ca-validity-days=3650',
        '--out=/etc/aws-secret-injector/tls',
        '--log-level=info',
      ]);
      expect(c.image).toBe(container(objects).image);
      expect(c.volumeMounts).toEqual([
        { name: 'tls', mountPath: '/etc/aws-secret-injector/tls' },
        { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
      ]);
    }
    // Only the certs containers hold an API token; the webhook container, which faces the network, has none.
    expect(ps.automountServiceAccountToken).toBe(false);
    expect(container(objects).volumeMounts.map((m: Json) => m.name)).toEqual(['tls']);
    expect(ps.volumes.map((v: Json) => v.name)).toEqual(['tls', 'kube-api-access']);
    expect(ps.volumes[0]).toEqual({ name: 'tls', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
    expect(ps.volumes[1].projected.sources.map((src: Json) => Object.keys(src)[0])).toEqual(['serviceAccountToken', 'configMap', 'downwardAPI']);
    expect(webhookOf(objects).clientConfig.caBundle).toBeUndefined();
    expect(one(objects, 'MutatingWebhookConfiguration').metadata.annotations).toBeUndefined();
  });

  it('cert-manager: a Certificate for the Service from a CA of its own, the cainjector annotation, no RBAC', () => {
    const objects = renderChart(HELM, { release: 'acme', namespace: 'sec', set: CERT_MODES['cert-manager'] });
    const cert = one(objects, 'Certificate', 'acme-aws-secret-injector');
    expect(spec(cert).secretName).toBe('acme-aws-secret-injector-tls');
    expect(spec(cert).dnsNames).toEqual([
      'acme-aws-secret-injector',
      'acme-aws-secret-injector.sec',
      'acme-aws-secret-injector.sec.svc',
      'acme-aws-secret-injector.sec.svc.cluster.local',
    ]);
    expect(spec(cert).issuerRef).toEqual({ kind: 'Issuer', name: 'acme-aws-secret-injector' });
    expect(spec(cert).ipAddresses).toBeUndefined();
    // The serving certificate's issuer is a CA (renewing the certificate keeps caBundle), itself
    // a self-signed Certificate that keeps its key when renewed.
    expect(spec(one(objects, 'Issuer', 'acme-aws-secret-injector'))).toEqual({ ca: { secretName: 'acme-aws-secret-injector-ca' } });
    const ca = one(objects, 'Certificate', 'acme-aws-secret-injector-ca');
    expect(spec(ca)).toMatchObject({
      isCA: true,
      secretName: 'acme-aws-secret-injector-ca',
      duration: '87600h',
      privateKey: { rotationPolicy: 'Never' },
      issuerRef: { kind: 'Issuer', name: 'acme-aws-secret-injector-selfsigned' },
    });
    expect(spec(one(objects, 'Issuer', 'acme-aws-secret-injector-selfsigned'))).toEqual({ selfSigned: {} });
    expect(one(objects, 'MutatingWebhookConfiguration').metadata.annotations).toEqual({
      'cert-manager.io/inject-ca-from': 'sec/acme-aws-secret-injector',
    });
    expect(objects.filter((o) => /Role|Secret/.test(o.kind))).toEqual([]);
    const ps = podSpec(objects);
    expect(ps.automountServiceAccountToken).toBe(false);
    expect(ps.initContainers).toBeUndefined();
    expect(ps.containers.map((c: Json) => c.name)).toEqual(['webhook']);
    expect(ps.volumes[0].secret).toEqual({ secretName: 'acme-aws-secret-injector-tls', defaultMode: 0o440 });
  });

  it('cert-manager with an existing issuer: no Issuer of our own', () => {
    const objects = renderChart(HELM, {
      set: { ...CERT_MODES['cert-manager'], 'certificates.certManager.issuerRef.kind': 'ClusterIssuer', 'certificates.certManager.issuerRef.name': 'corp-ca' },
    });
    expect(objects.filter((o) => o.kind === 'Issuer')).toEqual([]);
    expect(spec(one(objects, 'Certificate')).issuerRef).toEqual({ kind: 'ClusterIssuer', name: 'corp-ca' });
  });

  it("cert-manager with webhook.url: the URL's host is in the certificate, and cainjector fills caBundle", () => {
    const at = (url: string) => renderChart(HELM, { release: 'acme', namespace: 'sec', set: { ...CERT_MODES['cert-manager'], 'webhook.url': url } });
    const ip = at('https://127.0.0.1:9443/mutate');
    expect(spec(one(ip, 'Certificate', 'acme-aws-secret-injector')).ipAddresses).toEqual(['127.0.0.1']);
    expect(webhookOf(ip).clientConfig).toEqual({ url: 'https://127.0.0.1:9443/mutate' });
    const host = spec(one(at('https://webhook.dev.example.com/mutate'), 'Certificate', 'acme-aws-secret-injector'));
    expect(host.dnsNames).toContain('webhook.dev.example.com');
    expect(host.ipAddresses).toBeUndefined();
    expect(spec(one(at('https://[fd00::1]:8443/mutate'), 'Certificate', 'acme-aws-secret-injector')).ipAddresses).toEqual(['fd00::1']);
  });

  it('provided: serves the named Secret and writes the given CA bundle; no RBAC, no Secret of its own', () => {
    const set = CERT_MODES.provided!;
    const objects = renderChart(HELM, { set });
    expect(objects.filter((o) => /Role|Secret|Certificate|Issuer/.test(o.kind))).toEqual([]);
    expect(webhookOf(objects).clientConfig.caBundle).toBe(set['webhook.caBundle']);
    expect(podSpec(objects).volumes[0].secret).toEqual({ secretName: 'my-webhook-tls', defaultMode: 0o440 });
    expect(podSpec(objects).automountServiceAccountToken).toBe(false);
  });
});

suite('chart: notable values', () => {
  it('webhook.url: a URL clientConfig with its CA bundle', () => {
    const objects = renderChart(HELM, {
      set: { 'webhook.url': 'https://127.0.0.1:9443/mutate', 'webhook.caBundle': 'Q0E=' },
    });
    expect(webhookOf(objects).clientConfig).toEqual({ url: 'https://127.0.0.1:9443/mutate', caBundle: 'Q0E=' });
  });

  it('matchConditions off: every pod is sent, and failurePolicy becomes Ignore unless set', () => {
    let w = webhookOf(renderChart(HELM, { set: { 'webhook.matchConditions.enabled': false } }));
    expect(w.matchConditions).toBeUndefined();
    expect(w.failurePolicy).toBe('Ignore');
    w = webhookOf(renderChart(HELM, { set: { 'webhook.matchConditions.enabled': false, 'webhook.failurePolicy': 'Fail' } }));
    expect(w.failurePolicy).toBe('Fail');
    w = webhookOf(renderChart(HELM, { set: { 'webhook.failurePolicy': 'Ignore' } }));
    expect(w.failurePolicy).toBe('Ignore');
  });

  it('refuses matchConditions on clusters older than 1.28, naming the value that turns them off', () => {
    expect(() => renderChart(HELM, { extra: ['--kube-version', '1.27.4'] })).toThrow(
      /matchConditions need Kubernetes 1\.28 or newer \(this cluster is v1\.27\.4\): set webhook\.matchConditions\.enabled=false/,
    );
    expect(webhookOf(renderChart(HELM, { extra: ['--kube-version', '1.27.4'], set: { 'webhook.matchConditions.enabled': false } })).failurePolicy).toBe('Ignore');
    expect(() => renderChart(HELM, { extra: ['--kube-version', '1.20.0'] })).toThrow(/kubeVersion/);
  });

  it('sets NATIVE_SIDECARS from the cluster version (1.29+), unless nativeSidecars says otherwise', () => {
    const at = (version: string, set: Record<string, string | number | boolean> = {}) =>
      envOf(renderChart(HELM, { extra: ['--kube-version', version], set })).NATIVE_SIDECARS;
    expect(at('1.28.9')).toBe('false');
    expect(at('1.29.0')).toBe('true');
    expect(at('1.33.1')).toBe('true');
    expect(at('1.28.9', { nativeSidecars: true })).toBe('true');
    expect(at('1.33.1', { nativeSidecars: false })).toBe('false');
    expect(() => renderChart(HELM, { set: { nativeSidecars: 'yes' } })).toThrow(/nativeSidecars/);
  });

  it('refresher values flow into the webhook environment and its configuration', () => {
    const objects = renderChart(HELM, {
      set: {
        'refresher.resources.requests.cpu': '2m',
        'refresher.resources.requests.memory': '40Mi',
        'refresher.resources.limits.cpu': null as unknown as string,
        'refresher.resources.limits.memory': '56Mi',
      },
    });
    expect(envOf(objects)).toMatchObject({ REFRESHER_CPU_REQUEST: '2m', REFRESHER_MEMORY_REQUEST: '40Mi', REFRESHER_CPU_LIMIT: '', REFRESHER_MEMORY_LIMIT: '56Mi' });
    const loaded = loadChartEnv(objects);
    if (!('config' in loaded)) throw new Error(JSON.stringify(loaded));
    expect(loaded.config.mutation.refresherResources).toEqual({ requests: { cpu: '2m', memory: '40Mi' }, limits: { memory: '56Mi' } });
  });

  it('image and fetcher values flow into the webhook container and its environment', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const objects = renderChart(HELM, {
      set: {
        'image.repository': 'registry.example/team/injector',
        'image.tag': '1.2.3',
        'fetcher.image.repository': 'registry.example/team/fetcher',
        'fetcher.image.digest': digest,
        'fetcher.image.pullPolicy': 'Always',
        'fetcher.resources.requests.cpu': '20m',
        'fetcher.resources.requests.memory': '40Mi',
        'fetcher.resources.limits.memory': '80Mi',
        'fetcher.resources.limits.cpu': null as unknown as string,
        'fetcher.uid': 4242,
        'fetcher.deadlineSeconds': 90,
        'fetcher.nodeCredentials': 'allow',
        defaultMountPath: '/var/run/secrets/app',
        volumeSizeLimit: '4Mi',
        logLevel: 'debug',
        port: 9443,
        shutdownDelaySeconds: 3,
        shutdownTimeoutSeconds: 10,
      },
    });
    expect(container(objects).image).toBe('registry.example/team/injector:1.2.3');
    expect(podSpec(objects).initContainers[0].image).toBe('registry.example/team/injector:1.2.3');
    expect(podSpec(objects).terminationGracePeriodSeconds).toBe(18);
    expect(envOf(objects)).toMatchObject({
      FETCHER_IMAGE: `registry.example/team/fetcher@${digest}`,
      FETCHER_IMAGE_PULL_POLICY: 'Always',
      FETCHER_CPU_REQUEST: '20m',
      FETCHER_MEMORY_REQUEST: '40Mi',
      FETCHER_CPU_LIMIT: '',
      FETCHER_MEMORY_LIMIT: '80Mi',
      FETCHER_UID: '4242',
      FETCH_DEADLINE_SECONDS: '90',
      FETCHER_NODE_CREDENTIALS: 'allow',
      DEFAULT_MOUNT_PATH: '/var/run/secrets/app',
      VOLUME_SIZE_LIMIT: '4Mi',
      LOG_LEVEL: 'debug',
      PORT: '9443',
      SHUTDOWN_DELAY_SECONDS: '3',
      SHUTDOWN_TIMEOUT_SECONDS: '10',
    });
    expect(container(objects).ports[0].containerPort).toBe(9443);
    const loaded = loadChartEnv(objects);
    expect(loaded).toHaveProperty('config');
    if (!('config' in loaded)) return;
    expect(loaded.config.mutation).toMatchObject({
      fetcherImage: `registry.example/team/fetcher@${digest}`,
      fetcherImagePullPolicy: 'Always',
      fetcherResources: { requests: { cpu: '20m', memory: '40Mi' }, limits: { memory: '80Mi' } },
      fetcherUid: 4242,
      defaultMountPath: '/var/run/secrets/app',
      volumeSizeLimit: '4Mi',
      fetchTimeouts: { deadlineSeconds: 90 },
      nodeCredentials: 'allow',
    });
    expect(loaded.config.mutation.fetcherResources.limits.cpu).toBeUndefined();
    expect(loaded.config).toMatchObject({ port: 9443, logLevel: 'debug', shutdownDelaySeconds: 3, shutdownTimeoutSeconds: 10 });
  });

  it("fetcher.network values become the webhook's FETCHER_* network settings, which its loader accepts", () => {
    expect(Object.keys(envOf(renderChart(HELM))).filter((k) => /PROXY|AWS_|CA_BUNDLE/.test(k))).toEqual([]);
    const objects = renderChart(HELM, {
      set: {
        'fetcher.network.httpsProxy': 'http://proxy.internal:3128',
        'fetcher.network.httpProxy': 'http://proxy.internal:3128',
        // helm --set needs its commas escaped.
        'fetcher.network.noProxy': '.vpce.amazonaws.com\\,10.0.0.1',
        'fetcher.network.useFipsEndpoint': true,
        'fetcher.network.useDualstackEndpoint': true,
        'fetcher.network.caBundle.configMap': 'corp-trust',
        'fetcher.network.caBundle.key': 'trust-bundle.pem',
      },
    });
    expect(envOf(objects)).toMatchObject({
      FETCHER_HTTPS_PROXY: 'http://proxy.internal:3128',
      FETCHER_HTTP_PROXY: 'http://proxy.internal:3128',
      FETCHER_NO_PROXY: '.vpce.amazonaws.com,10.0.0.1',
      FETCHER_AWS_USE_FIPS_ENDPOINT: 'true',
      FETCHER_AWS_USE_DUALSTACK_ENDPOINT: 'true',
      FETCHER_CA_BUNDLE_CONFIGMAP: 'corp-trust',
      FETCHER_CA_BUNDLE_KEY: 'trust-bundle.pem',
    });
    const loaded = loadChartEnv(objects);
    expect(loaded).toHaveProperty('config');
    if (!('config' in loaded)) return;
    expect(loaded.config.mutation.fetcherNetworkEnv!.map((e) => e.name)).toEqual([
      'HTTPS_PROXY',
      'HTTP_PROXY',
      'NO_PROXY',
      'AWS_USE_FIPS_ENDPOINT',
      'AWS_USE_DUALSTACK_ENDPOINT',
    ]);
    const endpoints = renderChart(HELM, {
      set: {
        'fetcher.network.endpoints.secretsManager': 'https://moto.aws.svc:5000',
        'fetcher.network.endpoints.ssm': 'https://moto.aws.svc:5000',
        'fetcher.network.endpoints.sts': 'https://moto.aws.svc:5000',
      },
    });
    expect(envOf(endpoints)).toMatchObject({
      FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER: 'https://moto.aws.svc:5000',
      FETCHER_AWS_ENDPOINT_URL_SSM: 'https://moto.aws.svc:5000',
      FETCHER_AWS_ENDPOINT_URL_STS: 'https://moto.aws.svc:5000',
    });
    expect(loadChartEnv(endpoints)).toHaveProperty('config');
  });

  it('selectors, scheduling and metrics values', () => {
    const objects = renderChart(HELM, {
      namespace: 'sec',
      set: {
        'webhook.namespaceSelector.excludeNamespaces[0]': 'kube-system',
        'webhook.namespaceSelector.excludeNamespaces[1]': 'monitoring',
        'webhook.namespaceSelector.matchExpressions[0].key': 'team',
        'webhook.namespaceSelector.matchExpressions[0].operator': 'Exists',
        'webhook.objectSelector.matchLabels.secrets': 'yes',
        'webhook.timeoutSeconds': 3,
        priorityClassName: 'system-cluster-critical',
        'tolerations[0].key': 'dedicated',
        'tolerations[0].operator': 'Exists',
        'nodeSelector.pool': 'system',
        replicaCount: 3,
        'podDisruptionBudget.minAvailable': 2,
        'metrics.serviceMonitor.enabled': true,
        'metrics.serviceMonitor.labels.release': 'prom',
      },
    });
    const w = webhookOf(objects);
    expect(w.timeoutSeconds).toBe(3);
    expect(w.namespaceSelector.matchExpressions).toEqual([
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'monitoring', 'sec'] },
      { key: 'secrets.k8s.aws/injection', operator: 'NotIn', values: ['disabled'] },
      { key: 'team', operator: 'Exists' },
    ]);
    expect(w.objectSelector).toEqual({ matchLabels: { secrets: 'yes' } });
    const ps = podSpec(objects);
    expect(ps.priorityClassName).toBe('system-cluster-critical');
    expect(ps.tolerations).toEqual([{ key: 'dedicated', operator: 'Exists' }]);
    expect(ps.nodeSelector).toEqual({ pool: 'system' });
    expect(spec(one(objects, 'Deployment')).replicas).toBe(3);
    expect(spec(one(objects, 'PodDisruptionBudget')).minAvailable).toBe(2);
    const sm = one(objects, 'ServiceMonitor');
    expect(sm.metadata.labels?.release).toBe('prom');
    const metricsSvc = one(objects, 'Service', 'r-aws-secret-injector-metrics');
    expect(spec(sm).selector.matchLabels).toMatchObject(
      Object.fromEntries(Object.entries(metricsSvc.metadata.labels!).filter(([k]) => k.startsWith('app.kubernetes.io/') && k !== 'app.kubernetes.io/version' && k !== 'app.kubernetes.io/managed-by')),
    );
    expect(spec(sm).endpoints[0]).toMatchObject({ port: 'https-metrics', scheme: 'https', path: '/metrics' });
  });

  it('hostNetwork (EKS with a custom CNI, where the control plane cannot reach pod IPs): host network, cluster DNS, off by default', () => {
    expect(podSpec(renderChart(HELM)).hostNetwork).toBeUndefined();
    const ps = podSpec(renderChart(HELM, { set: { hostNetwork: true, port: 10260 } }));
    expect(ps.hostNetwork).toBe(true);
    expect(ps.dnsPolicy).toBe('ClusterFirstWithHostNet');
    // The port is then taken on the node: the scheduler keeps two replicas off one node by it.
    expect(ps.containers[0].ports).toEqual([
      { name: 'https', containerPort: 10260, protocol: 'TCP' },
      { name: 'monitor', containerPort: 8444, protocol: 'TCP' },
    ]);
  });

  it('networkPolicy: on by default, ingress on the review and monitoring ports only, each from its own peers', () => {
    const open = spec(one(renderChart(HELM, { set: { port: 9443, monitorPort: 9444 } }), 'NetworkPolicy'));
    expect(open.policyTypes).toEqual(['Ingress']);
    expect(open.ingress).toEqual([{ ports: [{ port: 9443, protocol: 'TCP' }] }, { ports: [{ port: 9444, protocol: 'TCP' }] }]);
    const objects = renderChart(HELM, {
      set: {
        'networkPolicy.from[0].ipBlock.cidr': '10.0.0.0/24',
        'networkPolicy.from[1].ipBlock.cidr': '10.0.1.0/24',
        'networkPolicy.monitorFrom[0].namespaceSelector.matchLabels.team': 'monitoring',
      },
    });
    const np = one(objects, 'NetworkPolicy');
    expect(spec(np).ingress).toEqual([
      { ports: [{ port: 8443, protocol: 'TCP' }], from: [{ ipBlock: { cidr: '10.0.0.0/24' } }, { ipBlock: { cidr: '10.0.1.0/24' } }] },
      { ports: [{ port: 8444, protocol: 'TCP' }], from: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }] },
    ]);
    // It selects exactly the webhook's pods.
    expect(spec(np).podSelector.matchLabels).toEqual(spec(one(objects, 'Deployment')).selector.matchLabels);
    expect(renderChart(HELM, { set: { 'networkPolicy.enabled': false } }).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });

  it('no networkPolicy with hostNetwork, where it would not apply', () => {
    expect(renderChart(HELM, { set: { hostNetwork: true } }).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });

  it('the metrics Service and the probes follow monitorPort; port and monitorPort must differ', () => {
    const objects = renderChart(HELM, { set: { monitorPort: 9100 } });
    expect(spec(one(objects, 'Service', 'r-aws-secret-injector-metrics')).ports).toEqual([{ name: 'https-metrics', port: 9100, targetPort: 'monitor', protocol: 'TCP' }]);
    expect(container(objects).ports[1]).toEqual({ name: 'monitor', containerPort: 9100, protocol: 'TCP' });
    const r = runHelm(HELM, ['template', 'r', CHART_DIR, ...valueArgs({ monitorPort: 8443 })]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('port and monitorPort must differ');
  });

  it('never sets the webhook\'s escape for plain http:// endpoints, whatever the values', () => {
    expect(Object.keys(envOf(renderChart(HELM)))).not.toContain('FETCHER_ALLOW_PLAIN_HTTP_ENDPOINTS');
    const r = runHelm(HELM, ['template', 'r', CHART_DIR, ...valueArgs({ 'fetcher.network.allowPlainHttpEndpoints': true })]);
    expect(r.ok).toBe(false);
  });

  it('metrics Service off; PDB off', () => {
    const objects = renderChart(HELM, { set: { 'metrics.service.enabled': false, 'podDisruptionBudget.enabled': false } });
    expect(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name)).toEqual(['r-aws-secret-injector']);
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });
});

suite('chart: long names', () => {
  // Helm allows release names of 53 characters and namespaces have up to 63; every object must
  // still be valid for the apiserver (and for cert-manager).
  const release = 'r'.repeat(53);
  const namespace = 'n'.repeat(63);
  const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/; // DNS-1035 label

  it.each(Object.keys(CERT_MODES))('certificates.mode=%s: Service names are DNS-1035 labels, other names DNS subdomains', (mode) => {
    for (const set of [CERT_MODES[mode]!, { ...CERT_MODES[mode]!, nameOverride: 'x'.repeat(40) }]) {
      const objects = renderChart(HELM, { release, namespace, set: { ...set, 'metrics.serviceMonitor.enabled': true } });
      for (const o of objects) {
        if (o.kind === 'Service') expect(o.metadata.name, `Service ${o.metadata.name}`).toMatch(SERVICE_NAME);
        else expect(o.metadata.name.length, `${o.kind} ${o.metadata.name}`).toBeLessThanOrEqual(253);
      }
      expect(new Set(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name)).size).toBe(2);
    }
  });

  it.each(['my.app', '1app', `9.${'a'.repeat(51)}`])('release %s (dots, a digit first): Services named as DNS-1035 labels, and the Service the configuration, the certificate and the certs passes name is the one rendered', (name) => {
    for (const set of [CERT_MODES['self-managed']!, CERT_MODES['cert-manager']!]) {
      const objects = renderChart(HELM, { release: name, namespace: 'apps', set });
      const services = objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name);
      for (const s of services) expect(s).toMatch(SERVICE_NAME);
      const service = services.find((s) => !s.endsWith('-metrics'))!;
      expect(webhookOf(objects).clientConfig.service.name).toBe(service);
      if (set === CERT_MODES['cert-manager']) expect(spec(servingCertificate(objects)).dnsNames).toContain(`${service}.apps.svc`);
      else expect(podSpec(objects).initContainers[0].args).toContain(`--service=${service}`);
      expect(one(objects, 'Deployment').metadata.name).toBe(`${name}-aws-secret-injector`.slice(0, 63));
    }
  });

  it('cert-manager: a commonName longer than 64 bytes (refused by cert-manager) is left out; the SANs name the Service', () => {
    const cert = servingCertificate(renderChart(HELM, { release, namespace, set: CERT_MODES['cert-manager'] }));
    expect(spec(cert).commonName).toBeUndefined();
    expect(spec(cert).dnsNames).toContain(`${release}-aws-secret-injector`.slice(0, 63) + `.${namespace}.svc`);
    const short = servingCertificate(renderChart(HELM, { release: 'acme', namespace: 'sec', set: CERT_MODES['cert-manager'] }));
    expect(spec(short).commonName).toBe('acme-aws-secret-injector.sec.svc');
  });
});

suite('chart: bad values are refused with a clear message', () => {
  it.each<[string, Record<string, string | number | boolean>, RegExp]>([
    ['unknown key', { replicas: 3 }, /additional properties 'replicas' not allowed/],
    ['typo in a nested key', { 'webhook.timeoutSecond': 3 }, /at '\/webhook': additional properties 'timeoutSecond' not allowed/],
    ['timeout above the API maximum', { 'webhook.timeoutSeconds': 60 }, /at '\/webhook\/timeoutSeconds': maximum: got 60, want 30/],
    ['unknown certificate mode', { 'certificates.mode': 'vault' }, /at '\/certificates\/mode': value must be one of 'self-managed', 'cert-manager', 'provided'/],
    ['unknown failure policy', { 'webhook.failurePolicy': 'Retry' }, /at '\/webhook\/failurePolicy': value must be one of/],
    ['unknown log level', { logLevel: 'verbose' }, /at '\/logLevel': value must be one of/],
    ['malformed digest', { 'fetcher.image.digest': 'abc123' }, /at '\/fetcher\/image\/digest'/],
    ['malformed quantity', { 'fetcher.resources.requests.memory': 'lots' }, /at '\/fetcher\/resources\/requests\/memory'/],
    ['root fetcher', { 'fetcher.uid': 0 }, /at '\/fetcher\/uid': minimum: got 0, want 1/],
    ['relative mount path', { defaultMountPath: 'tmp' }, /at '\/defaultMountPath'/],
    ['mount path with ..', { defaultMountPath: '/a/../etc' }, /at '\/defaultMountPath'/],
    ['privileged port', { port: 443 }, /at '\/port': minimum: got 443, want 1,024/],
    ['plain-HTTP webhook URL', { 'webhook.url': 'http://127.0.0.1:8443/mutate' }, /at '\/webhook\/url'/],
    ['caBundle not base64', { 'webhook.caBundle': '-----BEGIN CERTIFICATE-----' }, /at '\/webhook\/caBundle'/],
    ['a proxy with credentials', { 'fetcher.network.httpsProxy': 'http://user:pw@proxy:3128' }, /at '\/fetcher\/network\/httpsProxy'/],
    ['an endpoint that is not a URL', { 'fetcher.network.endpoints.sts': 'sts.example' }, /at '\/fetcher\/network\/endpoints\/sts'/],
    ['a plain http:// endpoint', { 'fetcher.network.endpoints.sts': 'http://moto.aws.svc:5000' }, /at '\/fetcher\/network\/endpoints\/sts'/],
    ['a plain http:// Secrets Manager endpoint', { 'fetcher.network.endpoints.secretsManager': 'http://moto.aws.svc:5000' }, /at '\/fetcher\/network\/endpoints\/secretsManager'/],
    ['a plain http:// SSM endpoint', { 'fetcher.network.endpoints.ssm': 'HTTP://moto.aws.svc:5000' }, /at '\/fetcher\/network\/endpoints\/ssm'/],
    ['a CA bundle ConfigMap name with capitals', { 'fetcher.network.caBundle.configMap': 'Corp' }, /at '\/fetcher\/network\/caBundle\/configMap'/],
    ['zero replicas', { replicaCount: 0 }, /at '\/replicaCount': minimum: got 0, want 1/],
    [
      'a configuration name sorting after pod-identity-webhook',
      { 'webhook.configurationName': 'secrets-injector' },
      /webhook\.configurationName "secrets-injector" must sort before "pod-identity-webhook"/,
    ],
    ['provided mode without a Secret', { 'certificates.mode': 'provided', 'webhook.caBundle': 'Q0E=' }, /certificates\.mode=provided needs certificates\.secretName/],
    ['provided mode without a CA', { 'certificates.mode': 'provided', 'certificates.secretName': 'tls' }, /certificates\.mode=provided needs webhook\.caBundle/],
    ['URL without a CA', { 'webhook.url': 'https://127.0.0.1:8443/mutate' }, /webhook\.url needs webhook\.caBundle \(or certificates\.mode=cert-manager, whose cainjector fills it\): the base64 PEM/],
    ['PDB that blocks every drain', { replicaCount: 2, 'podDisruptionBudget.minAvailable': 2 }, /podDisruptionBudget\.minAvailable \(2\) must be below replicaCount \(2\)/],
    // certs bootstrap/manage renew 30 days before expiry and refuse a lifetime not above that:
    // the chart must not render a Deployment whose certs containers exit with a usage error.
    ['serving certificate lifetime within the renewal window', { 'certificates.selfManaged.validityDays': 30 }, /at '\/certificates\/selfManaged\/validityDays': minimum: got 30, want 31/],
    [
      'serving certificate outliving its CA',
      { 'certificates.selfManaged.validityDays': 400, 'certificates.selfManaged.caValidityDays': 365 },
      /certificates\.selfManaged\.validityDays \(400\) must not exceed certificates\.selfManaged\.caValidityDays \(365\)/,
    ],
    ['one replica with the default PDB', { replicaCount: 1 }, /minAvailable \(1\) must be below replicaCount \(1\).*set podDisruptionBudget\.enabled=false/],
    // The webhook (or cainjector) keeps caBundle in those modes; every helm upgrade would put the given one back over it.
    ['a caBundle given with self-managed certificates', { 'webhook.caBundle': 'Q0E=' }, /webhook\.caBundle is for certificates\.mode=provided or webhook\.url: with certificates\.mode=self-managed/],
    ['a caBundle given with cert-manager', { 'certificates.mode': 'cert-manager', 'webhook.caBundle': 'Q0E=' }, /webhook\.caBundle is for certificates\.mode=provided or webhook\.url: with certificates\.mode=cert-manager/],
    ['ServiceMonitor without the metrics Service', { 'metrics.serviceMonitor.enabled': true, 'metrics.service.enabled': false }, /metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled/],
  ])('%s', (_name, set, message) => {
    expect(() => renderChart(HELM, { set })).toThrow(message);
  });
});

suite('chart: documentation', () => {
  it('documents every value in values.yaml with a comment (on the key or its parent)', () => {
    const doc = parseDocument(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
    const undocumented: string[] = [];
    const walk = (map: YAMLMap, path: string, documented: boolean): void => {
      map.items.forEach((pair, i) => {
        const key = `${path}${String((pair.key as { value: unknown }).value)}`;
        const comment = (pair.key as { commentBefore?: string }).commentBefore ?? (i === 0 ? map.commentBefore : undefined);
        const has = documented || Boolean(comment);
        if (isMap(pair.value)) walk(pair.value, `${key}.`, has);
        else if (!has) undocumented.push(key);
      });
    };
    walk(doc.contents as YAMLMap, '', false);
    expect(undocumented).toEqual([]);
  });

  it('the chart README mentions every top-level value', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const values = parseDocument(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')).toJS() as Json;
    expect(Object.keys(values).filter((k) => !new RegExp(`\`${k}[.\`]`).test(readme))).toEqual([]);
  });

  it('versions agree: the chart appVersion is the package version, and the default fetcher image is the webhook default', () => {
    const chart = parseDocument(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')).toJS() as Json;
    const pkg = JSON.parse(readFileSync(join(CHART_DIR, '..', '..', 'package.json'), 'utf8')) as Json;
    expect(chart.appVersion).toBe(pkg.version);
    expect(envOf(renderChart(HELM)).FETCHER_IMAGE).toBe(DEFAULT_MUTATION_CONFIG.fetcherImage);
  });

  it('keeps the schema and values.yaml in step: every value has a schema entry', () => {
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as Json;
    const values = parseDocument(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')).toJS() as Json;
    const missing: string[] = [];
    const walk = (v: Json, s: Json, path: string): void => {
      for (const [k, child] of Object.entries(v)) {
        const sub = s.properties?.[k];
        if (!sub) missing.push(`${path}${k}`);
        else if (child && typeof child === 'object' && !Array.isArray(child) && sub.properties) walk(child, sub, `${path}${k}.`);
      }
    };
    walk(values, schema, '');
    expect(missing).toEqual([]);
  });
});
