// Builds the runnable bundles with esbuild:
//   dist/cli.mjs       the whole program; subcommands are split into lazily loaded chunks
//   dist/fetcher.cjs   the init container alone: no webhook, fastify, YAML or certificate code
//                      (and fetcher.cjs.map, its source map)
//   dist/fetcher.blob  a V8 startup snapshot of fetcher.cjs, built by the Node.js running this
//                      script (a snapshot runs only on the exact binary that built it; the image
//                      builds its own with its runtime's node, see the Dockerfile)
// All run with no node_modules beside them.
import { spawnSync } from 'node:child_process';
import { builtinModules, createRequire } from 'node:module';
import { chmod, rm, stat } from 'node:fs/promises';
import { build } from 'esbuild';

// Bundled CommonJS dependencies still call require(); give ESM output one.
const banner = {
  js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
};
const common = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  legalComments: 'none',
  logLevel: 'warning',
  sourcemap: false,
};

// The built-in modules Node.js lets a snapshot load (lib/internal/main/mksnapshot.js); the others
// (http, https, tls, child_process, …) hold native state a snapshot cannot carry.
const SNAPSHOT_SAFE = new Set(process.env.X_DEFER_ALL ? [] : [
  ...['_stream_duplex', '_stream_passthrough', '_stream_readable', '_stream_transform', '_stream_wrap', '_stream_writable'],
  ...['assert', 'assert/strict', 'buffer', 'console', 'constants', 'crypto', 'diagnostics_channel', 'dns', 'events', 'fs'],
  ...['fs/promises', 'net', 'os', 'path', 'path/posix', 'path/win32', 'process', 'punycode', 'querystring', 'stream'],
  ...['stream/promises', 'string_decoder', 'sys', 'timers', 'timers/promises', 'url', 'util', 'util/types', 'v8', 'zlib'],
]);

/**
 * Every other built-in the fetcher imports becomes an object whose properties load the module on
 * first use, so building the snapshot never loads it while the program, once started, uses it as
 * usual. Code that uses such a module while loading (`class X extends https.Agent` at the top of a
 * module) makes the snapshot build fail, naming the module.
 */
const deferUnsafeBuiltins = {
  name: 'defer-snapshot-unsafe-builtins',
  setup(b) {
    const require = createRequire(import.meta.url);
    const names = builtinModules.map((m) => m.replace(/^node:/, '')).filter((m) => !SNAPSHOT_SAFE.has(m) && !m.startsWith('_'));
    const filter = new RegExp(`^(node:)?(${names.map((n) => n.replace(/[/]/g, '\\/')).join('|')})$`);
    b.onResolve({ filter }, (a) =>
      a.namespace === 'deferred' ? { path: a.path, external: true } : { path: a.path.replace(/^node:/, ''), namespace: 'deferred' },
    );
    b.onLoad({ filter: /.*/, namespace: 'deferred' }, (a) => {
      const keys = Object.keys(require(`node:${a.path}`));
      return {
        loader: 'js',
        contents: `let m;
const load = () => (m ??= require(${JSON.stringify(`node:${a.path}`)}));
for (const k of ${JSON.stringify(keys)}) Object.defineProperty(exports, k, { enumerable: true, get: () => load()[k] });`,
      };
    });
  },
};

// BUNDLE_OUT builds elsewhere (tests read the same variable), so concurrent builds do not collide.
const out = process.env.BUNDLE_OUT ?? 'dist';
await rm(out, { recursive: true, force: true });
await build({
  ...common,
  format: 'esm',
  banner,
  entryPoints: { cli: 'bin/aws-secret-injector.ts' },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});
// CommonJS: a snapshot is built from a script, not an ES module, and a script run directly also
// skips the ES module loader's work for every built-in it imports.
await build({
  ...common,
  format: 'cjs',
  entryPoints: { fetcher: 'fetcher/bin.ts' },
  outdir: out,
  outExtension: { '.js': '.cjs' },
  minify: true,
  // The AWS SDK clients ship ES modules under "module": tree-shaken, the bundle is ~40% smaller
  // than from their CommonJS "main".
  mainFields: ['module', 'main'],
  plugins: [deferUnsafeBuiltins],
  // For reading CPU profiles of the minified bundle (bench/fetcher.mjs BENCH_PROFILE); no image holds it.
  sourcemap: 'external',
});

// The snapshot: Node.js runs fetcher.cjs (its warm-up included) and writes the heap it ends with.
// A clean environment keeps the build machine's settings (AWS_*, proxies) out of it.
const snapshot = process.env.X_DEFER_ALL ? {status:0,stderr:''} : spawnSync(process.execPath, ['--snapshot-blob', `${out}/fetcher.blob`, '--build-snapshot', `${out}/fetcher.cjs`], {
  env: { PATH: process.env.PATH ?? '' },
  encoding: 'utf8',
});
const unsafe = /not yet fully verified whether built-in module "([^"]+)"/.exec(snapshot.stderr ?? '');
if (snapshot.status !== 0 || unsafe) {
  console.error(unsafe ? `the fetcher loads ${unsafe[1]} while it starts, which a snapshot cannot hold; load it on first use` : '');
  console.error(`building the fetcher's startup snapshot failed (exit ${snapshot.status}):\n${snapshot.stderr}`);
  process.exit(1);
}
// The package's `bin`: runnable as a command (its `#!/usr/bin/env node` comes from the entry file).
await chmod(`${out}/cli.mjs`, 0o755);
for (const f of []) {
  console.log(`${f} ${(await stat(f)).size} bytes`);
}
