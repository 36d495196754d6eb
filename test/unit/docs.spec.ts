// The documentation cannot rot silently: every relative link and anchor resolves, and every
// command block marked `<!-- docs-check: run -->` runs, in order, as a reader would type it, with
// `aws-secret-injector` being this checkout's CLI and helm the real one (test/helpers/docs.ts).
// Blocks that need a cluster run in the e2e suite (test/e2e/docs.test.ts).

import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blocks, brokenLinks, docFiles, readerShell } from '../helpers/docs.js';
import { findTool, missingToolMessage } from '../helpers/tools.js';

const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe.each(docFiles())('%s', (file) => {
  it('has no broken relative link or anchor', () => {
    expect(brokenLinks(file)).toEqual([]);
  });

  const runnable = blocks(file).filter((b) => b.mark === 'run' || b.mark === 'file');
  const helm = runnable.some((b) => b.mark === 'run' && /\bhelm\b/.test(b.text)) ? findTool('helm') : 'not needed';
  it.skipIf(runnable.length === 0 || !helm)(`runs its marked commands${helm ? '' : ` (skipped: ${missingToolMessage('helm')})`}`, () => {
    const { dir, env } = readerShell();
    for (const b of runnable) {
      if (b.mark === 'file') {
        writeFileSync(join(dir, b.name!), b.text);
        continue;
      }
      const r = spawnSync('bash', ['-euo', 'pipefail', '-c', b.text], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${file}:${b.line} exited ${r.status}\n${b.text}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
    }
  }, 300_000);
});
