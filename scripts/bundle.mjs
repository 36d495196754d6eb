// Builds the runnable bundles with esbuild:
//   dist/cli.mjs       the whole program; subcommands are split into lazily loaded chunks
//   dist/fetcher.cjs   the init container alone: no webhook, fastify, YAML or certificate code
//                      (and fetcher.cjs.map, its source map)
//   dist/fetcher       the fetcher image's program: fetcher.cjs compiled by Bun into one executable
//   dist/start.cjs     fetcher.cjs on Node.js: runs it with its code cache
//   dist/fetcher.cache the V8 code cache of fetcher.cjs (scripts/code-cache.mjs), made by the
//                      Node.js running this script (V8 accepts a cache only from its own build)
// All run with no node_modules beside them.
import { spawnSync } from 'node:child_process';
import { builtinModules, createRequire } from 'node:module';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { BUN_ARCH, bunPath, hostBunDir } from './bun.mjs';

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

// Built-ins the fetcher needs before its first AWS call; every other one (http, https, tls,
// child_process, …) becomes an object whose properties load the module on first use, so a run
// that fails before any call (a bad spec, no identity) never loads them.
const LOADED_AT_START = new Set([
  ...['_stream_duplex', '_stream_passthrough', '_stream_readable', '_stream_transform', '_stream_wrap', '_stream_writable'],
  ...['assert', 'assert/strict', 'buffer', 'console', 'constants', 'crypto', 'diagnostics_channel', 'dns', 'events', 'fs'],
  ...['fs/promises', 'net', 'os', 'path', 'path/posix', 'path/win32', 'process', 'punycode', 'querystring', 'stream'],
  ...['stream/promises', 'string_decoder', 'sys', 'timers', 'timers/promises', 'url', 'util', 'util/types', 'v8', 'zlib'],
]);

const require = createRequire(import.meta.url);

const deferBuiltins = {
  name: 'defer-builtins',
  setup(b) {
    const names = builtinModules.map((m) => m.replace(/^node:/, '')).filter((m) => !LOADED_AT_START.has(m) && !m.startsWith('_'));
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
// CommonJS: a script run directly skips the ES module loader's work for every built-in it imports,
// and Bun compiles a script's bytecode.
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
  plugins: [deferBuiltins],
  // For reading CPU profiles of the minified bundle (bench/fetcher.mjs BENCH_PROFILE); no image holds it.
  sourcemap: 'external',
});

await build({
  ...common,
  format: 'cjs',
  entryPoints: { start: 'fetcher/start.ts' },
  outdir: out,
  outExtension: { '.js': '.cjs' },
});

// The code cache, made in a clean environment so that the build machine's settings (AWS_*,
// proxies) play no part in the warm-up.
const cache = spawnSync(process.execPath, ['scripts/code-cache.mjs', out], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
if (cache.status !== 0) {
  console.error(`making the fetcher's code cache failed (exit ${cache.status}):\n${cache.stderr}`);
  process.exit(1);
}
// The fetcher image's program: fetcher.cjs compiled by Bun into one executable, with its bytecode.
// Bun comes from the npm registry (scripts/bun.mjs); FETCHER_ARCH (amd64 or arm64, as a container build's TARGETARCH) compiles for another: the
// runtime for it is fetched from the registry at the same version.
const targetArch = process.env.FETCHER_ARCH || process.arch;
if (BUN_ARCH[targetArch] === undefined) {
  console.error(`FETCHER_ARCH=${targetArch}: the fetcher compiles for amd64 or arm64`);
  process.exit(1);
}
const bun = bunPath();
const compile = ['build', '--compile', '--bytecode', resolve(out, 'fetcher.cjs'), '--outfile', resolve(out, 'fetcher')];
const runtimes = await mkdtemp(join(tmpdir(), 'fetcher-runtime-'));
try {
  if (BUN_ARCH[targetArch] !== BUN_ARCH[process.arch]) {
    const pkg = `@oven/bun-linux-${BUN_ARCH[targetArch]}@${JSON.parse(await readFile(join(hostBunDir(), 'package.json'), 'utf8')).version}`;
    const packed = spawnSync('npm', ['pack', '--silent', pkg], { cwd: runtimes, encoding: 'utf8' });
    const tar = packed.status === 0 && spawnSync('tar', ['-xzf', packed.stdout.trim()], { cwd: runtimes, encoding: 'utf8' });
    if (!tar || tar.status !== 0) throw new Error(`fetching ${pkg} from the npm registry failed:\n${packed.stderr}${tar ? tar.stderr : ''}`);
    compile.push(`--target=bun-linux-${targetArch === 'amd64' ? 'x64' : targetArch}`, `--compile-executable-path=${join(runtimes, 'package', 'bin', 'bun')}`);
  }
  const compiled = spawnSync(bun, compile, { encoding: 'utf8' });
  if (compiled.status !== 0) throw new Error(`compiling the fetcher failed (exit ${compiled.status ?? compiled.error}):\n${compiled.stderr}${compiled.stdout}`);
} finally {
  await rm(runtimes, { recursive: true, force: true });
}
// The package's `bin`: runnable as a command (its `#!/usr/bin/env node` comes from the entry file).
await chmod(`${out}/cli.mjs`, 0o755);
for (const f of [`${out}/cli.mjs`, `${out}/fetcher.cjs`, `${out}/start.cjs`, `${out}/fetcher.cache`, `${out}/fetcher`]) {
  console.log(`${f} ${(await stat(f)).size} bytes`);
}
