// Builds the two runnable bundles with esbuild:
//   dist/cli.mjs      the whole program; subcommands are split into lazily loaded chunks
//   dist/fetcher.mjs  the init container alone: no webhook, fastify, YAML or certificate code
// Both run with no node_modules beside them.
import { build } from 'esbuild';
import { chmod, rm, stat } from 'node:fs/promises';

// Bundled CommonJS dependencies still call require(); give ESM output one.
const banner = {
  js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
};
const common = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  banner,
  legalComments: 'none',
  logLevel: 'warning',
  sourcemap: false,
};

// BUNDLE_OUT builds elsewhere (tests read the same variable), so concurrent builds do not collide.
const out = process.env.BUNDLE_OUT ?? 'dist';
await rm(out, { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { cli: 'bin/aws-secret-injector.ts' },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});
await build({
  ...common,
  entryPoints: { fetcher: 'fetcher/bin.ts' },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  minify: true,
  // The AWS SDK clients ship ES modules under "module": tree-shaken, the bundle is ~40% smaller
  // than from their CommonJS "main".
  mainFields: ['module', 'main'],
});
// The package's `bin`: runnable as a command (its `#!/usr/bin/env node` comes from the entry file).
await chmod(`${out}/cli.mjs`, 0o755);
for (const f of [`${out}/cli.mjs`, `${out}/fetcher.mjs`]) {
  console.log(`${f} ${(await stat(f)).size} bytes`);
}
