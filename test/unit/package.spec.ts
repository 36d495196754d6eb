// The package as a user installs it: `npm pack`, then a global install of the tarball into a
// scratch prefix, then its `bin` run as a command (shebang, executable bit, no node_modules
// needed: the bundles carry everything, so the package declares no runtime dependencies).

import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBundles } from '../helpers/bundles.js';
import { REPO_ROOT } from '../helpers/tools.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies?: object };
let work = '';
let command = '';
let packed: string[] = [];
// The machine's npm, run by the Node the tests run on; the installed command finds that Node first.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false' };

function npm(args: string[], cwd: string) {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'asi-package-'));
  // The package directory as npm pack sees a built checkout: package.json and dist/.
  const dir = join(work, 'pkg');
  cpSync(join(REPO_ROOT, 'package.json'), join(dir, 'package.json'));
  cpSync(join(REPO_ROOT, 'README.md'), join(dir, 'README.md'));
  cpSync(ensureBundles(), join(dir, 'dist'), { recursive: true });
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], dir)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((f) => f.path).sort();
  npm(['install', '--global', '--prefix', join(work, 'prefix'), '--ignore-scripts', '--offline', '--no-audit', '--no-fund', join(work, info!.filename)], work);
  command = join(work, 'prefix', 'bin', pkg.name);
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds the CLI bundle and its chunks, and needs nothing else at run time', () => {
    expect(packed).toContain('dist/cli.mjs');
    expect(packed.some((p) => p.startsWith('dist/chunks/'))).toBe(true);
    expect(packed.filter((p) => !/^(dist\/cli\.mjs|dist\/chunks\/[^/]+\.mjs|package\.json|README\.md)$/.test(p))).toEqual([]);
    expect(pkg.dependencies ?? {}).toEqual({});
  });

  it('installs a command that prints its version', () => {
    const r = spawnSync(command, ['--version'], { env, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${pkg.version}\n`);
    expect(r.status).toBe(0);
  });

  it('runs inject -f on a manifest', () => {
    const manifest = join(work, 'pod.yaml');
    writeFileSync(
      manifest,
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: web',
        '  annotations:',
        '    secrets.k8s.aws/secret-arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf',
        'spec:',
        '  containers: [{name: web, image: busybox}]',
        '',
      ].join('\n'),
    );
    const r = spawnSync(command, ['inject', '-f', manifest], { env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('secrets.k8s.aws/status: injected');
    expect(r.stdout).toMatch(/initContainers:\n\s+- name: /);
  });
});
