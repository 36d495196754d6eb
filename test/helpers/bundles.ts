// Where tests find the built bundles (cli.mjs, fetcher.cjs and its snapshot fetcher.blob):
// $BUNDLE_OUT, default dist/. Tests that run a bundle build it when it is missing, or when the
// snapshot was built by another Node.js (it starts only on the binary that built it); `npm run
// test:all` always builds first, so a bundle older than the sources is only ever met by a bare
// `vitest run` after an edit.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './tools.js';

export function bundleDir(): string {
  return resolve(REPO_ROOT, process.env.BUNDLE_OUT ?? 'dist');
}

/** The node arguments that start a bundle file: a snapshot (as the fetcher image does) or a script. */
export function startArgs(file: string): string[] {
  return file.endsWith('.blob') ? ['--snapshot-blob', file] : [file];
}

/** Whether this Node.js starts the snapshot (`fetch --help` exits 0 without touching anything). */
function snapshotRuns(blob: string): boolean {
  return spawnSync(process.execPath, [...startArgs(blob), 'fetch', '--help'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

export function ensureBundles(dir: string = bundleDir()): string {
  const blob = join(dir, 'fetcher.blob');
  if (existsSync(join(dir, 'cli.mjs')) && existsSync(join(dir, 'fetcher.cjs')) && existsSync(blob) && snapshotRuns(blob)) return dir;
  const r = spawnSync(process.execPath, ['scripts/bundle.mjs'], {
    cwd: REPO_ROOT,
    env: { ...process.env, BUNDLE_OUT: dir },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the bundles into ${dir} failed:\n${r.stderr || r.stdout}`);
  return dir;
}
