// The images the node runs are the Dockerfile's two targets, as buildah built them in the set-up
// (a Dockerfile that does not build fails the set-up, so the whole suite), and the kubelet runs
// exactly those: the webhook pod admitting this suite's pods, and the fetcher it injects.

import { expect, it } from 'vitest';
import { WEBHOOK_NAMESPACE } from './webhook-pod.js';
import { describeNode, nodeSuite } from './context.js';

describeNode('images built from the Dockerfile', () => {
  it('the fetcher image holds only the fetcher (one executable) and starts it as uid 65532', () => {
    const { built } = nodeSuite();
    expect(built.appFiles.fetcher).toEqual(['fetcher']);
    expect(built.config.fetcher).toMatchObject({
      entrypoint: ['/app/fetcher'],
      cmd: ['fetch'],
      user: '65532:65532',
    });
  });

  it('the webhook image holds the CLI and its chunks and serves as uid 65532', () => {
    const { built } = nodeSuite();
    expect(built.appFiles.webhook).toContain('cli.mjs');
    expect(built.appFiles.webhook.filter((f) => f.startsWith('fetcher'))).toEqual([]);
    expect(built.appFiles.webhook.filter((f) => f !== 'cli.mjs').every((f) => f.startsWith('chunks/'))).toBe(true);
    expect(built.config.webhook).toMatchObject({ entrypoint: ['/nodejs/bin/node', '/app/cli.mjs'], cmd: ['webhook'], user: '65532:65532' });
  });

  it('the kubelet runs the webhook image, Ready, without restarts', async () => {
    const { core, built } = nodeSuite();
    const pod = await core.readNamespacedPod({ name: 'webhook', namespace: WEBHOOK_NAMESPACE });
    const status = pod.status!.containerStatuses![0]!;
    expect(status.imageID).toBe(built.config.webhook.id);
    expect(status.ready).toBe(true);
    expect(status.restartCount).toBe(0);
  });
});
