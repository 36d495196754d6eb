// The bundles tests run are rebuilt whenever they were not built from the sources now checked out.

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBundles, sourcesDigest } from '../helpers/bundles.js';

const scratch = mkdtempSync(join(tmpdir(), 'asi-bundles-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('test bundles', () => {
  it('a stale bundle directory (built from other sources) is rebuilt, and an up-to-date one is left alone', () => {
    const dir = join(scratch, 'dist');
    mkdirSync(dir);
    // What an older checkout left: runnable, but not this code, and no record of its sources.
    writeFileSync(join(dir, 'cli.mjs'), 'console.log("stale");\n');
    writeFileSync(join(dir, 'fetcher.cjs'), 'console.log("stale");\n');
    writeFileSync(join(dir, 'start.cjs'), 'console.log("stale");\n');
    writeFileSync(join(dir, 'fetcher.cache'), 'stale');
    expect(ensureBundles(dir)).toBe(dir);
    const help = spawnSync(process.execPath, [join(dir, 'cli.mjs'), '--help'], { encoding: 'utf8' });
    expect(help.stdout).toContain('webhook');
    expect(help.stdout).not.toContain('stale');

    const built = statSync(join(dir, 'cli.mjs')).mtimeMs;
    ensureBundles(dir);
    expect(statSync(join(dir, 'cli.mjs')).mtimeMs).toBe(built);

    // Built from sources since edited: the recorded digest no longer matches.
    writeFileSync(join(dir, '.sources-sha256'), '0'.repeat(64));
    ensureBundles(dir);
    expect(readFileSync(join(dir, '.sources-sha256'), 'utf8')).toBe(sourcesDigest());
    expect(spawnSync(process.execPath, [join(dir, 'cli.mjs'), '--help'], { encoding: 'utf8' }).status).toBe(0);
  }, 120_000);

  it('the digest follows the program sources and build inputs, not the specs', () => {
    const root = join(scratch, 'checkout');
    for (const d of ['webhook', 'fetcher', 'certs', 'bin', 'scripts']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'webhook', 'mutate.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'webhook', 'mutate.spec.ts'), 'it("x");\n');
    cpSync(join(process.cwd(), 'scripts', 'bundle.mjs'), join(root, 'scripts', 'bundle.mjs'));
    const first = sourcesDigest(root);
    writeFileSync(join(root, 'webhook', 'mutate.spec.ts'), 'it("y");\n');
    expect(sourcesDigest(root)).toBe(first);
    writeFileSync(join(root, 'webhook', 'mutate.ts'), 'export const a = 2;\n');
    const edited = sourcesDigest(root);
    expect(edited).not.toBe(first);
    writeFileSync(join(root, 'scripts', 'bundle.mjs'), '// another build\n');
    expect(sourcesDigest(root)).not.toBe(edited);
  });
});
