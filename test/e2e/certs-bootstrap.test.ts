// In-cluster certificates against the real kube-apiserver, with the built CLI and webhook:
//   - two `certs bootstrap` started at once converge on one certificate in one Secret, and patch
//     caBundle of every webhook entry;
//   - the webhook serves that certificate from the bootstrap's directory and the apiserver admits
//     pods through it;
//   - `certs manage` keeps things right: a wiped caBundle is re-patched, a CA rotation keeps the
//     previous CA in caBundle until the overlap ends, a renewal under the same CA is picked up;
//     pods created all along (outside the deliberate wipe) are every one admitted and mutated.

import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { eventually, runCommand, uniqueName, type CommandResult } from '../helpers/cluster.js';
import { freePort } from '../helpers/moto.js';
import { LOG_DIR, REPO_ROOT } from '../helpers/tools.js';
import { webhookConfiguration } from '../helpers/webhook-process.js';
import { describeE2E, e2e } from './context.js';

const SECRET = 'hook-tls';
const SERVICE = 'aws-secret-injector';
const NS_LABEL = 'certs-e2e';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pemOf = (s: V1Secret, key: string) => Buffer.from(s.data?.[key] ?? '', 'base64').toString('utf8');

describeE2E('in-cluster certificate bootstrap', () => {
  let ns: string;
  let configName: string;
  let port: number;
  let scratch: string;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  const children: ChildProcess[] = [];

  const cli = () => join(e2e().bundleDir, 'cli.mjs');
  const env = () => ({ ...process.env, KUBECONFIG: e2e().cluster.kubeconfigPath, LOG_LEVEL: 'info' });
  const clusterFlags = () => [
    `--namespace=${ns}`,
    `--secret=${SECRET}`,
    `--service=${SERVICE}`,
    `--webhook-configuration=${configName}`,
    '--ip=127.0.0.1',
  ];
  const certs = (args: string[]): Promise<CommandResult> =>
    runCommand(process.execPath, [cli(), 'certs', ...args], env(), { allowFailure: true, timeoutMs: 60_000 });

  function startBackground(name: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
    const logFile = join(LOG_DIR, `certs-e2e-${name}-${ns}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawn(process.execPath, [cli(), ...args], { stdio: ['ignore', fd, fd], env: { ...env(), ...extraEnv } });
    closeSync(fd);
    child.on('error', () => undefined);
    children.push(child);
    return child;
  }

  /** How many webhook entries the configuration holds (the helper's, plus one that is never called). */
  let entries = 0;
  /** The same caBundle in every entry. */
  const each = (bundle: string): string[] => Array.from({ length: entries }, () => bundle);
  const readSecret = () => core.readNamespacedSecret({ name: SECRET, namespace: ns });
  const caBundles = async (): Promise<string[]> =>
    ((await admission.readMutatingWebhookConfiguration({ name: configName })).webhooks ?? []).map((w) =>
      Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8'),
    );

  /** Fingerprint of the certificate the webhook presents on a new connection. */
  const served = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
        socket.end();
        resolve(fp);
      });
      socket.on('error', reject);
    });

  const annotatedPod = (): V1Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'certs-',
      annotations: { 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf' },
    },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
  });

  /** Creates annotated pods (dry run) back to back until stopped; collects every failure. */
  function podStream() {
    let running = true;
    let admitted = 0;
    const failures: string[] = [];
    const done = (async () => {
      while (running) {
        try {
          const pod = await core.createNamespacedPod({ namespace: ns, body: annotatedPod(), dryRun: 'All' });
          if ((pod.spec?.initContainers?.length ?? 0) === 0) failures.push('admitted without mutation');
          else admitted++;
        } catch (err) {
          failures.push(String((err as { body?: string }).body ?? err).slice(0, 300));
        }
        await sleep(100);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await done;
        return { admitted, failures };
      },
    };
  }

  beforeAll(async () => {
    const { cluster } = e2e();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    admission = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    ns = uniqueName('certs');
    configName = `asi-${ns}`;
    scratch = mkdtempSync(join(tmpdir(), 'asi-certs-e2e-'));
    port = await freePort();
    await core.createNamespace({ body: { metadata: { name: ns, labels: { [NS_LABEL]: ns } } } });
    // The entries, none with a caBundle: the bootstrap must fill in every one. The added one only
    // matches a namespace label nothing carries, so it never receives a review.
    const body = webhookConfiguration({ url: `https://127.0.0.1:${port}`, caBundle: '' }, { name: configName, namespaceLabel: [NS_LABEL, ns] });
    const [first] = body.webhooks!;
    delete first!.clientConfig.caBundle;
    body.webhooks!.push({
      ...first!,
      name: 'unused.secrets.k8s.aws',
      namespaceSelector: { matchLabels: { [NS_LABEL]: 'nothing-carries-this' } },
    });
    await admission.createMutatingWebhookConfiguration({ body });
    entries = body.webhooks!.length;
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await admission?.deleteMutatingWebhookConfiguration({ name: configName }).catch(() => undefined);
    await core?.deleteNamespace({ name: ns }).catch(() => undefined);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('two concurrent bootstraps create one Secret, converge on its certificate and patch caBundle', async () => {
    const [a, b] = await Promise.all([
      certs(['bootstrap', ...clusterFlags(), `--out=${join(scratch, 'a')}`]),
      certs(['bootstrap', ...clusterFlags(), `--out=${join(scratch, 'b')}`]),
    ]);
    expect(a.code, a.stderr + a.stdout).toBe(0);
    expect(b.code, b.stderr + b.stdout).toBe(0);
    const secret = await readSecret();
    expect(secret.type).toBe('kubernetes.io/tls');
    const cert = pemOf(secret, 'tls.crt');
    expect(readFileSync(join(scratch, 'a', 'tls.crt'), 'utf8')).toBe(cert);
    expect(readFileSync(join(scratch, 'b', 'tls.crt'), 'utf8')).toBe(cert);
    expect(readFileSync(join(scratch, 'b', 'tls.key'), 'utf8')).toBe(pemOf(secret, 'tls.key'));
    const leaf = new X509Certificate(cert);
    expect(leaf.checkHost(`${SERVICE}.${ns}.svc`)).toBeDefined();
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.verify(new X509Certificate(pemOf(secret, 'ca.crt')).publicKey)).toBe(true);
    // one create won; the other adopted it (on a 409 or because it read after the create)
    const outcomes = `${a.stdout}${b.stdout}`;
    expect(outcomes.match(/"outcome":"created"/g)?.length).toBe(1);
    expect(await caBundles()).toEqual(each(pemOf(secret, 'ca.crt')));
  });

  it('a third bootstrap adopts the valid Secret without writing', async () => {
    const before = (await readSecret()).metadata?.resourceVersion;
    const r = await certs(['bootstrap', ...clusterFlags()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"outcome":"adopted"');
    expect((await readSecret()).metadata?.resourceVersion).toBe(before);
  });

  it('the webhook serves the bootstrapped certificate and pods are admitted through it', async () => {
    startBackground('webhook', ['webhook'], {
      PORT: String(port),
      TLS_CERT_FILE: join(scratch, 'a', 'tls.crt'),
      TLS_KEY_FILE: join(scratch, 'a', 'tls.key'),
      FETCHER_IMAGE: 'registry.example.com/aws-secret-injector:e2e',
    });
    const secret = await readSecret();
    const fp = new X509Certificate(pemOf(secret, 'tls.crt')).fingerprint256;
    await eventually('webhook serving the bootstrapped certificate', async () => ((await served().catch(() => '')) === fp ? true : undefined), 20_000);
    // A client trusting only the bootstrapped CA completes the handshake, by Service name and by
    // IP; one trusting another CA does not.
    const handshake = (ca: string, servername?: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, ca, ...(servername ? { servername } : {}) }, () => {
          socket.end();
          resolve('ok');
        });
        socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    expect(await handshake(pemOf(secret, 'ca.crt'), `${SERVICE}.${ns}.svc`)).toBe('ok');
    expect(await handshake(pemOf(secret, 'ca.crt'))).toBe('ok');
    const stranger = await certs(['generate', `--out=${join(scratch, 'stranger')}`]);
    expect(stranger.code, stranger.stderr).toBe(0);
    expect(await handshake(readFileSync(join(scratch, 'stranger', 'ca.crt'), 'utf8'), `${SERVICE}.${ns}.svc`)).not.toBe('ok');
    await eventually(
      'an annotated pod admitted and mutated',
      async () => {
        const pod = await core.createNamespacedPod({ namespace: ns, body: annotatedPod(), dryRun: 'All' });
        return (pod.spec?.initContainers?.length ?? 0) > 0 ? true : undefined;
      },
      20_000,
    );
  });

  it('manage repairs a wiped caBundle within seconds', async () => {
    startBackground('manage', ['certs', 'manage', ...clusterFlags(), `--out=${join(scratch, 'a')}`, '--interval-seconds=1']);
    const ca = pemOf(await readSecret(), 'ca.crt');
    await admission.patchMutatingWebhookConfiguration(
      {
        name: configName,
        body: [
          ...Array.from({ length: entries }, (_, i) => ({ op: 'remove', path: `/webhooks/${i}/clientConfig/caBundle` })),
        ],
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    const wiped = Date.now();
    await eventually('caBundle re-patched', async () => ((await caBundles()).every((b) => b === ca) ? true : undefined), 60_000);
    const repairMs = Date.now() - wiped;
    console.log(`certs e2e: wiped caBundle repaired in ${repairMs} ms (manage --interval-seconds=1)`);
    expect(repairMs).toBeLessThan(60_000);
    // admitted again once the apiserver has picked the repaired configuration up
    await eventually(
      'pods admitted after the repair',
      async () => ((await core.createNamespacedPod({ namespace: ns, body: annotatedPod(), dryRun: 'All' })).spec?.initContainers?.length ? true : undefined),
      20_000,
    );
  });

  it('a CA rotation under a stream of pods: previous CA kept in caBundle, new certificate served, no failed admission', async () => {
    const stream = podStream();
    await sleep(1_000);
    const old = await readSecret();
    const oldCa = pemOf(old, 'ca.crt');
    // A longer certificate lifetime than the CA has left forces a new CA (as a values change would).
    const r = await certs(['bootstrap', ...clusterFlags(), '--validity-days=3700', '--ca-validity-days=3800', '--renew-before-days=3699', '--ca-overlap-seconds=8']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"outcome":"renewed"');
    const rotated = await readSecret();
    const newCa = pemOf(rotated, 'ca.crt');
    expect(newCa).not.toBe(oldCa);
    expect(pemOf(rotated, 'ca-previous.crt')).toBe(oldCa);
    expect(await caBundles()).toEqual(each(newCa + oldCa));
    const fp = new X509Certificate(pemOf(rotated, 'tls.crt')).fingerprint256;
    await eventually('webhook serving the certificate of the new CA', async () => ((await served()) === fp ? true : undefined), 30_000);
    // the manager drops the previous CA once the overlap ends
    await eventually('previous CA dropped from caBundle', async () => ((await caBundles()).every((b) => b === newCa) ? true : undefined), 30_000);
    expect((await readSecret()).data?.['ca-previous.crt']).toBeUndefined();
    await sleep(2_000);
    const { admitted, failures } = await stream.stop();
    console.log(`certs e2e: CA rotation under ${admitted} admitted pod creates, ${failures.length} failures`);
    expect(failures).toEqual([]);
    expect(admitted).toBeGreaterThan(10);
  });

  it('a renewal under the same CA near expiry: caBundle unchanged, new certificate served, no failed admission', async () => {
    const stream = podStream();
    await sleep(500);
    const before = await readSecret();
    const bundleBefore = await caBundles();
    // The certificate has ~3700 days left: a threshold above that makes it "near expiry".
    const r = await certs(['bootstrap', ...clusterFlags(), '--validity-days=3750', '--ca-validity-days=3800', '--renew-before-days=3720']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"outcome":"renewed"');
    const after = await readSecret();
    expect(pemOf(after, 'ca.crt')).toBe(pemOf(before, 'ca.crt'));
    expect(pemOf(after, 'tls.crt')).not.toBe(pemOf(before, 'tls.crt'));
    expect(await caBundles()).toEqual(bundleBefore);
    const fp = new X509Certificate(pemOf(after, 'tls.crt')).fingerprint256;
    await eventually('webhook serving the renewed certificate', async () => ((await served()) === fp ? true : undefined), 30_000);
    await sleep(1_000);
    const { admitted, failures } = await stream.stop();
    expect(failures).toEqual([]);
    expect(admitted).toBeGreaterThan(5);
  });

  it('a Secret emptied under the running webhook (helm upgrade --force, or deleted and recreated): new CA, the CA caBundle trusted stays in it, no failed admission', async () => {
    const stream = podStream();
    await sleep(500);
    const oldCa = pemOf(await readSecret(), 'ca.crt');
    expect(await caBundles()).toEqual(each(oldCa));
    // What `helm upgrade --force` leaves of the chart's placeholder (or a delete, then `helm
    // upgrade`): an empty Opaque Secret. (A kubernetes.io/tls Secret cannot be emptied in place.)
    // The manager may recreate it first between the two calls: the same case, by another path.
    await core.deleteNamespacedSecret({ name: SECRET, namespace: ns });
    await core
      .createNamespacedSecret({ namespace: ns, body: { metadata: { name: SECRET }, type: 'Opaque' } })
      .catch((e: { code?: number }) => {
        if (e.code !== 409) throw e;
      });
    // The manager running since the earlier tests (interval 1 s) fills it in again.
    const refilled = await eventually('the Secret refilled with a new CA', async () => {
      const s = await readSecret();
      const ca = pemOf(s, 'ca.crt');
      return ca && ca !== oldCa ? s : undefined;
    }, 30_000);
    const newCa = pemOf(refilled, 'ca.crt');
    expect(pemOf(refilled, 'ca-previous.crt')).toBe(oldCa);
    // The manager patches the caBundle right after writing the Secret: wait for that pass to end.
    await eventually('caBundle trusting the new and the previous CA', async () => {
      const bundles = await caBundles();
      return bundles.length === entries && bundles.every((b) => b === newCa + oldCa) ? true : undefined;
    }, 30_000);
    expect(await caBundles()).toEqual(each(newCa + oldCa));
    const fp = new X509Certificate(pemOf(refilled, 'tls.crt')).fingerprint256;
    await eventually('webhook serving the certificate of the new CA', async () => ((await served()) === fp ? true : undefined), 30_000);
    await sleep(1_000);
    const { admitted, failures } = await stream.stop();
    console.log(`certs e2e: emptied Secret under ${admitted} admitted pod creates, ${failures.length} failures`);
    expect(failures).toEqual([]);
    expect(admitted).toBeGreaterThan(10);
  });

  it('bootstrap fails with a clear message when the webhook configuration does not exist', async () => {
    const r = await certs(['bootstrap', `--namespace=${ns}`, `--secret=${SECRET}`, `--service=${SERVICE}`, '--webhook-configuration=does-not-exist', '--timeout-seconds=1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('MutatingWebhookConfiguration does-not-exist does not exist');
  });

  it("with only the chart's RBAC and its empty placeholder Secret, the chart's own bootstrap arguments succeed", async () => {
    const { cluster } = e2e();
    const rbacNs = uniqueName('certs-rbac');
    const release = uniqueName('rel'); // cluster-scoped RBAC names derive from it: no clash with other tests
    await core.createNamespace({ body: { metadata: { name: rbacNs } } });
    try {
      const rendered = await cluster.helm([
        'template', release, join(REPO_ROOT, 'charts', 'aws-secret-injector'), '--namespace', rbacNs,
        '--show-only', 'templates/rbac.yaml', '--show-only', 'templates/secret.yaml',
        '--show-only', 'templates/serviceaccount.yaml', '--show-only', 'templates/deployment.yaml',
      ]);
      const docs = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as KubernetesObject).filter(Boolean);
      const deployment = docs.find((d) => d.kind === 'Deployment') as V1Deployment;
      const bootstrapArgs = deployment.spec!.template.spec!.initContainers!.find((c) => c.name === 'certs-bootstrap')!.args!;
      type WithRules = KubernetesObject & { rules: Array<{ resourceNames: string[] }> };
      const chartConfigName = (docs.find((d) => d.kind === 'ClusterRole') as WithRules).rules[0]!.resourceNames[0]!;
      const secretName = (docs.find((d) => d.kind === 'Role') as WithRules).rules[0]!.resourceNames[0]!;
      const sa = docs.find((d) => d.kind === 'ServiceAccount')!.metadata!.name!;
      const objects = KubernetesObjectApi.makeApiClient(cluster.kubeConfig);
      for (const doc of docs.filter((d) => d.kind !== 'Deployment')) await objects.create(doc);
      // The chart's configuration, harmless here: it only matches a namespace label nothing carries.
      const body = webhookConfiguration({ url: 'https://127.0.0.1:1', caBundle: '' }, { name: chartConfigName, namespaceLabel: [NS_LABEL, 'nothing-carries-this'] });
      delete body.webhooks![0]!.clientConfig.caBundle;
      await admission.createMutatingWebhookConfiguration({ body });
      try {
        // The ServiceAccount's own token, as the kubelet would mount it.
        const token = (await core.createNamespacedServiceAccountToken({ name: sa, namespace: rbacNs, body: { spec: { audiences: [], expirationSeconds: 600 } } })).status!.token;
        const kubeconfigPath = join(scratch, 'sa-kubeconfig');
        writeFileSync(
          kubeconfigPath,
          stringify({
            apiVersion: 'v1', kind: 'Config', 'current-context': 'sa',
            clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
            users: [{ name: 'sa', user: { token } }],
            contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa' } }],
          }),
          { mode: 0o600 },
        );
        // The pod's emptyDir is stood in for by a fresh directory (never the host's /etc).
        const args = bootstrapArgs.map((a) => (a.startsWith('--out=') ? `--out=${join(scratch, 'rbac-out')}` : a));
        const r = await runCommand(process.execPath, [cli(), ...args, '--timeout-seconds=20'], { ...env(), KUBECONFIG: kubeconfigPath }, { allowFailure: true });
        expect(r.code, r.stderr + r.stdout).toBe(0);
        const filled = await core.readNamespacedSecret({ name: secretName, namespace: rbacNs });
        expect(filled.type).toBe('Opaque');
        expect(filled.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
        const leaf = new X509Certificate(pemOf(filled, 'tls.crt'));
        const service = bootstrapArgs.find((a) => a.startsWith('--service='))!.slice('--service='.length);
        expect(leaf.checkHost(`${service}.${rbacNs}.svc`)).toBeDefined();
        const bundle = (await admission.readMutatingWebhookConfiguration({ name: chartConfigName })).webhooks![0]!.clientConfig.caBundle;
        expect(Buffer.from(bundle ?? '', 'base64').toString()).toBe(pemOf(filled, 'ca.crt'));
        // and that identity can touch nothing else
        const saConfig = new KubeConfig();
        saConfig.loadFromFile(kubeconfigPath);
        const saCore = saConfig.makeApiClient(CoreV1Api);
        await expect(saCore.readNamespacedSecret({ name: SECRET, namespace: ns })).rejects.toMatchObject({ code: 403 });
        await expect(saCore.listNamespacedSecret({ namespace: rbacNs })).rejects.toMatchObject({ code: 403 });
        await expect(saConfig.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: configName })).rejects.toMatchObject({ code: 403 });
      } finally {
        await admission.deleteMutatingWebhookConfiguration({ name: chartConfigName }).catch(() => undefined);
        for (const doc of docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'ClusterRoleBinding')) await objects.delete(doc).catch(() => undefined);
      }
    } finally {
      await core.deleteNamespace({ name: rbacNs }).catch(() => undefined);
    }
  });
});
