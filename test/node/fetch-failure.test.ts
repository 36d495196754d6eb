// A failed fetch on a real node: the pod names a secret that does not exist. The kubelet runs the
// fetcher, which exits non-zero; the pod stays in Init (Error, then CrashLoopBackOff as the kubelet
// retries), the app container never starts, and the fetcher's report is the init container's
// termination message, which `kubectl describe pod` shows.

import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { eventually } from '../helpers/cluster.js';
import { createSecret, describeNode, nodeSuite, podWhen, useAwsFront, useNamespace, withIrsa } from './context.js';

const MISSING = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf';
const PRESENT_VALUE = 'value-that-must-not-be-written';

/** The fetcher's last termination, current or previous (the kubelet restarts it). */
function lastTermination(s: V1ContainerStatus | undefined) {
  return s?.state?.terminated ?? s?.lastState?.terminated;
}

describeNode('a failed fetch on a real node', () => {
  const namespace = useNamespace('failed');
  useAwsFront();

  it('the pod stays in Init, the app never starts, and the termination message is the fetcher\'s report', async () => {
    const { core, cluster, images } = nodeSuite();
    const ns = namespace();
    const present = await createSecret(`${ns}/present`, PRESENT_VALUE);
    const pod: V1Pod = withIrsa({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', annotations: { 'secrets.k8s.aws/secret.present': present, 'secrets.k8s.aws/secret.missing': MISSING } },
      spec: {
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'app', image: images.busybox, imagePullPolicy: 'Never', command: ['sh', '-c', 'echo started; exec sleep 3600'] }],
      },
    });
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const failed = await podWhen(ns, 'app', 'the fetcher terminated with an error', (p) => {
      const t = lastTermination(p.status?.initContainerStatuses?.[0]);
      return t !== undefined && t.exitCode !== 0;
    });
    const termination = lastTermination(failed.status!.initContainerStatuses![0])!;
    expect(termination.reason).toBe('Error');
    expect(termination.message).toContain(MISSING);
    expect(termination.message).toContain('ResourceNotFoundException');
    expect(termination.message).not.toContain(PRESENT_VALUE);
    // The app container was never started.
    const app = failed.status!.containerStatuses![0]!;
    expect(app.state?.waiting?.reason).toBe('PodInitializing');
    expect(app.restartCount).toBe(0);
    expect(app.lastState?.terminated).toBeUndefined();

    // kubectl's STATUS column (between two of the kubelet's retries it reads Init:0/1).
    await eventually('kubectl shows the pod failing in Init', async () => {
      const get = await cluster.kubectl(['get', 'pod', 'app', '-n', ns, '--no-headers']);
      return /\bInit:(Error|CrashLoopBackOff)\b/.test(get.stdout) ? true : undefined;
    });
    const describe = (await cluster.kubectl(['describe', 'pod', 'app', '-n', ns])).stdout;
    expect(describe).toContain(MISSING);
    expect(describe).toContain('ResourceNotFoundException');
    expect(describe).not.toContain(PRESENT_VALUE);
    // A later look: still in Init, the app still not started.
    const later = await core.readNamespacedPod({ name: 'app', namespace: ns });
    expect(later.status?.phase).toBe('Pending');
    expect(later.status?.containerStatuses?.[0]?.state?.running).toBeUndefined();
  });
});
