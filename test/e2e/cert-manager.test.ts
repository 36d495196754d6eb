// The chart's cert-manager mode against the real cert-manager (controller and CA injector, v1.21.2)
// and the real apiserver: the release's CA issues the serving certificate, cainjector fills
// caBundle, and the built webhook (a local process behind the chart's webhook.url) serves the
// certificate from its Secret, written to its TLS files as the kubelet syncs a mounted Secret. A
// renewal forced while annotated pods are created without pause refuses none of them.

import { X509Certificate } from 'node:crypto';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCertManagerCrds, certManagerMissing, startCertManager, type CertManager } from '../helpers/cert-manager.js';
import { eventually, uniqueName } from '../helpers/cluster.js';
import { startWebhook, type WebhookProcess } from '../helpers/webhook-process.js';
import { CHART_DIR, valueArgs } from '../unit/chart-render.js';
import { describeE2E, e2e, lacking } from './context.js';

const missing = certManagerMissing();
if (missing) console.warn(`skipping the cert-manager e2e test: ${missing}`);

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';
const annotated = (name: string): V1Pod => ({
  metadata: { name, annotations: { 'secrets.k8s.aws/secret-arn': ARN } },
  spec: { containers: [{ name: 'app', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The serial of the certificate a TLS server at 127.0.0.1:port presents. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 5_000 }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('timeout', () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}

// cert-manager 1.21 itself, with its CRDs whole, needs Kubernetes 1.31 (docs/compatibility.md).
(missing || lacking('selectableFields in CRDs') ? describe.skip : describeE2E)(`cert-manager mode with the real cert-manager: a forced renewal refuses no review${lacking('selectableFields in CRDs') ? ` (${lacking('selectableFields in CRDs')})` : ''}`, () => {
  const release = 'asi-cm';
  const fullname = `${release}-aws-secret-injector`;
  let webhook: WebhookProcess;
  let certManager: CertManager | undefined;
  let ns = '';
  let apps = '';
  let syncing = true;
  let sync: Promise<void> | undefined;

  const cluster = () => e2e().cluster;
  const core = () => cluster().kubeConfig.makeApiClient(CoreV1Api);
  const readTls = async () => (await core().readNamespacedSecret({ name: `${fullname}-tls`, namespace: ns })).data ?? {};

  // What the kubelet does for a mounted Secret: the new files in a fresh directory, then one
  // rename of the `..data` link, so the webhook never sees a certificate next to another's key.
  let generation = 0;
  function writeTls(data: Record<string, string>) {
    const dir = webhook.tlsDir;
    const version = `..${++generation}`;
    mkdirSync(join(dir, version));
    for (const f of ['tls.crt', 'tls.key']) writeFileSync(join(dir, version, f), Buffer.from(data[f]!, 'base64'), { mode: 0o600 });
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    if (generation === 1) {
      for (const f of ['tls.crt', 'tls.key']) {
        symlinkSync(join('..data', f), join(dir, `${f}.tmp`));
        renameSync(join(dir, `${f}.tmp`), join(dir, f));
      }
    }
  }

  beforeAll(async () => {
    await applyCertManagerCrds(cluster());
    certManager = startCertManager(cluster());
    webhook = await startWebhook({ bundleDir: e2e().bundleDir });
    ns = uniqueName('cm');
    apps = uniqueName('cm-apps');
    for (const name of [ns, apps]) await core().createNamespace({ body: { metadata: { name } } });
    const r = await cluster().helm(
      ['install', release, CHART_DIR, '--namespace', ns, ...valueArgs({ 'certificates.mode': 'cert-manager', 'webhook.url': `${webhook.url}/mutate` })],
      { allowFailure: true, timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    // The Secret as the kubelet syncs it into the pod, polled the way its sync loop does.
    let last = '';
    sync = (async () => {
      while (syncing) {
        const data = await readTls().catch(() => undefined);
        if (data?.['tls.crt'] && data['tls.key'] && data['tls.crt'] !== last) {
          writeTls(data);
          last = data['tls.crt'];
        }
        await sleep(1_000);
      }
    })();
  }, 240_000);

  afterAll(async () => {
    syncing = false;
    await sync;
    await cluster().helm(['uninstall', release, '--namespace', ns, '--wait', '--timeout', '60s'], { allowFailure: true }).catch(() => undefined);
    await cluster().kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', `${fullname}-guard`, '--ignore-not-found'], { allowFailure: true });
    await certManager?.stop();
    await webhook?.stop();
    for (const name of [ns, apps]) if (name) await core().deleteNamespace({ name }).catch(() => undefined);
  });

  it('issues the serving certificate from the release CA, injects caBundle, and a forced renewal refuses no annotated pod', async () => {
    const admission = cluster().kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    // cert-manager issues the CA, then the serving certificate; cainjector puts the CA into caBundle.
    const caBundle = await eventually('caBundle injected by cainjector', async () => {
      const mwc = await admission.readMutatingWebhookConfiguration({ name: `0-${fullname}` });
      return mwc.webhooks?.[0]?.clientConfig.caBundle || undefined;
    }, 180_000);
    const ca = new X509Certificate(Buffer.from(caBundle, 'base64'));
    const first = new X509Certificate(Buffer.from((await readTls())['tls.crt']!, 'base64'));
    expect(first.checkIssued(ca)).toBe(true);
    expect(first.checkIP('127.0.0.1')).toBe('127.0.0.1');
    await eventually('the issued certificate served', async () => ((await servedSerial(webhook.port)) === first.serialNumber ? true : undefined), 60_000);
    let n = 0;
    await eventually('an annotated pod injected through the chart configuration', async () => {
      const pod = await core().createNamespacedPod({ namespace: apps, body: annotated(`warm-${n++}`), dryRun: 'All' });
      return (pod.spec?.initContainers?.length ?? 0) > 0 ? true : undefined;
    }, 60_000);

    // From here on every review counts: annotated pods created without pause (dry-run).
    let reviews = 0;
    const refused: string[] = [];
    let creating = true;
    const load = (async () => {
      while (creating) {
        try {
          const pod = await core().createNamespacedPod({ namespace: apps, body: annotated(uniqueName('pod')), dryRun: 'All' });
          if ((pod.spec?.initContainers?.length ?? 0) === 0) refused.push('admitted without injection');
        } catch (e) {
          refused.push(String((e as { body?: unknown }).body ?? e));
        }
        reviews++;
      }
    })();

    try {
      await sleep(2_000);
      // What `cmctl renew` does: the Issuing condition on the Certificate's status.
      const patch = [{
        op: 'add',
        path: '/status/conditions/-',
        value: { type: 'Issuing', status: 'True', reason: 'ManuallyTriggered', message: 'Certificate re-issuance manually triggered', lastTransitionTime: new Date().toISOString() },
      }];
      const renew = await cluster().kubectl(['patch', 'certificate', fullname, '--namespace', ns, '--subresource=status', '--type=json', '-p', JSON.stringify(patch)], { allowFailure: true });
      expect(renew.code, renew.stderr).toBe(0);

      const renewed = await eventually('a new serving certificate in the Secret', async () => {
        const cert = new X509Certificate(Buffer.from((await readTls())['tls.crt']!, 'base64'));
        return cert.serialNumber !== first.serialNumber ? cert : undefined;
      }, 180_000);
      expect(renewed.checkIssued(ca)).toBe(true);
      expect(renewed.publicKey.export({ format: 'der', type: 'spki' }).equals(first.publicKey.export({ format: 'der', type: 'spki' }))).toBe(false);
      await eventually('the renewed certificate served', async () => ((await servedSerial(webhook.port)) === renewed.serialNumber ? true : undefined), 60_000);
      // Reviews keep going against the renewed certificate for a while.
      const before = reviews;
      await eventually('reviews against the renewed certificate', async () => (reviews >= before + 20 ? true : undefined), 60_000);
      const mwc = await admission.readMutatingWebhookConfiguration({ name: `0-${fullname}` });
      expect(mwc.webhooks?.[0]?.clientConfig.caBundle, 'caBundle unchanged by the renewal').toBe(caBundle);
    } finally {
      creating = false;
      await load;
    }
    console.log(`cert-manager renewal: ${reviews} reviews, ${refused.length} refused`);
    expect(reviews).toBeGreaterThan(20);
    expect(refused, refused.slice(0, 3).join('\n')).toEqual([]);
  }, 600_000);
});
