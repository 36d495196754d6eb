// Write-through against the real kube-apiserver and etcd, with the AWS API emulator: the writer
// (`aws-secret-injector write-through`) registered as the chart registers it. What etcd stores is
// read from etcd itself, and no byte of a value may be in it, after client-side and server-side
// apply alike. Versions, dry runs, two clusters, DELETE with each policy, the writer down, and the
// reference-only manifests `secrets push` prints.

import { DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand } from '@aws-sdk/client-secrets-manager';
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAwsProxy, type AwsProxy } from '../helpers/aws-proxy.js';
import { etcdGet, type Cluster } from '../helpers/cluster.js';
import { startWebhook, type WebhookProcess } from '../helpers/webhook-process.js';
import { secretsPush } from '../helpers/secrets-push.js';
import { findTool } from '../helpers/tools.js';
import { renderChart } from '../unit/chart-render.js';
import { stringify } from 'yaml';
import { awsClients, describeE2E, e2e, useNamespace } from './context.js';

const LABEL = 'secrets.k8s.aws/write-through';
const CONFIGURATION = 'aws-secret-injector-write-through-e2e';
const PASSWORD = 'e2e-Pl4intext-p4ssw0rd';
const USER = 'e2e-us3r-n4me';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The writer's configuration as the chart renders it (templates/write-through.yaml). */
function writerConfiguration(target: { url: string; caBundle: string }): V1MutatingWebhookConfiguration {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: CONFIGURATION },
    webhooks: [
      {
        name: 'write-through.secrets.k8s.aws',
        admissionReviewVersions: ['v1'],
        sideEffects: 'NoneOnDryRun',
        failurePolicy: 'Fail',
        matchPolicy: 'Equivalent',
        timeoutSeconds: 10,
        clientConfig: { url: `${target.url}/mutate`, caBundle: target.caBundle },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['secrets'], scope: 'Namespaced' }],
        objectSelector: { matchLabels: { [LABEL]: 'true' } },
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease'] }] },
      },
    ],
  };
}

function secretManifest(name: string, password = PASSWORD, labelled = true): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, ...(labelled ? { labels: { [LABEL]: 'true' } } : {}) },
    type: 'Opaque',
    data: { password: b64(password) },
    stringData: { user: USER },
  });
}

/** Whether a dry-run create of a labelled Secret comes back without its data (the writer in effect). */
async function writerInEffect(cluster: Cluster, namespace: string): Promise<boolean> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  try {
    const s = await core.createNamespacedSecret({
      namespace,
      dryRun: 'All',
      body: { metadata: { generateName: 'probe-', labels: { [LABEL]: 'true' } }, stringData: { k: 'v' } },
    });
    return s.data === undefined;
  } catch (e) {
    // Refused: by the writer (generateName), by a writer that is down, or, with no writer
    // configured, by the chart's policy, which is not the writer.
    return !String((e as { body?: unknown }).body ?? e).includes('stored without data');
  }
}

async function register(cluster: Cluster, writer: WebhookProcess, namespace: string): Promise<void> {
  const api = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  await api.deleteMutatingWebhookConfiguration({ name: CONFIGURATION }).catch(() => undefined);
  await api.createMutatingWebhookConfiguration({ body: writerConfiguration(writer) });
  // The apiserver picks it up through an informer; a second writer replacing the first must be the
  // one answering before a test goes on, so wait a moment past the first sign of effect.
  for (let i = 0; i < 75 && !(await writerInEffect(cluster, namespace)); i++) await sleep(200);
  await sleep(1_500);
}

async function unregister(cluster: Cluster, namespace: string): Promise<void> {
  const api = cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  await api.deleteMutatingWebhookConfiguration({ name: CONFIGURATION }).catch(() => undefined);
  for (let i = 0; i < 75 && (await writerInEffect(cluster, namespace)); i++) await sleep(200);
}

describeE2E('write-through (writer, real apiserver and etcd, emulator)', () => {
  const namespace = useNamespace('wt');
  let proxy: AwsProxy;
  let writerA: WebhookProcess | undefined;
  let writerB: WebhookProcess | undefined;
  const writerEnv = (cluster: string, policy: 'Retain' | 'Delete') => ({
    WRITE_THROUGH_CLUSTER: cluster,
    WRITE_THROUGH_DELETION_POLICY: policy,
    WRITE_THROUGH_RECOVERY_DAYS: '7',
    AWS_ENDPOINT_URL: proxy.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'writer',
    AWS_SECRET_ACCESS_KEY: 'writer',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const sm = () => awsClients().secrets;
  const storeName = (cluster: string, name: string) => `k8s/${cluster}/${namespace()}/${name}`;
  const versions = async (id: string) => (await sm().send(new ListSecretVersionIdsCommand({ SecretId: id, IncludeDeprecated: true }))).Versions?.length ?? 0;

  async function expectNoValueInEtcd(name: string, values: string[]): Promise<Buffer> {
    const { cluster } = e2e();
    const stored = await etcdGet(cluster.etcdUrl!, `/registry/secrets/${namespace()}/${name}`);
    expect(stored, `etcd holds /registry/secrets/${namespace()}/${name}`).toBeDefined();
    for (const v of values) {
      for (const form of [v, b64(v)]) expect(stored!.includes(Buffer.from(form)), `etcd's copy of ${name} holds ${form}`).toBe(false);
    }
    return stored!;
  }

  // The chart's ValidatingAdmissionPolicy and its binding, as the chart renders them.
  const policy = () =>
    renderChart(findTool('helm')!, { release: 'e2e', namespace: 'asi', set: { 'writeThrough.enabled': true, 'writeThrough.cluster': 'cluster-a' }, extra: ['--kube-version', '1.31.0'] })
      .filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy') && o.metadata.name.endsWith('-write-through'));

  beforeAll(async () => {
    const { cluster, bundleDir, awsEndpoint } = e2e();
    const objects = policy();
    expect(objects.map((o) => o.kind).sort()).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    await cluster.kubectl(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
    proxy = await startAwsProxy(awsEndpoint);
    writerA = await startWebhook({ bundleDir, command: 'write-through', env: writerEnv('cluster-a', 'Retain') });
    await register(cluster, writerA, namespace());
  });
  afterAll(async () => {
    await e2e().cluster.kubectl(['delete', '-f', '-', '--ignore-not-found'], { input: policy().map((o) => stringify(o)).join('---\n'), allowFailure: true });
    await unregister(e2e().cluster, namespace());
    await writerA?.stop();
    await writerB?.stop();
    await proxy?.close();
  });

  it('client-side apply: etcd holds no byte of the value; Secrets Manager holds it with our tags', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db') });
    expect(out.stdout).toContain('secret/db created');
    const stored = await expectNoValueInEtcd('db', [PASSWORD, USER]);
    expect(stored.includes(Buffer.from(storeName('cluster-a', 'db')))).toBe(true);
    const live = JSON.parse((await cluster.kubectl(['get', 'secret', 'db', '-n', namespace(), '-o', 'json'])).stdout);
    expect(live.data).toBeUndefined();
    expect(live.metadata.annotations['secrets.k8s.aws/stored-in']).toContain(`:secret:${storeName('cluster-a', 'db')}-`);
    expect(JSON.parse(live.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).data).toBeUndefined();
    const value = await sm().send(new GetSecretValueCommand({ SecretId: storeName('cluster-a', 'db') }));
    expect(JSON.parse(value.SecretString!)).toEqual({ password: PASSWORD, user: USER });
    expect(value.VersionId).toBe(live.metadata.annotations['secrets.k8s.aws/version-id']);
    const tags = (await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-a', 'db') }))).Tags;
    expect(tags).toEqual(expect.arrayContaining([
      { Key: 'managed-by', Value: 'aws-secret-injector' },
      { Key: 'kubernetes-cluster', Value: 'cluster-a' },
      { Key: 'kubernetes-namespace', Value: namespace() },
      { Key: 'kubernetes-name', Value: 'db' },
    ]));
    expect(writerA!.log()).not.toContain(PASSWORD);
  });

  it('server-side apply: no byte of the value in etcd, managedFields included', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '--server-side', '--field-manager=e2e', '-n', namespace(), '-f', '-'], { input: secretManifest('api') });
    expect(out.code).toBe(0);
    const stored = await expectNoValueInEtcd('api', [PASSWORD, USER]);
    expect(stored.includes(Buffer.from('managedFields')) || stored.includes(Buffer.from('e2e'))).toBe(true);
    const value = await sm().send(new GetSecretValueCommand({ SecretId: storeName('cluster-a', 'api') }));
    expect(JSON.parse(value.SecretString!)).toEqual({ password: PASSWORD, user: USER });
  });

  it('an update makes exactly one new version; re-applying the same manifest makes none', async () => {
    const { cluster } = e2e();
    const id = storeName('cluster-a', 'db');
    expect(await versions(id)).toBe(1);
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db') });
    await cluster.kubectl(['apply', '--server-side', '--field-manager=e2e', '-n', namespace(), '-f', '-'], { input: secretManifest('api') });
    expect(await versions(id)).toBe(1);
    expect(await versions(storeName('cluster-a', 'api'))).toBe(1);
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db', 'e2e-N3w-p4ssw0rd') });
    expect(await versions(id)).toBe(2);
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db', 'e2e-N3w-p4ssw0rd') });
    expect(await versions(id)).toBe(2);
    await expectNoValueInEtcd('db', ['e2e-N3w-p4ssw0rd', PASSWORD, USER]);
  });

  it('--dry-run=server and kubectl diff work and make no AWS call', async () => {
    const { cluster } = e2e();
    const before = proxy.operations.length;
    const dry = await cluster.kubectl(['apply', '--dry-run=server', '-n', namespace(), '-f', '-', '-o', 'json'], { input: secretManifest('preview') });
    expect(dry.code).toBe(0);
    const previewed = JSON.parse(dry.stdout);
    expect(previewed.data).toBeUndefined();
    expect(previewed.metadata.annotations['secrets.k8s.aws/stored-in']).toBe(storeName('cluster-a', 'preview'));
    const diff = await cluster.kubectl(['diff', '-n', namespace(), '-f', '-'], { input: secretManifest('db', 'e2e-Th1rd-p4ssw0rd'), allowFailure: true });
    expect(diff.code, diff.stderr).toBeLessThanOrEqual(1);
    expect(proxy.operations.slice(before)).toEqual([]);
    const missing = await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-a', 'preview') })).catch((e: Error) => e);
    expect((missing as Error).name).toBe('ResourceNotFoundException');
  });

  it('two clusters never collide: the same Secret is kept under each cluster\'s name', async () => {
    const { cluster, bundleDir } = e2e();
    writerB = await startWebhook({ bundleDir, command: 'write-through', env: writerEnv('cluster-b', 'Delete') });
    await register(cluster, writerB, namespace());
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db', 'e2e-Cluster-b-p4ss') });
    const a = await sm().send(new GetSecretValueCommand({ SecretId: storeName('cluster-a', 'db') }));
    const b = await sm().send(new GetSecretValueCommand({ SecretId: storeName('cluster-b', 'db') }));
    expect(a.ARN).not.toBe(b.ARN);
    expect(JSON.parse(a.SecretString!).password).toBe('e2e-N3w-p4ssw0rd');
    expect(JSON.parse(b.SecretString!).password).toBe('e2e-Cluster-b-p4ss');
    const live = JSON.parse((await cluster.kubectl(['get', 'secret', 'db', '-n', namespace(), '-o', 'json'])).stdout);
    expect(live.metadata.annotations['secrets.k8s.aws/stored-in']).toBe(b.ARN);
  });

  it('DELETE with deletionPolicy Delete schedules the deletion, a later CREATE restores; Retain keeps the secret', async () => {
    const { cluster } = e2e();
    // Writer B (Delete) is in effect.
    expect((await cluster.kubectl(['delete', 'secret', 'db', '-n', namespace()])).code).toBe(0);
    expect((await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-b', 'db') }))).DeletedDate).toBeDefined();
    expect((await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-a', 'db') }))).DeletedDate).toBeUndefined();
    const again = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('db', 'e2e-Cluster-b-p4ss') });
    expect(again.stderr).toContain('is restored');
    expect((await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-b', 'db') }))).DeletedDate).toBeUndefined();

    // Writer A (Retain) again.
    await register(cluster, writerA!, namespace());
    expect((await cluster.kubectl(['delete', 'secret', 'api', '-n', namespace()])).code).toBe(0);
    expect((await sm().send(new DescribeSecretCommand({ SecretId: storeName('cluster-a', 'api') }))).DeletedDate).toBeUndefined();
  });

  it('the printed manifests of secrets push apply cleanly and hold no value', async () => {
    const { cluster, bundleDir, awsEndpoint } = e2e();
    const input = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pushed', namespace: namespace() }, stringData: { token: 'e2e-Push3d-t0ken' } });
    const pushed = await secretsPush(bundleDir, awsEndpoint, ['--cluster', 'cluster-a', '-f', '-'], input);
    expect(pushed.code, pushed.stderr).toBe(0);
    const stdout = pushed.stdout;
    expect(stdout).not.toContain('e2e-Push3d-t0ken');
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: stdout });
    expect(applied.stdout).toContain('secret/pushed created');
    await expectNoValueInEtcd('pushed', ['e2e-Push3d-t0ken']);
  });

  it('with the writer down a labelled Secret is refused, an unlabelled one stored', async () => {
    const { cluster } = e2e();
    await writerA!.stop();
    writerA = undefined;
    const refused = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('down'), allowFailure: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('write-through.secrets.k8s.aws');
    expect(await etcdGet(e2e().cluster.etcdUrl!, `/registry/secrets/${namespace()}/down`)).toBeUndefined();
    const plain = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('plain', PASSWORD, false) });
    expect(plain.stdout).toContain('secret/plain created');
    // The control: an unlabelled Secret's value is in etcd as it is, where the reading above looks.
    const stored = await etcdGet(e2e().cluster.etcdUrl!, `/registry/secrets/${namespace()}/plain`);
    expect(stored!.includes(Buffer.from(PASSWORD))).toBe(true);
  });

  it("without the writer's configuration, the chart's ValidatingAdmissionPolicy still refuses a labelled Secret with data", async () => {
    const { cluster } = e2e();
    await unregister(cluster, namespace());
    const refused = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: secretManifest('unguarded'), allowFailure: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('is stored without data');
    expect(await etcdGet(cluster.etcdUrl!, `/registry/secrets/${namespace()}/unguarded`)).toBeUndefined();
  });
});
