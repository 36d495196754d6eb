// The documentation's commands that need a cluster (`<!-- docs-check: cluster -->` blocks, see
// test/helpers/docs.ts) run as written against the real apiserver, with `aws-secret-injector`
// being this checkout's CLI and helm and kubectl the real ones. Whatever a document installs is
// removed afterwards: its helm releases uninstalled (with the guard they keep), the namespaces it made deleted.

import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { blocks, docFiles, readerShell } from '../helpers/docs.js';
import { describeE2E, e2e } from './context.js';

const documents = docFiles().filter((f) => blocks(f).some((b) => b.mark === 'cluster'));

describeE2E('documented commands against the real apiserver', () => {
  const scratch: string[] = [];
  afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('the documents have commands to run here', () => {
    expect(documents.length).toBeGreaterThan(0);
  });

  it.each(documents)('%s', async (file) => {
    const { cluster } = e2e();
    const { dir, env } = readerShell();
    scratch.push(dir);
    Object.assign(env, {
      KUBECONFIG: cluster.kubeconfigPath,
      HELM_CONFIG_HOME: join(cluster.dir, 'helm', 'config'),
      HELM_CACHE_HOME: join(cluster.dir, 'helm', 'cache'),
      HELM_DATA_HOME: join(cluster.dir, 'helm', 'data'),
    });
    const before = new Set((await cluster.kubectl(['get', 'namespaces', '-o', 'name'])).stdout.split('\n'));
    try {
      for (const b of blocks(file)) {
        if (b.mark === 'file') writeFileSync(join(dir, b.name!), b.text);
        if (b.mark !== 'cluster') continue;
        const r = spawnSync('bash', ['-euo', 'pipefail', '-c', b.text], { cwd: dir, env, encoding: 'utf8', timeout: 180_000 });
        expect(r.status, `${file}:${b.line} exited ${r.status}\n${b.text}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
      }
    } finally {
      const releases = JSON.parse((await cluster.helm(['list', '--all-namespaces', '-o', 'json'])).stdout) as Array<{ name: string; namespace: string }>;
      for (const r of releases.filter((r) => !before.has(`namespace/${r.namespace}`))) {
        await cluster.helm(['uninstall', r.name, '--namespace', r.namespace, '--wait', '--timeout', '60s'], { allowFailure: true });
        // The guard outlives an uninstall on purpose (helm's keep policy): left here, it would refuse
        // the annotated pods of every later file that runs without our webhook.
        await cluster.kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', '-l', `app.kubernetes.io/instance=${r.name}`, '--ignore-not-found'], { allowFailure: true });
      }
      const after = (await cluster.kubectl(['get', 'namespaces', '-o', 'name'])).stdout.split('\n').filter((n) => n && !before.has(n));
      if (after.length > 0) await cluster.kubectl(['delete', ...after, '--wait=false'], { allowFailure: true });
    }
  }, 600_000);
});
