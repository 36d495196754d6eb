// The fetcher on Node.js (`node start.cjs fetch …`, `… refresh …`): runs fetcher.cjs, the
// bundle beside it, compiled with fetcher.cache, the V8 code cache scripts/code-cache.mjs made of
// it after a warm-up of the common fetch path (fetcher/warm-up.ts). V8 then neither parses nor
// compiles what that path runs, and nothing but the bundle's own objects is made: the process
// pays neither a startup snapshot's copy of the whole heap (which Node.js keeps in memory for
// the process's life) nor the compilation of every function on the path.
// A cache is accepted only by the V8 build and flags that made it; one V8 rejects costs a read,
// and the bundle then compiles as a plain script would. `refresh` runs without the cache: it is
// made for the fetch path. The fetcher image ships neither: it runs the bundle compiled into one
// executable (scripts/bundle.mjs); this entry is the bundle's way to run on Node.js.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

/** What fetcher.cjs (fetcher/bin.ts) exports. */
export interface FetcherBundle {
  start(argv: string[]): void;
  warmUp(): Promise<void>;
}

export const BUNDLE_FILE = 'fetcher.cjs';
export const CACHE_FILE = 'fetcher.cache';

/** Compiles and runs the bundle in `dir` (with `cachedData` if given), as Node.js runs a CommonJS module. */
export function load(dir: string, cachedData?: Buffer): { script: Script; bundle: FetcherBundle } {
  const filename = join(dir, BUNDLE_FILE);
  const source = readFileSync(filename, 'utf8');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename,
    ...(cachedData !== undefined && { cachedData }),
  });
  const module = { exports: {} as FetcherBundle };
  (script.runInThisContext() as (...a: unknown[]) => void)(module.exports, createRequire(filename), module, filename, dir);
  return { script, bundle: module.exports };
}

function cache(dir: string): Buffer | undefined {
  try {
    return readFileSync(join(dir, CACHE_FILE));
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  load(__dirname, argv[0] === 'refresh' ? undefined : cache(__dirname)).bundle.start(argv);
}
