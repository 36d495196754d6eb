// Where tests find the built bundles (cli.mjs, fetcher.mjs): $BUNDLE_OUT, default dist/. Tests
// that run a bundle build it when it is missing; `npm run test:all` always builds first, so a
// bundle older than the sources is only ever met by a bare `vitest run` after an edit.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './tools.js';

export function bundleDir(): string {
  return resolve(REPO_ROOT, process.env.BUNDLE_OUT ?? 'dist');
}

export function ensureBundles(dir: string = bundleDir()): string {
  if (existsSync(join(dir, 'cli.mjs')) && existsSync(join(dir, 'fetcher.mjs'))) return dir;
  const r = spawnSync(process.execPath, ['scripts/bundle.mjs'], {
    cwd: REPO_ROOT,
    env: { ...process.env, BUNDLE_OUT: dir },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the bundles into ${dir} failed:\n${r.stderr || r.stdout}`);
  return dir;
}
