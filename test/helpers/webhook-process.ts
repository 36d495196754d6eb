// Runs the BUILT webhook (`node <bundle>/cli.mjs webhook`) as a child process on a free
// 127.0.0.1 port, with a serving certificate for IP SAN 127.0.0.1 from certs/generate.ts, and
// registers it with a real apiserver through a MutatingWebhookConfiguration whose clientConfig.url
// points at it — the way the chart's `url` mode does for a webhook running outside the cluster
// (same webhook name, rules, failure policy and match condition as the chart's).

import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration, type V1Pod } from '@kubernetes/client-node';
import { generateCertificates } from '../../certs/generate.js';
import type { Cluster } from './cluster.js';
import { spawnGuarded, stopGuarded } from './guard.js';
import { freePort } from './moto.js';
import { bundleDir } from './bundles.js';
import { LOG_DIR, REPO_ROOT } from './tools.js';

export interface WebhookProcess {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  /** PEM of the CA that signed the serving certificate. */
  caCert: string;
  /** The same, base64: what a webhook configuration's clientConfig.caBundle holds. */
  caBundle: string;
  logFile: string;
  /** Directory of the tls.crt and tls.key it serves; it re-reads them when they change. */
  tlsDir: string;
  /** Everything the process wrote to stdout/stderr so far (its JSON log lines). */
  log(): string;
  stop(): Promise<void>;
}

export interface WebhookOptions {
  /** Extra environment (FETCHER_IMAGE, LOG_LEVEL, ...) on top of the port and certificate. */
  env?: Record<string, string>;
  /** Directory holding cli.mjs; default $BUNDLE_OUT or dist. */
  bundleDir?: string;
  /** The subcommand serving reviews: `webhook` (default) or `write-through`. */
  command?: 'webhook' | 'write-through';
  timeoutMs?: number;
}

/** The fetcher image the e2e suite configures; no kubelet pulls it, the pods only name it. */
export const E2E_FETCHER_IMAGE = 'registry.example.com/aws-secret-injector:e2e';

export { bundleDir } from './bundles.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function get(url: string, ca: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const req = request(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      res.on('end', () => resolveStatus(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Starts the webhook and resolves once GET /readyz answers 200 over TLS with our CA. */
export async function startWebhook(opts: WebhookOptions = {}): Promise<WebhookProcess> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const cli = join(opts.bundleDir ?? bundleDir(), 'cli.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'asi-webhook-'));
  const certs = generateCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
  writeFileSync(join(dir, 'tls.crt'), certs.cert);
  writeFileSync(join(dir, 'tls.key'), certs.key, { mode: 0o600 });
  mkdirSync(LOG_DIR, { recursive: true });
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const logFile = join(LOG_DIR, `webhook-${port}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawnGuarded(process.execPath, [cli, opts.command ?? 'webhook'], {
      out: fd,
      cwd: dir,
      env: {
        ...process.env,
        PORT: String(port),
        TLS_CERT_FILE: join(dir, 'tls.crt'),
        TLS_KEY_FILE: join(dir, 'tls.key'),
        FETCHER_IMAGE: E2E_FETCHER_IMAGE,
        LOG_LEVEL: 'info',
        ...opts.env,
      },
    });
    closeSync(fd);
    child.on('error', () => undefined);
    const stop = async () => {
      await stopGuarded(child, 5_000);
      rmSync(dir, { recursive: true, force: true });
    };
    const started = Date.now();
    while (Date.now() - started < timeoutMs && !exited(child)) {
      if ((await get(`${url}/readyz`, certs.caCert).catch(() => 0)) === 200) {
        return {
          url,
          port,
          caCert: certs.caCert,
          caBundle: Buffer.from(certs.caCert).toString('base64'),
          logFile,
          tlsDir: dir,
          log: () => readFileSync(logFile, 'utf8'),
          stop,
        };
      }
      await sleep(100);
    }
    const log = readFileSync(logFile, 'utf8').slice(-3_000);
    await stopGuarded(child, 0);
    lastError = `webhook (${cli}) on port ${port} did not become ready within ${timeoutMs} ms; log ${logFile}:\n${log}`;
    if (!/EADDRINUSE/.test(log)) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(lastError);
}

/** The webhook's name, as the chart's MutatingWebhookConfiguration spells it (kubectl shows it). */
export const WEBHOOK_NAME = 'inject.secrets.k8s.aws';

/**
 * Only pods that carry a secrets.k8s.aws/ annotation are sent to the webhook, so with the webhook
 * down those fail closed (failurePolicy Fail) while every other pod is admitted untouched.
 */
export const ANNOTATED_POD_CONDITION =
  "has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('secrets.k8s.aws/'))";

/**
 * A workload whose pod template (or, misplaced, its own metadata) carries a secrets.k8s.aws/
 * annotation: what the template review is sent (the chart's asi.templateCondition).
 */
export const ANNOTATED_TEMPLATE_CONDITION = [
  'object.spec.template.metadata.annotations',
  'object.spec.jobTemplate.spec.template.metadata.annotations',
]
  .map((path) => {
    const parts = path.split('.');
    const has = parts.slice(1).map((_, i) => `has(${parts.slice(0, i + 2).join('.')})`);
    return `(${[...has, `${path}.exists(k, k.startsWith('secrets.k8s.aws/'))`].join(' && ')})`;
  })
  .concat(`(${ANNOTATED_POD_CONDITION})`)
  .join(' || ');

/** The template review's name, as the chart spells it. */
export const TEMPLATES_WEBHOOK_NAME = 'templates.secrets.k8s.aws';

export interface RegisterOptions {
  /** Name of the MutatingWebhookConfiguration (default aws-secret-injector-e2e). */
  name?: string;
  /** Limit the webhook to namespaces carrying this label (key=value). */
  namespaceLabel?: [string, string];
  timeoutSeconds?: number;
  /** Namespace of the probe pod that shows the webhook is in effect (default `default`). */
  probeNamespace?: string;
}

/** The MutatingWebhookConfiguration that sends pod creates to `target` (URL + CA bundle). */
export function webhookConfiguration(
  target: { url: string; caBundle: string },
  opts: RegisterOptions = {},
): V1MutatingWebhookConfiguration {
  const name = opts.name ?? 'aws-secret-injector-e2e';
  // What both entries share, as the chart renders them.
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    matchPolicy: 'Equivalent',
    timeoutSeconds: opts.timeoutSeconds ?? 10,
    ...(opts.namespaceLabel ? { namespaceSelector: { matchLabels: { [opts.namespaceLabel[0]]: opts.namespaceLabel[1] } } } : {}),
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        ...common,
        name: WEBHOOK_NAME,
        failurePolicy: 'Fail',
        reinvocationPolicy: 'IfNeeded',
        clientConfig: { url: `${target.url}/mutate`, caBundle: target.caBundle },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        matchConditions: [{ name: 'asks-for-secrets', expression: ANNOTATED_POD_CONDITION }],
      },
      {
        ...common,
        name: TEMPLATES_WEBHOOK_NAME,
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'Never',
        clientConfig: { url: `${target.url}/templates`, caBundle: target.caBundle },
        rules: [
          { apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets'], scope: 'Namespaced' },
          { apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['jobs', 'cronjobs'], scope: 'Namespaced' },
        ],
        matchConditions: [{ name: 'template-asks-for-secrets', expression: ANNOTATED_TEMPLATE_CONDITION }],
      },
    ],
  };
}

/**
 * Creates (or replaces) the MutatingWebhookConfiguration and waits until the apiserver actually
 * calls the webhook (its informer picks the configuration up asynchronously). Returns a remover.
 */
export async function registerWebhook(
  cluster: Cluster,
  target: { url: string; caBundle: string },
  opts: RegisterOptions = {},
): Promise<() => Promise<void>> {
  const api = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const body = webhookConfiguration(target, opts);
  const name = body.metadata!.name!;
  await api.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
  await api.createMutatingWebhookConfiguration({ body });
  await waitForWebhook(cluster, opts.probeNamespace ?? 'default', true);
  return async () => {
    await api.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
    await waitForWebhook(cluster, opts.probeNamespace ?? 'default', false);
  };
}

/**
 * The apiserver picks webhook configurations up through an informer, a moment after they change.
 * A dry-run create of an annotated probe pod shows whether a webhook is in effect: it comes back
 * changed (or is refused) when one is, unchanged when none is.
 */
async function waitForWebhook(cluster: Cluster, namespace: string, active: boolean): Promise<void> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const probe: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'webhook-probe-',
      annotations: { 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:probe-AbCdEf' },
    },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  };
  const started = Date.now();
  while (Date.now() - started < 15_000) {
    let inEffect: boolean;
    try {
      const pod = await core.createNamespacedPod({ namespace, body: probe, dryRun: 'All' });
      inEffect = (pod.spec?.initContainers?.length ?? 0) > 0;
    } catch {
      inEffect = true;
    }
    if (inEffect === active) return;
    await sleep(200);
  }
  throw new Error(`the webhook configuration did not ${active ? 'take' : 'go out of'} effect within 15 s`);
}
