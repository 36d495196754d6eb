// `aws-secret-injector secrets push`, the built CLI against the AWS API emulator: the printed
// manifests hold no value, the values are in Secrets Manager with our tags, a second push of the
// same manifests makes no new version, and a bad input writes nothing.

import { DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { secretsPush } from '../helpers/secrets-push.js';
import { integrationContext, REGION, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

const push = (args: string[], input: string) => secretsPush(ctx!.bundleDir, ctx!.awsEndpoint, args, input, REGION);

const PASSWORD = 'pl41ntext-P4ssw0rd';
const TOKEN = 'tok-9f8e7d6c5b4a';

function manifests(ns: string): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: db-creds
  namespace: ${ns}
  labels: { app: web }
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"password":"${Buffer.from(PASSWORD).toString('base64')}"}}'
type: Opaque
data:
  password: ${Buffer.from(PASSWORD).toString('base64')}
stringData:
  user: u53r-n4me
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata: { name: api-token }
    stringData: { token: ${TOKEN} }
`;
}

describe.skipIf(skip)('secrets push (built CLI, emulator)', () => {
  const sm = () => seedClients(ctx!.awsEndpoint).secrets;

  it('writes the values and prints reference-only manifests, then writes no new version for the same input', async () => {
    const cluster = unique('prod');
    const ns = unique('team');
    const first = await push(['--cluster', cluster, '--namespace', ns, '-f', '-'], manifests(ns));
    expect(first.stderr).toMatch(/created .*db-creds -> k8s\/.*\/db-creds/);
    expect(first.code).toBe(0);
    for (const secret of [PASSWORD, TOKEN, Buffer.from(PASSWORD).toString('base64'), 'u53r-n4me']) {
      expect(first.stdout).not.toContain(secret);
      expect(first.stderr).not.toContain(secret);
    }
    const docs = YAML.parseAllDocuments(first.stdout).map((d) => d.toJS());
    expect(docs).toHaveLength(2);
    const [db, api] = docs;
    expect(db).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'db-creds',
        namespace: ns,
        labels: { app: 'web' },
        annotations: { 'secrets.k8s.aws/stored-in': expect.stringContaining(`:secret:k8s/${cluster}/${ns}/db-creds-`), 'secrets.k8s.aws/version-id': expect.any(String) },
      },
      type: 'Opaque',
    });
    expect(api.metadata.namespace).toBe(ns);

    const stored = await sm().send(new GetSecretValueCommand({ SecretId: `k8s/${cluster}/${ns}/db-creds` }));
    expect(JSON.parse(stored.SecretString!)).toEqual({ password: PASSWORD, user: 'u53r-n4me' });
    expect(stored.VersionId).toBe(db.metadata.annotations['secrets.k8s.aws/version-id']);
    const tags = (await sm().send(new DescribeSecretCommand({ SecretId: `k8s/${cluster}/${ns}/api-token` }))).Tags;
    expect(tags).toEqual(expect.arrayContaining([
      { Key: 'managed-by', Value: 'aws-secret-injector' },
      { Key: 'kubernetes-cluster', Value: cluster },
      { Key: 'kubernetes-namespace', Value: ns },
      { Key: 'kubernetes-name', Value: 'api-token' },
    ]));

    const again = await push(['--cluster', cluster, '--namespace', ns, '-f', '-'], manifests(ns));
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/unchanged .*db-creds/);
    expect(again.stdout).toBe(first.stdout);
    const versions = await sm().send(new ListSecretVersionIdsCommand({ SecretId: `k8s/${cluster}/${ns}/db-creds`, IncludeDeprecated: true }));
    expect(versions.Versions).toHaveLength(1);
  });

  it('writes nothing when one Secret of the input cannot be stored, naming each problem', async () => {
    const cluster = unique('prod');
    const input = `apiVersion: v1
kind: Secret
metadata: { name: good, namespace: ns }
stringData: { a: b }
---
apiVersion: v1
kind: Secret
metadata: { name: binary, namespace: ns }
data: { blob: ${Buffer.from([0xff, 0xfe]).toString('base64')} }
---
apiVersion: v1
kind: Secret
metadata: { name: tls, namespace: ns }
type: kubernetes.io/tls
stringData: { tls.crt: x, tls.key: y }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: cm, namespace: ns }
`;
    const r = await push(['--cluster', cluster, '-f', '-'], input);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('document 2 (Secret ns/binary): data.blob is not UTF-8 text');
    expect(r.stderr).toContain('document 3 (Secret ns/tls): type is kubernetes.io/tls; only Opaque Secrets are stored');
    expect(r.stderr).toContain('document 4: not a v1 Secret');
    expect(r.stderr).toContain('nothing was written');
    const err = await sm().send(new DescribeSecretCommand({ SecretId: `k8s/${cluster}/ns/good` })).catch((e: Error) => e);
    expect((err as Error).name).toBe('ResourceNotFoundException');
  });

  it('refuses a missing cluster and an invalid one as usage errors', async () => {
    expect((await push(['-f', '-'], '')).code).toBe(2);
    const r = await push(['--cluster', 'bad name', '-f', '-'], '');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--cluster "bad name" is not a cluster name/);
  });
});
