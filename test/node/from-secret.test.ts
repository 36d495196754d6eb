// fromSecret on a real node: a Secret pushed with `secrets push` (the built CLI, against the
// emulator), its printed reference-only manifest applied, and a Job whose pod reads it with
// `fromSecret`: every key is a file under /tmp/<name>/, and with `refresh` a second push (an
// update of the Secret) reaches the files.

import { expect, it } from 'vitest';
import { bundleDir, ensureBundles } from '../helpers/bundles.js';
import { secretsPush } from '../helpers/secrets-push.js';
import { describeNode, nodeSuite, podWhen, printed, running, startReaderJob, useAwsFront, useNamespace } from './context.js';
import { NODE_SUITE_CLUSTER } from './webhook-pod.js';

const push = (manifest: string) => secretsPush(bundleDir(), nodeSuite().awsEndpoint, ['--cluster', NODE_SUITE_CLUSTER, '-f', '-'], manifest);

const manifest = (ns: string, password: string) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-creds', namespace: ns }, stringData: { username: 'app', password } });

describeNode('fromSecret on a real node', () => {
  const namespace = useNamespace('from-secret');
  useAwsFront();

  it('a pushed Secret is read as one file per key, and an update reaches the files', async () => {
    const { cluster } = nodeSuite();
    const ns = namespace();
    ensureBundles();
    const first = await push(manifest(ns, 'first-p4ss'));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).not.toContain('first-p4ss');
    expect((await cluster.kubectl(['apply', '-f', '-'], { input: first.stdout })).stdout).toContain('secret/db-creds created');

    const podName = await startReaderJob(
      ns,
      { 'secrets.k8s.aws/secrets': '- fromSecret: db-creds', 'secrets.k8s.aws/refresh': '10s' },
      'echo "files: $(ls /tmp/db-creds | tr "\\n" " ")"; echo "first: $(cat /tmp/db-creds/username) $(cat /tmp/db-creds/password)"; ' +
        'while [ "$(cat /tmp/db-creds/password)" = first-p4ss ]; do sleep 1; done; echo "then: $(cat /tmp/db-creds/password)"',
    );
    await podWhen(ns, podName, 'app running', running('app'));
    expect(await printed(ns, podName, 'app', /^files: /m)).toMatch(/^files: password username $/m);
    expect(await printed(ns, podName, 'app', /^first: /m)).toContain('first: app first-p4ss');

    const second = await push(manifest(ns, 'rotated-p4ss'));
    expect(second.stderr).toContain('updated');
    expect(await printed(ns, podName, 'app', /^then: /m, 90_000)).toContain('then: rotated-p4ss');
  });
});
