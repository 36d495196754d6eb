// The Helm chart against the real kube-apiserver: `helm install` with default values and with
// each certificate mode is accepted object by object; with the chart's URL clientConfig pointing
// at the built webhook running as a local process, the chart's own webhook configuration
// (matchConditions, namespaceSelector) decides which pods reach it; and `helm template` output
// for each mode passes a server-side dry-run. cert-manager's resources meet its real CRDs.

import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { applyCertManagerCrds, certManagerMissing } from '../helpers/cert-manager.js';
import { eventually, kubeRelease, runCommand, uniqueName } from '../helpers/cluster.js';
import { BIN_DIR, findTool, missingToolMessage } from '../helpers/tools.js';
import { startWebhook, type WebhookProcess } from '../helpers/webhook-process.js';
import { CERT_MODES, CHART_DIR, parseManifests, valueArgs, type K8sObject } from '../unit/chart-render.js';
import { describeE2E, e2e, GUARD_SUPPORTED, supports } from './context.js';

// `helm template` renders for the cluster under test, as `helm install` does (left alone it assumes
// the Kubernetes of its own client-go).
const KUBE_VERSION = ['--kube-version', kubeRelease().version];

const helmPath = findTool('helm');
if (!helmPath) console.warn(`skipping the chart e2e tests: ${missingToolMessage('helm')}`);

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';
const annotated = (name: string): V1Pod => ({
  metadata: { name, annotations: { 'secrets.k8s.aws/secret-arn': ARN } },
  spec: { containers: [{ name: 'app', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
});
const plain = (name: string): V1Pod => ({
  metadata: { name },
  spec: { containers: [{ name: 'app', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
});
const injected = (pod: V1Pod) => (pod.spec?.initContainers?.length ?? 0) > 0;

describeE2E('chart: helm install and server-side dry-run against the real apiserver', () => {
  let webhook: WebhookProcess;
  const installed: Array<{ release: string; namespace: string }> = [];
  const namespaces: string[] = [];

  const cluster = () => e2e().cluster;
  const helm = (args: string[]) => {
    if (!helmPath) throw new Error(missingToolMessage('helm'));
    return cluster().helm(args, { allowFailure: true, timeoutMs: 120_000 });
  };
  const core = () => cluster().kubeConfig.makeApiClient(CoreV1Api);

  async function namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
    const name = uniqueName(prefix);
    await core().createNamespace({ body: { metadata: { name, labels } } });
    namespaces.push(name);
    await eventually(`ServiceAccount default in ${name}`, async () =>
      core().readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
    );
    return name;
  }

  async function install(release: string, ns: string, set: Record<string, string | number | boolean>) {
    const r = await helm(['install', release, CHART_DIR, '--namespace', ns, ...valueArgs(set)]);
    expect(r.code, r.stderr).toBe(0);
    installed.push({ release, namespace: ns });
    return r.stdout;
  }

  /** The guard a release leaves behind (helm.sh/resource-policy: keep), removed as install.md says. */
  async function removeGuard(release: string) {
    return cluster().kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', `${release}-aws-secret-injector-guard`, '--ignore-not-found'], { allowFailure: true });
  }

  async function uninstall(release: string, ns: string, guardKept = GUARD_SUPPORTED) {
    const r = await helm(['uninstall', release, '--namespace', ns, '--wait', '--timeout', '60s']);
    expect(r.code, r.stderr).toBe(0);
    installed.splice(installed.findIndex((i) => i.release === release), 1);
    // Kept on uninstall: annotated pods of the release's namespaces keep failing closed.
    if (!guardKept) return;
    const kept = await cluster().kubectl(['get', 'validatingadmissionpolicy', `${release}-aws-secret-injector-guard`, '-o', 'name'], { allowFailure: true });
    expect(kept.stdout.trim()).toBe(`validatingadmissionpolicy.admissionregistration.k8s.io/${release}-aws-secret-injector-guard`);
    const removed = await removeGuard(release);
    expect(removed.code, removed.stderr).toBe(0);
  }

  /** Every object of the release's manifest, read back from the apiserver, with its spec intact. */
  async function expectAllAccepted(release: string, ns: string): Promise<K8sObject[]> {
    const manifest = await helm(['get', 'manifest', release, '--namespace', ns]);
    expect(manifest.code, manifest.stderr).toBe(0);
    const objects = parseManifests(manifest.stdout);
    expect(objects.length).toBeGreaterThan(5);
    for (const o of objects) {
      const args = ['get', `${o.kind}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}`.replace(/\.$/, ''), o.metadata.name, '-o', 'json'];
      if (o.metadata.namespace) args.push('--namespace', o.metadata.namespace);
      const got = await cluster().kubectl(args, { allowFailure: true });
      expect(got.code, `${o.kind}/${o.metadata.name}: ${got.stderr}`).toBe(0);
      const stored = JSON.parse(got.stdout) as K8sObject;
      // Nothing the chart set was pruned or dropped on the way in.
      if (o.spec) expect(stored.spec, `${o.kind}/${o.metadata.name} spec`).toMatchObject(o.spec as object);
    }
    return objects;
  }

  beforeAll(async () => {
    webhook = await startWebhook({ bundleDir: e2e().bundleDir });
    // cert-manager's own CRDs: what the chart renders in cert-manager mode is checked against
    // its schemas (unknown fields would be pruned, and so detected below).
    const missing = certManagerMissing();
    if (missing) throw new Error(missing);
    await applyCertManagerCrds(cluster(), { selectableFields: supports('selectableFields in CRDs') });
  });

  afterAll(async () => {
    for (const { release, namespace: ns } of [...installed]) {
      await helm(['uninstall', release, '--namespace', ns, '--wait', '--timeout', '60s']).catch(() => undefined);
      await removeGuard(release);
    }
    await webhook?.stop();
    for (const ns of namespaces) await core().deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('helm install with default values: every object accepted, NOTES, fail closed for annotated pods only, upgrades keep the certificate, Ignore without matchConditions', async () => {
    const ns = await namespace('chart-defaults');
    const notes = await install('asi-defaults', ns, {});
    expect(notes).toContain('secrets.k8s.aws/secret-arn: arn:aws:secretsmanager:');
    const objects = await expectAllAccepted('asi-defaults', ns);
    const mwc = await cluster()
      .kubeConfig.makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: '0-asi-defaults-aws-secret-injector' });
    expect(mwc.webhooks?.[0]?.clientConfig.service).toMatchObject({ name: 'asi-defaults-aws-secret-injector', namespace: ns, port: 443 });
    expect(mwc.webhooks?.[0]?.matchConditions?.[0]?.name).toBe('asks-for-secrets');
    expect(objects.map((o) => o.kind)).toContain('Deployment');

    // No replica runs (no kubelet): the webhook is down. The chart's defaults make exactly the pods
    // that asked for secrets fail closed, and leave every other pod alone.
    const apps = await namespace('chart-down');
    const refused = await eventually('an annotated pod refused while the webhook is down', async () => {
      try {
        await core().createNamespacedPod({ namespace: apps, body: annotated(uniqueName('down')), dryRun: 'All' });
        return undefined;
      } catch (e) {
        return String((e as { body?: unknown }).body ?? e);
      }
    });
    expect(refused).toContain('inject.secrets.k8s.aws');
    const admitted = await core().createNamespacedPod({ namespace: apps, body: plain(uniqueName('plain')), dryRun: 'All' });
    expect(injected(admitted)).toBe(false);

    // What certs bootstrap writes (the Secret's data, the caBundle) survives a helm upgrade: the
    // chart never renders either, so helm's three-way merge leaves them alone.
    const secretName = 'asi-defaults-aws-secret-injector-tls';
    const data = { 'tls.crt': Buffer.from('cert').toString('base64'), 'tls.key': Buffer.from('key').toString('base64') };
    await cluster().kubectl(['patch', 'secret', secretName, '--namespace', ns, '--type=merge', '-p', JSON.stringify({ data })]);
    const caBundle = Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64');
    await cluster().kubectl([
      'patch', 'mutatingwebhookconfiguration', '0-asi-defaults-aws-secret-injector', '--type=json',
      '-p', JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
    ]);
    const upgraded = await helm(['upgrade', 'asi-defaults', CHART_DIR, '--namespace', ns, '--set', 'logLevel=debug']);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect((await core().readNamespacedSecret({ name: secretName, namespace: ns })).data).toEqual(data);
    const after = await cluster()
      .kubeConfig.makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: '0-asi-defaults-aws-secret-injector' });
    expect(after.webhooks?.[0]?.clientConfig.caBundle).toBe(caBundle);
    // So does a rollback, even to the install's revision (the chart must never render caBundle,
    // e.g. carried over with lookup: rolling back to a manifest without it would delete it).
    const rolledBack = await helm(['rollback', 'asi-defaults', '1', '--namespace', ns]);
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect((await core().readNamespacedSecret({ name: secretName, namespace: ns })).data).toEqual(data);
    const afterRollback = await cluster()
      .kubeConfig.makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: '0-asi-defaults-aws-secret-injector' });
    expect(afterRollback.webhooks?.[0]?.clientConfig.caBundle).toBe(caBundle);
    // A Secret deleted by hand (the webhook may not create it): `helm upgrade` brings it back, empty.
    await core().deleteNamespacedSecret({ name: secretName, namespace: ns });
    const restored = await helm(['upgrade', 'asi-defaults', CHART_DIR, '--namespace', ns, '--reuse-values']);
    expect(restored.code, restored.stderr).toBe(0);
    const placeholder = await core().readNamespacedSecret({ name: secretName, namespace: ns });
    expect(placeholder.type).toBe('Opaque');
    expect(placeholder.data ?? {}).toEqual({});

    // Without matchConditions (clusters before 1.28) the default turns to Ignore: every pod is
    // sent, and while the webhook is down an annotated pod gets past it uninjected; the guard
    // (1.30+) then refuses it, and without the guard it is admitted without its secrets.
    const older = await helm(['upgrade', 'asi-defaults', CHART_DIR, '--namespace', ns, '--reuse-values', '--set', 'webhook.matchConditions.enabled=false']);
    expect(older.code, older.stderr).toBe(0);
    if (GUARD_SUPPORTED) {
      const guarded = await eventually('an annotated pod past failurePolicy Ignore, refused by the guard', async () => {
        try {
          await core().createNamespacedPod({ namespace: apps, body: annotated(uniqueName('ignored')), dryRun: 'All' });
          return undefined;
        } catch (e) {
          const body = String((e as { body?: unknown }).body ?? e);
          return body.includes('aws-secret-injector guard:') ? body : undefined;
        }
      });
      expect(guarded).toContain("ValidatingAdmissionPolicy 'asi-defaults-aws-secret-injector-guard'");
      await removeGuard('asi-defaults');
    }
    const ignored = await eventually('an annotated pod admitted uninjected under failurePolicy Ignore', async () => {
      try {
        return await core().createNamespacedPod({ namespace: apps, body: annotated(uniqueName('ignored')), dryRun: 'All' });
      } catch {
        return undefined;
      }
    });
    expect(injected(ignored)).toBe(false);

    // The configuration points at a Service with no running replicas (no kubelet): remove it at
    // once so that annotated pods of other tests are not refused.
    await uninstall('asi-defaults', ns, false);
  });

  it.each(Object.keys(CERT_MODES))(
    'helm install with certificates.mode=%s and the URL clientConfig: accepted, and the chart\'s configuration routes pods',
    async (mode) => {
      const ns = await namespace(`chart-${mode}`);
      const release = `asi-${mode}`;
      await install(release, ns, {
        ...CERT_MODES[mode],
        'webhook.url': `${webhook.url}/mutate`,
        'webhook.caBundle': webhook.caBundle,
        // The optional NetworkPolicy, read back whole below (no CNI here enforces it).
        'networkPolicy.enabled': true,
        'networkPolicy.from[0].ipBlock.cidr': '10.0.0.0/16',
      });
      const objects = await expectAllAccepted(release, ns);
      expect(objects.filter((o) => o.kind === 'NetworkPolicy')).toHaveLength(1);
      const mwc = await cluster()
        .kubeConfig.makeApiClient(AdmissionregistrationV1Api)
        .readMutatingWebhookConfiguration({ name: `0-${release}-aws-secret-injector` });
      expect(mwc.webhooks?.[0]?.clientConfig).toEqual({ url: `${webhook.url}/mutate`, caBundle: webhook.caBundle });

      // Through the chart's configuration alone: an annotated pod in an ordinary namespace is
      // injected (once the apiserver's informer has the configuration).
      const apps = await namespace(`chart-apps-${mode}`);
      let n = 0;
      const pod = await eventually('an annotated pod injected through the chart configuration', async () => {
        const created = await core().createNamespacedPod({ namespace: apps, body: annotated(`app-${n++}`), dryRun: 'All' });
        return injected(created) ? created : undefined;
      });
      expect(pod.spec?.volumes?.some((v) => v.emptyDir?.medium === 'Memory')).toBe(true);

      // A pod without our annotations never reaches the webhook (matchConditions).
      const plainName = uniqueName('plain-pod');
      const p = await core().createNamespacedPod({ namespace: apps, body: plain(plainName) });
      expect(injected(p)).toBe(false);
      // The release namespace and opted-out namespaces are left out (namespaceSelector).
      const own = await core().createNamespacedPod({ namespace: ns, body: annotated(uniqueName('own')), dryRun: 'All' });
      expect(injected(own)).toBe(false);
      const optedOut = await namespace(`chart-optout-${mode}`, { 'secrets.k8s.aws/injection': 'disabled' });
      const out = await core().createNamespacedPod({ namespace: optedOut, body: annotated(uniqueName('out')), dryRun: 'All' });
      expect(injected(out)).toBe(false);
      expect(webhook.log()).not.toContain(plainName);

      await uninstall(release, ns);
    },
  );

  it('self-managed certificates work with exactly the RBAC the chart grants, and with the args it renders', async () => {
    const ns = await namespace('chart-rbac');
    const release = 'asi-rbac';
    const base = `${release}-aws-secret-injector`;
    await install(release, ns, {});
    const objects = await expectAllAccepted(release, ns);
    const pod = (objects.find((o) => o.kind === 'Deployment')!.spec as any).template.spec;

    // Play kubelet: the ServiceAccount's own token, in a kubeconfig of its own.
    const dir = mkdtempSync(join(tmpdir(), 'asi-chart-rbac-'));
    try {
      const token = (await cluster().kubectl(['create', 'token', pod.serviceAccountName, '--namespace', ns, '--duration=10m'])).stdout.trim();
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'e2e', cluster: { server: cluster().server, 'certificate-authority': cluster().caFile } }],
          users: [{ name: 'sa', user: { token } }],
          contexts: [{ name: 'sa', context: { cluster: 'e2e', user: 'sa', namespace: ns } }],
          'current-context': 'sa',
        }),
      );
      // HOME: kubectl keeps its discovery cache there.
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kubeconfig };
      const cli = join(e2e().bundleDir, 'cli.mjs');
      const argsOf = (c: { args: string[] }, out: string) => c.args.map((a) => (a.startsWith('--out=') ? `--out=${out}` : a));

      // Two replicas' init containers, one after the other: both end with the same certificate.
      const outs = [join(dir, 'replica-a'), join(dir, 'replica-b')];
      for (const out of outs) {
        const r = await runCommand(process.execPath, [cli, ...argsOf(pod.initContainers[0], out), '--timeout-seconds=20'], env, {
          allowFailure: true,
          timeoutMs: 60_000,
        });
        expect(r.code, r.stderr + r.stdout).toBe(0);
      }
      const [certA, certB] = outs.map((o) => readFileSync(join(o, 'tls.crt'), 'utf8'));
      expect(certB).toBe(certA);
      const x509 = new X509Certificate(certA!);
      expect(x509.subjectAltName).toContain(`DNS:${base}.${ns}.svc`);
      const secret = await core().readNamespacedSecret({ name: `${base}-tls`, namespace: ns });
      expect(Buffer.from(secret.data!['tls.crt']!, 'base64').toString()).toBe(certA);
      const mwc = await cluster()
        .kubeConfig.makeApiClient(AdmissionregistrationV1Api)
        .readMutatingWebhookConfiguration({ name: `0-${base}` });
      const caBundle = Buffer.from(mwc.webhooks![0]!.clientConfig.caBundle!, 'base64').toString();
      expect(caBundle).toContain(readFileSync(join(outs[0]!, 'ca.crt'), 'utf8').trim());
      expect(x509.verify(new X509Certificate(readFileSync(join(outs[0]!, 'ca.crt'))).publicKey)).toBe(true);

      // The sidecar: a few passes with the same RBAC, no errors, a clean stop on SIGTERM.
      const manage = pod.containers.find((c: { name: string }) => c.name === 'certs-manage');
      const child = spawn(process.execPath, [cli, ...argsOf(manage, outs[0]!), '--interval-seconds=1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await new Promise((r) => setTimeout(r, 3_000));
      child.kill('SIGTERM');
      expect(await exited, output).toBe(0);
      expect(output).not.toMatch(/"level":(50|60)/);
      expect(output).toContain('managing the webhook certificate');

      // Nothing beyond its own Secret and its own configuration.
      const can = async (...args: string[]) =>
        (await runCommand(join(BIN_DIR, 'kubectl'), ['auth', 'can-i', ...args], env, { allowFailure: true })).stdout.trim();
      expect(await can('get', `secrets/${base}-tls`)).toBe('yes');
      expect(await can('update', `secrets/${base}-tls`)).toBe('yes');
      // Exactly the verbs the passes above used: no patch of the Secret, no update of the configuration.
      expect(await can('patch', `secrets/${base}-tls`)).toBe('no');
      expect(await can('delete', `secrets/${base}-tls`)).toBe('no');
      expect(await can('update', `mutatingwebhookconfigurations/0-${base}`)).toBe('no');
      expect(await can('get', `mutatingwebhookconfigurations/0-${base}`)).toBe('yes');
      expect(await can('get', 'secrets/some-other-secret')).toBe('no');
      expect(await can('list', 'secrets')).toBe('no');
      expect(await can('create', 'secrets')).toBe('no');
      expect(await can('get', `secrets/${base}-tls`, '--namespace', 'kube-system')).toBe('no');
      expect(await can('patch', `mutatingwebhookconfigurations/0-${base}`)).toBe('yes');
      expect(await can('patch', 'mutatingwebhookconfigurations/pod-identity-webhook')).toBe('no');
      expect(await can('list', 'mutatingwebhookconfigurations')).toBe('no');
      expect(await can('create', 'pods')).toBe('no');

      // A changed webhook.configurationName: helm replaces the configuration with one that has no
      // caBundle, and changes the certs containers' arguments, so the Deployment rolls out. The
      // first new replica's bootstrap (played here with the same token, under the upgraded RBAC)
      // fills the new configuration's caBundle with the Secret's CA.
      const renamed = `0-renamed-${base}`.slice(0, 63);
      const upgraded = await helm(['upgrade', release, CHART_DIR, '--namespace', ns, '--reuse-values', '--set', `webhook.configurationName=${renamed}`]);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const admission = cluster().kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      const fresh = await admission.readMutatingWebhookConfiguration({ name: renamed });
      expect(fresh.webhooks![0]!.clientConfig.caBundle).toBeUndefined();
      await expect(admission.readMutatingWebhookConfiguration({ name: `0-${base}` })).rejects.toMatchObject({ code: 404 });
      const manifest = await helm(['get', 'manifest', release, '--namespace', ns]);
      const next = (parseManifests(manifest.stdout).find((o) => o.kind === 'Deployment')!.spec as any).template.spec;
      expect(next.initContainers[0].args).toContain(`--webhook-configuration=${renamed}`);
      const out = join(dir, 'replica-renamed');
      const r = await runCommand(process.execPath, [cli, ...argsOf(next.initContainers[0], out), '--timeout-seconds=20'], env, { allowFailure: true, timeoutMs: 60_000 });
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(readFileSync(join(out, 'tls.crt'), 'utf8')).toBe(certA); // the same certificate, adopted
      const filled = await admission.readMutatingWebhookConfiguration({ name: renamed });
      const ca = (await core().readNamespacedSecret({ name: `${base}-tls`, namespace: ns })).data!['ca.crt']!;
      expect(Buffer.from(filled.webhooks![0]!.clientConfig.caBundle!, 'base64').toString()).toBe(Buffer.from(ca, 'base64').toString());
      expect(await can('patch', `mutatingwebhookconfigurations/${renamed}`)).toBe('yes');
      expect(await can('patch', `mutatingwebhookconfigurations/0-${base}`)).toBe('no');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await uninstall(release, ns);
    }
  });

  it("values flow end to end: the chart's environment, run by the webhook, shapes the injected pod", async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    const set = {
      'fetcher.image.repository': 'registry.example.com/team/fetcher',
      'fetcher.image.digest': digest,
      'fetcher.image.pullPolicy': 'Always',
      'fetcher.resources.requests.memory': '40Mi',
      'fetcher.resources.limits.memory': '80Mi',
      'fetcher.uid': 4242,
      // The pod below has no CPU limit: under the default policy its fetcher would have none either.
      cpuLimitPolicy: 'fixed',
      defaultMountPath: '/var/run/app-secrets',
      volumeSizeLimit: '4Mi',
      ...CERT_MODES.provided,
    };
    // Play kubelet for the webhook: its container's environment as the chart renders it (the ports
    // and certificate files are the local process's own).
    const rendered = await helm(['template', 'asi-flow', CHART_DIR, ...KUBE_VERSION, ...valueArgs(set)]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const deployment = parseManifests(rendered.stdout).find((o) => o.kind === 'Deployment')!;
    const env = Object.fromEntries(
      ((deployment.spec as any).template.spec.containers[0].env as Array<{ name: string; value: string }>)
        .filter((e) => !['PORT', 'MONITOR_PORT', 'TLS_CERT_FILE', 'TLS_KEY_FILE'].includes(e.name))
        .map((e) => [e.name, e.value]),
    );
    const local = await startWebhook({ bundleDir: e2e().bundleDir, env });
    const ns = await namespace('chart-flow');
    try {
      await install('asi-flow', ns, { ...set, 'webhook.url': `${local.url}/mutate`, 'webhook.caBundle': local.caBundle });
      const apps = await namespace('chart-flow-apps');
      let n = 0;
      const pod = await eventually('an annotated pod injected through the chart configuration', async () => {
        const created = await core().createNamespacedPod({ namespace: apps, body: annotated(`flow-${n++}`), dryRun: 'All' });
        return injected(created) ? created : undefined;
      });
      const fetcher = pod.spec!.initContainers![0]!;
      expect(fetcher.image).toBe(`registry.example.com/team/fetcher@${digest}`);
      expect(fetcher.imagePullPolicy).toBe('Always');
      expect(fetcher.args).toEqual(['fetch']);
      expect(fetcher.command).toBeUndefined();
      expect(fetcher.resources).toEqual({ requests: { cpu: '10m', memory: '40Mi' }, limits: { cpu: '200m', memory: '80Mi' } });
      expect(fetcher.securityContext?.runAsUser).toBe(4242);
      const volume = pod.spec!.volumes!.find((v) => v.emptyDir?.medium === 'Memory')!;
      expect(volume.emptyDir!.sizeLimit).toBe('4Mi');
      expect(pod.spec!.containers[0]!.volumeMounts).toContainEqual(expect.objectContaining({ name: volume.name, mountPath: '/var/run/app-secrets' }));
      await uninstall('asi-flow', ns);
    } finally {
      await local.stop();
    }
  });

  it('the longest release name helm allows, and names with dots or a digit first, in a 63-character namespace: every object passes a server-side dry-run', async () => {
    const ns = (await namespace('long')).padEnd(63, 'x');
    await core().createNamespace({ body: { metadata: { name: ns } } });
    namespaces.push(ns);
    for (const [release, set] of [
      ['r'.repeat(53), {}],
      ['r'.repeat(53), { ...CERT_MODES['cert-manager'], 'metrics.serviceMonitor.enabled': false }],
      // Release names may hold dots and start with a digit; Service names may not.
      ['my.app.v2', {}],
      ['1app', { ...CERT_MODES['cert-manager'], 'metrics.serviceMonitor.enabled': false }],
    ] as const) {
      const rendered = await helm(['template', release, CHART_DIR, '--namespace', ns, ...KUBE_VERSION, ...valueArgs(set)]);
      expect(rendered.code, rendered.stderr).toBe(0);
      const r = await cluster().kubectl(['apply', '--dry-run=server', '--namespace', ns, '-f', '-'], { input: rendered.stdout, allowFailure: true });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(parseManifests(rendered.stdout).length);
    }
  });

  it.each([['defaults', {}] as const, ...Object.entries(CERT_MODES)])(
    'helm template (%s) passes a server-side dry-run and stores nothing',
    async (label, set) => {
      const ns = await namespace(`dry-${label}`);
      const release = `dry-${label}`;
      const rendered = await helm(['template', release, CHART_DIR, '--namespace', ns, ...KUBE_VERSION, ...valueArgs(set)]);
      expect(rendered.code, rendered.stderr).toBe(0);
      const objects = parseManifests(rendered.stdout);
      const r = await cluster().kubectl(['apply', '--dry-run=server', '--namespace', ns, '-f', '-'], {
        input: rendered.stdout,
        allowFailure: true,
      });
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(objects.length);
      for (const line of lines) expect(line).toMatch(/ created \(server dry run\)$/);
      const gone = await cluster().kubectl(['get', 'mutatingwebhookconfiguration', `0-${release}-aws-secret-injector`], { allowFailure: true });
      expect(gone.stderr).toMatch(/NotFound/);
    },
  );
});
