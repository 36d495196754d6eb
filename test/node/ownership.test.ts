// Who can read the files on a real node. The fetcher runs as 65532 and writes 0444 by default:
// an app as root and an app as uid 1000 both read them. With `mode: 0440` and a pod fsGroup the
// files take the fsGroup's group: a member reads them, a process of another uid without that
// group (root dropping to `nobody` inside the pod) is refused.

import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { createSecret, describeNode, nodeSuite, podWhen, printed, useAwsFront, useNamespace, withIrsa } from './context.js';

const VALUE = 'shared by uids';

function app(name: string, uid: number, script: string): V1Container {
  return {
    name,
    image: nodeSuite().images.busybox,
    imagePullPolicy: 'Never',
    command: ['sh', '-c', `${script}; echo done; exec sleep 3600`],
    securityContext: { runAsUser: uid },
  };
}

function pod(name: string, annotations: Record<string, string>, containers: V1Container[], fsGroup?: number): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      terminationGracePeriodSeconds: 0,
      ...(fsGroup !== undefined ? { securityContext: { fsGroup } } : {}),
      containers,
    },
  };
}

const allRunning = (pod: V1Pod) => (pod.status?.containerStatuses ?? []).length > 0 && pod.status!.containerStatuses!.every((c) => c.state?.running);

describeNode('file ownership on a real node', () => {
  const namespace = useNamespace('owner');
  useAwsFront();
  let arn = '';

  it('an app as root and an app as uid 1000 read the default 0444 files', async () => {
    const { core } = nodeSuite();
    const ns = namespace();
    arn = await createSecret(`owner-${ns}`, VALUE);
    const read = 'echo "id: $(id -u)"; echo "link: $(readlink /tmp/secret)"; echo "stat: $(stat -L -c "%a %u %g" /tmp/secret)"; echo "read: $(cat /tmp/secret)"';
    await core.createNamespacedPod({
      namespace: ns,
      body: withIrsa(pod('default-mode', { 'secrets.k8s.aws/secret-arn': arn }, [app('root', 0, read), app('user', 1000, read)])),
    });
    await podWhen(ns, 'default-mode', 'both apps running', allRunning);
    const root = await printed(ns, 'default-mode', 'root', /^done$/m);
    const user = await printed(ns, 'default-mode', 'user', /^done$/m);
    // The file is reached through the link to the current version (..data).
    expect(root).toContain('id: 0\nlink: ..data/secret\nstat: 444 65532 65532\nread: shared by uids');
    expect(user).toContain('id: 1000\nlink: ..data/secret\nstat: 444 65532 65532\nread: shared by uids');
  });

  it('with fsGroup and mode 0440, a member reads the file and another uid without the group cannot', async () => {
    const { core } = nodeSuite();
    const ns = namespace();
    await core.createNamespacedPod({
      namespace: ns,
      body: withIrsa(
        pod(
          'fsgroup',
          { 'secrets.k8s.aws/secret-arn': arn, 'secrets.k8s.aws/mode': '0440' },
          [
            app('member', 1000, 'echo "groups: $(id -G)"; echo "stat: $(stat -L -c "%a %u %g" /tmp/secret)"; echo "read: $(cat /tmp/secret)"'),
            // busybox su as root: uid and groups of `nobody` only (initgroups), no fsGroup.
            app('outsider', 0, `su -s /bin/sh nobody -c 'echo "groups: $(id -G)"; cat /tmp/secret || echo "refused: $?"' 2>&1`),
          ],
          3000,
        ),
      ),
    });
    await podWhen(ns, 'fsgroup', 'both apps running', allRunning);
    const member = await printed(ns, 'fsgroup', 'member', /^done$/m);
    expect(member).toMatch(/^groups: .*\b3000\b/m);
    expect(member).toContain('stat: 440 65532 3000\nread: shared by uids');
    const outsider = await printed(ns, 'fsgroup', 'outsider', /^done$/m);
    expect(outsider).toContain('groups: 65534\n');
    expect(outsider).toMatch(/Permission denied/);
    expect(outsider).toContain('refused: 1');
    expect(outsider).not.toContain(VALUE);
  });

  it('with fsGroup and mode 0440, files in sub-directories (a file path, explode into a directory) take the fsGroup too: the app reads them', async () => {
    const { core } = nodeSuite();
    const ns = namespace();
    const json = await createSecret(`owner-json-${ns}`, JSON.stringify({ user: 'app-user', password: 'app-password' }));
    const entries = [
      { ref: arn, file: 'db/deeper/password', mode: '0440' },
      { ref: json, file: 'conf', explode: true, mode: '0440' },
    ];
    const show = 'for f in /tmp/db/deeper/password /tmp/conf/user /tmp/conf/password; do echo "stat $f: $(stat -L -c "%a %u %g" $f)"; echo "read $f: $(cat $f)"; done; echo "dirs: $(stat -L -c "%a %g" /tmp/db /tmp/db/deeper /tmp/conf | tr "\\n" " ")"';
    await core.createNamespacedPod({
      namespace: ns,
      body: withIrsa(pod('fsgroup-dirs', { 'secrets.k8s.aws/secrets': JSON.stringify(entries) }, [app('member', 1000, show)], 3000)),
    });
    await podWhen(ns, 'fsgroup-dirs', 'the app running', allRunning);
    const member = await printed(ns, 'fsgroup-dirs', 'member', /^done$/m);
    expect(member).toContain('stat /tmp/db/deeper/password: 440 65532 3000\nread /tmp/db/deeper/password: shared by uids');
    expect(member).toContain('stat /tmp/conf/user: 440 65532 3000\nread /tmp/conf/user: app-user');
    expect(member).toContain('stat /tmp/conf/password: 440 65532 3000\nread /tmp/conf/password: app-password');
    expect(member).toContain('dirs: 2755 3000 2755 3000 2755 3000');
  });
});
