// The documentation cannot rot silently: every relative link and anchor resolves, and every
// command block marked `<!-- docs-check: run -->` runs, in order, as a reader would type it, with
// `aws-secret-injector` being this checkout's CLI and helm the real one (test/helpers/docs.ts).
// Blocks that need a cluster run in the e2e suite (test/e2e/docs.test.ts).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blocks, brokenLinks, docFiles, readerShell } from '../helpers/docs.js';
import { findTool, missingToolMessage, REPO_ROOT } from '../helpers/tools.js';

const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe.each(docFiles())('%s', (file) => {
  it('has no broken relative link or anchor', () => {
    expect(brokenLinks(file)).toEqual([]);
  });

  // Only documents with marked commands get this test: none is skipped for want of commands.
  const runnable = blocks(file).filter((b) => b.mark === 'run' || b.mark === 'file');
  if (!runnable.some((b) => b.mark === 'run')) return;
  const helm = runnable.some((b) => b.mark === 'run' && /\bhelm\b/.test(b.text)) ? findTool('helm') : 'not needed';
  it.skipIf(!helm)(`runs its marked commands${helm ? '' : ` (skipped: ${missingToolMessage('helm')})`}`, () => {
    const { dir, env } = readerShell();
    scratch.push(dir);
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

describe('one copy of each fact', () => {
  it('no line of 50 characters or more stands in two documents (a second copy links to the first)', () => {
    const where = new Map<string, string[]>();
    for (const file of docFiles()) {
      for (const raw of readFileSync(join(REPO_ROOT, file), 'utf8').split('\n')) {
        const line = raw.trim().replace(/\s+/g, ' ');
        if (line.length < 50 || /^\|?[\s|:-]+\|?$/.test(line)) continue;
        const files = where.get(line) ?? [];
        if (!files.includes(file)) where.set(line, [...files, file]);
      }
    }
    expect([...where].filter(([, files]) => files.length > 1).map(([line, files]) => `${files.join(', ')}: ${line}`)).toEqual([]);
  });

  it('the README stays a front door of at most 200 lines', () => {
    expect(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(200);
  });
});

describe('README quick start', () => {
  it('names exactly the two set-up commands, npm start and npm run test:all', () => {
    const quick = blocks('README.md').filter((b) => b.lang === 'sh').slice(0, 2).map((b) => b.text.split('#')[0]!.trim());
    expect(quick).toEqual(['npm start', 'npm run test:all']);
  });

  it('`npm start` builds and serves the webhook over HTTPS on Node.js 24', async () => {
    const out = mkdtempSync(join(tmpdir(), 'asi-start-'));
    scratch.push(out);
    const child = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      // The bundles go to a scratch directory (the other specs read dist/), on a free port.
      env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, BUNDLE_OUT: out, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let log = '';
    child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    try {
      const end = Date.now() + 120_000;
      let port: number | undefined;
      while (port === undefined && Date.now() < end && child.exitCode === null) {
        port = Number(/"port":(\d+),"url":"https:[^"]+","msg":"listening"/.exec(log)?.[1]) || undefined;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(port, log).toBeDefined();
      const health = await new Promise<number | undefined>((resolve, reject) =>
        get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false }, (res) => resolve(res.statusCode)).on('error', reject),
      );
      expect(health).toBe(200);
      expect(readFileSync(join(out, 'cli.mjs'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node/);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  }, 180_000);
});
