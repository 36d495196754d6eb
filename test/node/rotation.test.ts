// Rotation on a real node: a Job whose pod asks for `secrets.k8s.aws/refresh`. The kubelet runs
// the fetcher, then starts the refresh sidecar (a native sidecar: an init container with
// `restartPolicy: Always`) and keeps it beside the app; a value rotated in the emulator appears in
// the app's view of the file; once the app exits the kubelet stops the sidecar and the Job's pod
// completes.

import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { BatchV1Api } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { eventually } from '../helpers/cluster.js';
import { createSecret, describeNode, nodeSuite, podWhen, printed, running, startReaderJob, useAwsFront, useNamespace } from './context.js';

describeNode('rotation on a real node', () => {
  const namespace = useNamespace('rotation');
  useAwsFront();

  it('the sidecar starts after the fetcher, runs beside the app, brings the rotated value, and the Job completes', async () => {
    const { cluster, core, awsEndpoint } = nodeSuite();
    const ns = namespace();
    const arn = await createSecret(`rotation-${ns}`, 'first-value');
    const podName = await startReaderJob(
      ns,
      { 'secrets.k8s.aws/secret-arn': arn, 'secrets.k8s.aws/refresh': '10s' },
      'echo "first: $(cat /tmp/secret)"; while [ "$(cat /tmp/secret)" = first-value ]; do sleep 1; done; echo "then: $(cat /tmp/secret)"',
    );
    const batch = cluster.kubeConfig.makeApiClient(BatchV1Api);
    const pod = await podWhen(ns, podName, 'app running', running('app'));
    expect(await printed(ns, podName, 'app', /^first: /m)).toContain('first: first-value');

    // The kubelet's report: the fetcher completed, then the sidecar started and keeps running.
    const [fetcher, refresher] = pod.status!.initContainerStatuses!;
    expect(fetcher!.name).toBe('secret-fetcher');
    expect(fetcher!.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(refresher!.name).toBe('secret-refresher');
    expect(refresher!.state?.running).toBeDefined();
    expect(refresher!.imageID).toBe(nodeSuite().built.config.fetcher.id);
    const fetcherDone = new Date(fetcher!.state!.terminated!.finishedAt!).getTime();
    expect(new Date(refresher!.state!.running!.startedAt!).getTime()).toBeGreaterThanOrEqual(fetcherDone);

    const secrets = new SecretsManagerClient({
      region: 'us-east-1',
      endpoint: awsEndpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await secrets.send(new PutSecretValueCommand({ SecretId: arn, SecretString: 'rotated-value' }));
    expect(await printed(ns, podName, 'app', /^then: /m, 90_000)).toContain('then: rotated-value');

    // The app exited 0: the kubelet stops the sidecar and the Job completes.
    await eventually(
      'the Job complete',
      async () => ((await batch.readNamespacedJob({ name: 'reader', namespace: ns })).status?.succeeded === 1 ? true : undefined),
      90_000,
    );
    const done = await core.readNamespacedPod({ name: podName, namespace: ns });
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    expect(done.status?.initContainerStatuses?.[1]?.state?.terminated).toBeDefined();
  });
});
