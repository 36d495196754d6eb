// Makes <dir>/fetcher.cache, the V8 code cache of <dir>/fetcher.cjs that <dir>/start.cjs runs it
// with: the bundle is compiled and run as start.cjs does, its warm-up sends the common fetch path's
// calls to an in-memory AWS (fetcher/warm-up.ts), and the cache made afterwards holds every
// function that ran. V8 accepts a cache only from its own build with the same flags, so the Node.js
// that runs the fetcher makes it: scripts/bundle.mjs with the Node.js running it, the Dockerfile
// with the runtime image's.
//   node scripts/code-cache.mjs <dir>
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const dir = resolve(process.argv[2] ?? 'dist');
const { load, CACHE_FILE } = createRequire(import.meta.url)(join(dir, 'start.cjs'));
const { script, bundle } = load(dir);
await bundle.warmUp();
writeFileSync(join(dir, CACHE_FILE), script.createCachedData());
