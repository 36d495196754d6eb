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

// The documents that report the benchmarks' figures: performance.md (bench:webhook, bench:fetcher,
// bench:refresh, bench:hostile) and scale.md (bench:fleet).
const BENCHMARK_REPORTS = ['docs/performance.md', 'docs/scale.md'];
// A time, a size or a ratio, as the benchmarks report them.
const FIGURE = /\b\d[\d.,]*\s?(?:µs|ms|KB|MB|GB|KiB|MiB|GiB)\b|\b\d[\d.]*×/g;
// Figures in the documents that no benchmark measures, and why they are there.
const NOT_MEASURED: Array<{ figure: string; file?: string; why: string }> = [
  { figure: '256 KiB', why: "the apiserver's limit on a pod's annotations" },
  { figure: '3 MiB', why: "the apiserver's limit on a request body" },
  { figure: '7 MiB', why: "the webhook's body limit (BODY_LIMIT_BYTES), two objects and the envelope" },
  { figure: '64 KiB', why: "Secrets Manager's limit on a secret value" },
  { figure: '1 MiB', file: 'docs/write-through.md', why: "Kubernetes' limit on a Secret" },
  { figure: '7.75 MiB', file: 'docs/design.md', why: "the largest answer AWS gives, computed from its maxima" },
  { figure: '4 KiB', file: 'docs/design.md', why: 'a memory page' },
  { figure: '1 KiB', file: 'docs/design.md', why: "an inode's size" },
  { figure: '60 MiB', file: 'docs/design.md', why: "the fetcher-memory integration test's worst case, behind the chart's 80Mi (a test, not a benchmark)" },
  { figure: '16 KiB', file: 'docs/annotations.md', why: "the webhook's limit on a template's size" },
  { figure: '100 ms', file: 'charts/aws-secret-injector/README.md', why: "the CFS period the kubelet sets" },
  { figure: '2 MiB', file: 'docs/install.md', why: "the base image publisher's own figure" },
  { figure: '124 MiB', file: 'docs/install.md', why: "the base image publisher's own figure" },
  { figure: '20 MB', file: 'docs/development.md', why: 'the size of the file a node test writes' },
];

describe('the chart README, packaged without the repository', () => {
  it("links to the repository's documents by absolute URLs only (relative links stay inside the chart)", () => {
    const text = readFileSync(join(REPO_ROOT, 'charts/aws-secret-injector/README.md'), 'utf8');
    const leaving = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/i.test(l) && (l.startsWith('../') || l.startsWith('/')));
    expect(leaving).toEqual([]);
  });
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

  it('figures measured by the benchmarks stand only in the documents that report them (elsewhere a link to it)', () => {
    const quoted: string[] = [];
    for (const file of docFiles().filter((f) => !BENCHMARK_REPORTS.includes(f))) {
      readFileSync(join(REPO_ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const m of line.matchAll(FIGURE)) {
            const figure = m[0].replace(/\s+/g, ' ');
            if (!NOT_MEASURED.some((n) => n.figure === figure && (n.file === undefined || n.file === file))) quoted.push(`${file}:${i + 1}: ${figure}`);
          }
        });
    }
    expect(
      quoted,
      `a time, size or ratio measured by a benchmark goes only into the document that reports it (${BENCHMARK_REPORTS.join(', ')}), and other documents link there; ` +
        'a limit or setting that nobody measures (an apiserver limit, a CFS period) goes into NOT_MEASURED with its reason',
    ).toEqual([]);
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
