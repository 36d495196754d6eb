// Where tests find the built bundles (cli.mjs; fetcher, the fetcher image's executable; fetcher.cjs,
// the bundle it is compiled from, with start.cjs and fetcher.cache, its Node.js entry and code
// cache): $BUNDLE_OUT, default dist/. Tests that run a bundle
// call ensureBundles, which rebuilds them unless they were built from exactly the sources now in
// the checkout (a digest of those sources is kept beside them) and this Node.js accepts the code
// cache (V8 takes only its own build's), so a bare `npx vitest run` after an edit never runs the
// previous code, nor the fetcher slower than its image does.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { REPO_ROOT } from './tools.js';

/** What the bundles are built from: the program's sources (not its specs) and the build's inputs. */
const SOURCE_DIRS = ['bin', 'webhook', 'fetcher', 'certs', 'store'];
const BUILD_FILES = ['scripts/bundle.mjs', 'scripts/bun.mjs', 'scripts/code-cache.mjs', 'package.json', 'package-lock.json', 'tsconfig.json'];
const STAMP = '.sources-sha256';
/** A lock older than this was left by a killed run. */
const STALE_LOCK_MS = 5 * 60_000;
const LOCK_WAIT_MS = 3 * 60_000;

export function bundleDir(): string {
  return resolve(REPO_ROOT, process.env.BUNDLE_OUT ?? 'dist');
}

function sourceFiles(root: string, dir: string): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(root, rel);
    return /\.(ts|mts|js|mjs|json)$/.test(e.name) && !/\.spec\.ts$/.test(e.name) ? [rel] : [];
  });
}

/** A digest of every file the bundles are built from, names and contents. */
export function sourcesDigest(root: string = REPO_ROOT): string {
  const hash = createHash('sha256');
  const files = [...SOURCE_DIRS.flatMap((d) => sourceFiles(root, d)), ...BUILD_FILES.filter((f) => existsSync(join(root, f)))].sort();
  for (const f of files) {
    hash.update(`${f}\0`);
    hash.update(readFileSync(join(root, f)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** The node arguments that start a bundle file (start.cjs or a script). */
export function startArgs(file: string): string[] {
  return [file];
}

/** The command that starts a fetcher entry: the executable itself (as the fetcher image does), or Node.js with a bundle file. */
export function startCommand(file: string): string[] {
  return /\.[cm]?js$/.test(file) ? [process.execPath, ...startArgs(file)] : [file];
}

/** start.cjs and the files it runs. */
export const START_FILES = ['start.cjs', 'fetcher.cjs', 'fetcher.cache'] as const;

/** Whether this Node.js accepts the fetcher's code cache (it takes only its own V8's). */
function cacheAccepted(dir: string): boolean {
  const check = `const { load } = require(${JSON.stringify(join(dir, 'start.cjs'))});
const cache = require('node:fs').readFileSync(${JSON.stringify(join(dir, 'fetcher.cache'))});
process.exit(load(${JSON.stringify(dir)}, cache).script.cachedDataRejected ? 1 : 0);`;
  return spawnSync(process.execPath, ['-e', check], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

function upToDate(dir: string, digest: string): boolean {
  const stamp = join(dir, STAMP);
  return (
    ['cli.mjs', 'fetcher', ...START_FILES].every((f) => existsSync(join(dir, f))) &&
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8') === digest &&
    cacheAccepted(dir)
  );
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `fn` holding a lock next to `dir`: test workers in parallel build one at a time. */
function withLock(dir: string, fn: () => void): void {
  const lock = `${dir}.lock`;
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > until) throw new Error(`another test run has held ${relative(REPO_ROOT, lock)} for over ${LOCK_WAIT_MS / 1000} s; remove it if no run is building`);
      else sleep(200);
    }
  }
  try {
    fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The bundle directory, rebuilt first when it is missing or was built from other sources. */
export function ensureBundles(dir: string = bundleDir()): string {
  const digest = sourcesDigest();
  if (upToDate(dir, digest)) return dir;
  withLock(dir, () => {
    if (upToDate(dir, digest)) return; // built by another worker while we waited
    // Built beside it and moved into place, so no one runs a half-written bundle.
    const staging = `${dir}.build-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    const r = spawnSync(process.execPath, ['scripts/bundle.mjs'], {
      cwd: REPO_ROOT,
      env: { ...process.env, BUNDLE_OUT: staging },
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      rmSync(staging, { recursive: true, force: true });
      throw new Error(`building the bundles into ${dir} failed:\n${r.stderr || r.stdout}`);
    }
    writeFileSync(join(staging, STAMP), digest);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  });
  return dir;
}
