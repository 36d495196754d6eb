// Many secrets in one pod, through the real apiserver and the built fetcher: the short form
// (`secret.<file>`), the full YAML form with `key`, `explode` + `prefix`, `format: env`, a file
// mode, a sub-directory, an SSM SecureString parameter, and `role-arn` chaining from the pod's
// IRSA identity into another role.

import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { stringify } from 'yaml';
import { awsClients, createSecret, describeE2E, e2e, useNamespace, useWebhook } from './context.js';
import { startAwsProxy } from '../helpers/aws-proxy.js';
import { fetcherContainer, runFetcherLikeKubelet } from './kubelet.js';

const TOKEN_DIR = '/var/run/secrets/eks.amazonaws.com/serviceaccount';

describeE2E('many secrets, the full YAML form, explode, SSM and role chaining', () => {
  useWebhook();
  const namespace = useNamespace('many');

  it('writes every file with its content and mode', async () => {
    const ctx = e2e();
    const ns = namespace();
    const dbPassword = await createSecret(`${ns}/db-password`, 'pw-1');
    const apiKey = await createSecret(`${ns}/api-key`, 'key-2');
    const db = await createSecret(`${ns}/db`, JSON.stringify({ username: 'app', password: "it's \"quoted\" $HOME" }));
    await awsClients().ssm.send(
      new PutParameterCommand({ Name: `/${ns}/feature-flag`, Value: 'on', Type: 'SecureString' }),
    );
    const parameterArn = `arn:aws:ssm:us-east-1:123456789012:parameter/${ns}/feature-flag`;
    const chainedRole = 'arn:aws:iam::123456789012:role/secrets-reader';

    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'many',
        annotations: {
          'secrets.k8s.aws/secret.db-password': dbPassword,
          'secrets.k8s.aws/secret.api-key': apiKey,
          'secrets.k8s.aws/secrets': stringify([
            { ref: db, key: 'password', file: 'db/password' },
            { ref: db, explode: true, prefix: 'DB_', file: 'exploded' },
            { ref: db, format: 'env', file: 'db.env' },
            { ref: parameterArn, file: 'flag', mode: '0400' },
          ]),
          'secrets.k8s.aws/role-arn': chainedRole,
          'secrets.k8s.aws/region': 'us-east-1',
        },
      },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'busybox',
            env: [
              { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/pod-identity' },
              { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
            ],
            volumeMounts: [{ name: 'aws-iam-token', mountPath: TOKEN_DIR, readOnly: true }],
          },
          { name: 'sidecar', image: 'busybox' },
        ],
        volumes: [
          {
            name: 'aws-iam-token',
            projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] },
          },
        ],
      },
    };
    const core = ctx.cluster.kubeConfig.makeApiClient(CoreV1Api);
    const stored = await core.createNamespacedPod({ namespace: ns, body: pod });
    const init = fetcherContainer(stored);
    expect(init.args).toEqual(['fetch']);
    for (const c of stored.spec!.containers) {
      expect(c.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/tmp' }));
    }

    const recorder = await startAwsProxy(ctx.awsEndpoint);
    const run = await runFetcherLikeKubelet(ctx.cluster, stored, { bundleDir: ctx.bundleDir, awsEndpoint: recorder.endpoint }).finally(
      () => recorder.close(),
    );
    expect(run.result.code, run.result.stderr).toBe(0);
    // The pod's own identity first (the real ServiceAccount token), then the chained role.
    const ops = recorder.calls.map((c) => c.operation);
    const webIdentity = recorder.calls.find((c) => c.operation === 'sts.AssumeRoleWithWebIdentity');
    expect(webIdentity, `calls: ${ops.join(', ')}`).toBeDefined();
    expect(webIdentity!.params.WebIdentityToken).toBe(run.token);
    expect(webIdentity!.params.RoleArn).toBe('arn:aws:iam::123456789012:role/pod-identity');
    const chained = recorder.calls.find((c) => c.operation === 'sts.AssumeRole');
    expect(chained?.params.RoleArn, `calls: ${ops.join(', ')}`).toBe(chainedRole);
    expect(ops.indexOf('sts.AssumeRoleWithWebIdentity')).toBeLessThan(ops.indexOf('sts.AssumeRole'));
    expect(ops.some((o) => /secretsmanager\.(Batch)?GetSecretValue/.test(o))).toBe(true);
    expect(ops).toContain('AmazonSSM.GetParameters');
    const files = run.files;
    expect(files['db-password']).toEqual({ content: 'pw-1', mode: 0o444 });
    expect(files['api-key']).toEqual({ content: 'key-2', mode: 0o444 });
    expect(files['db/password']?.content).toBe("it's \"quoted\" $HOME");
    expect(files['exploded/DB_username']?.content).toBe('app');
    expect(files['exploded/DB_password']?.content).toBe("it's \"quoted\" $HOME");
    expect(files['db.env']?.content).toMatch(/^username=/m);
    expect(files['db.env']?.content).toMatch(/^password=/m);
    expect(files.flag).toEqual({ content: 'on', mode: 0o400 });
    expect(files['.secrets-ready']).toBeDefined();
    // Nothing of the values reached the pod object.
    expect(JSON.stringify(stored)).not.toContain('pw-1');
    expect(JSON.stringify(stored)).not.toContain('quoted');
  });
});
