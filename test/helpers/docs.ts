// Reads the project's markdown so tests can hold it to the code: relative links and their
// anchors, and the fenced blocks marked to run. A block runs when the line before it is
//   <!-- docs-check: run -->         run here by the unit suite (no cluster, no AWS)
//   <!-- docs-check: cluster -->     run by the e2e suite against its real apiserver
//   <!-- docs-check: file NAME -->   not run: its text is written to NAME for the blocks after it
// The comments do not render, so readers see plain commands. The blocks of one document run in
// order in one scratch directory, as a reader would type them.

import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { ensureBundles } from './bundles.js';
import { BIN_DIR, REPO_ROOT } from './tools.js';

export interface Block {
  file: string;
  line: number;
  mark: 'run' | 'cluster' | 'file' | undefined;
  /** The file name of a `file` block. */
  name?: string;
  lang: string;
  text: string;
}

/** The project's user documentation: the README, the policies beside it, docs/ and the chart's README. */
export function docFiles(): string[] {
  const docs = existsSync(join(REPO_ROOT, 'docs'))
    ? readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)
    : [];
  return ['README.md', 'CHANGELOG.md', 'CONTRIBUTING.md', 'SECURITY.md', ...docs.sort(), 'charts/aws-secret-injector/README.md'];
}

export function blocks(file: string): Block[] {
  const lines = readFileSync(join(REPO_ROOT, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(\S*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[2]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence); j++) body.push(lines[j]!.slice(open[1]!.length));
    const marker = /^<!-- docs-check: (run|cluster|file) ?(\S*) -->$/.exec((lines[i - 1] ?? '').trim());
    out.push({
      file,
      line: i + 1,
      mark: marker?.[1] as Block['mark'],
      ...(marker?.[1] === 'file' ? { name: marker[2] } : {}),
      lang: open[3]!,
      text: `${body.join('\n')}\n`,
    });
    i = j;
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const h = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Where a tagged version's files are read on the web. */
export const REPO_URL = 'https://github.com/aws-secret-injector/aws-secret-injector';
const REPO_BLOB = new RegExp(`^${REPO_URL.replace(/[.]/g, '\\.')}/blob/([^/]+)/(.+)$`);
const packageVersion = (): string => (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * Every relative link (and anchor) of `file` that does not resolve, as "target: why"; links to
 * this repository's files by URL are checked the same way, and must name this version's tag.
 */
export function brokenLinks(file: string): string[] {
  const abs = join(REPO_ROOT, file);
  const text = readFileSync(abs, 'utf8').replace(/^\s*```[\s\S]*?^\s*```/gm, '');
  const problems: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    let link = m[1]!;
    let base = dirname(abs);
    // A link into this repository by URL (the packaged chart's README) must name this version's tag.
    const blob = REPO_BLOB.exec(link);
    if (blob) {
      if (blob[1] !== `v${packageVersion()}`) problems.push(`${link}: links to ${blob[1]}, not this version's tag v${packageVersion()}`);
      [link, base] = [blob[2]!, REPO_ROOT];
    } else if (/^[a-z]+:/i.test(link)) continue;
    const [path = '', anchor] = link.split('#', 2) as [string, string?];
    const target = path === '' ? abs : resolve(base, path);
    if (!existsSync(target)) {
      problems.push(`${link}: ${relative(REPO_ROOT, target)} does not exist`);
      continue;
    }
    if (anchor !== undefined && target.endsWith('.md') && !anchors(target).has(anchor)) {
      problems.push(`${link}: no heading with anchor #${anchor} in ${relative(REPO_ROOT, target)}`);
    }
  }
  return problems;
}

/**
 * A scratch directory as a reader's: the chart where the docs' commands name it
 * (./charts/aws-secret-injector), this checkout's CLI as `aws-secret-injector` and the installed
 * tools (helm, kubectl) first on PATH. The caller removes `dir`.
 */
export function readerShell(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'asi-docs-'));
  cpSync(join(REPO_ROOT, 'charts'), join(dir, 'charts'), { recursive: true });
  const bin = join(dir, '.bin');
  mkdirSync(bin);
  const cli = join(ensureBundles(), 'cli.mjs');
  writeFileSync(join(bin, 'aws-secret-injector'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} "$@"\n`);
  chmodSync(join(bin, 'aws-secret-injector'), 0o755);
  const path = [bin, BIN_DIR, dirname(process.execPath), process.env.PATH ?? ''].join(delimiter);
  return { dir, env: { ...process.env, PATH: path, HOME: dir } };
}
