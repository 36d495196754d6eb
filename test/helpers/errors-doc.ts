// docs/errors.md is generated from the code: every string-literal union type named `...Code` in
// the sources (webhook/, fetcher/, certs/, store/, bin/ ...: ProblemCode, FetchErrorCode, ...) is an area, each of its
// members a code, and the comment beside a member is that code's meaning. The only hand-written
// text is each code's "What to do" paragraph, which a regeneration keeps.
//
//   npm run docs:errors      rewrites docs/errors.md (new codes get a `What to do: TODO` line)
//
// test/unit/errors-doc.spec.ts fails while the file differs from what this makes or holds a TODO.
// Runs as a script on Node.js 24 (type stripping), so it imports no file of ours.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ERRORS_DOC = 'docs/errors.md';
// Every top-level directory of program sources: all but these.
const NOT_SOURCES = new Set(['test', 'bench', 'scripts', 'charts', 'docs', 'dist', 'node_modules', 'coverage']);
const sourceDirs = () =>
  readdirSync(ROOT, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !NOT_SOURCES.has(e.name))
    .map((e) => e.name)
    .sort();
const CODE = /^[A-Z]+_[A-Z0-9_]+$/;
export const TODO = 'What to do: TODO';

export interface ErrorCode {
  code: string;
  /** The comment beside it in the code; empty when it has none. */
  meaning: string;
  /** The type it belongs to, e.g. ProblemCode. */
  type: string;
  file: string;
}

/** How each area is introduced: where its codes show up. A new type without an entry gets a plain heading. */
const AREAS: Record<string, { title: string; where: string }> = {
  ProblemCode: {
    title: 'Pod denials',
    where:
      'The webhook refuses the pod: `kubectl` prints `admission webhook "inject.secrets.k8s.aws" denied the request: ...`, ' +
      'naming each bad annotation or field, and the webhook log\'s `reason` lists the codes. Pods made by a ' +
      'Deployment show it in the ReplicaSet\'s events.',
  },
  FetchErrorCode: {
    title: 'Fetch failures',
    where:
      'The init container `secret-fetcher` exits non-zero and the pod does not start; each paragraph of its ' +
      'termination message (and log) starts with the code: [where to look](troubleshooting.md#where-to-look).',
  },
  CertsErrorCode: {
    title: 'Certificates',
    where:
      '`aws-secret-injector certs ...` prints `error: CODE: ...` and exits non-zero; the webhook\'s own certificate ' +
      'bootstrap logs the code and exits, so the webhook pod restarts.',
  },
  WriteCode: {
    title: 'Writing to Secrets Manager',
    where:
      'A Secret\'s values could not be written to Secrets Manager: `aws-secret-injector secrets push` prints the ' +
      'problem with its code in parentheses and exits non-zero ([cli.md](cli.md)).',
  },
  TlsErrorCode: {
    title: 'Serving certificate',
    where:
      'The webhook cannot use its certificate files: at start it logs the code and exits; on a reload it logs a ' +
      'warning and keeps serving the certificate it has.',
  },
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(path));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts') && !e.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

function commentText(raw: string): string {
  return raw
    .replace(/^\/\*\*?|\*\/$/g, '')
    .replace(/^\/\/\s?/, '')
    .split('\n')
    .map((l) => l.replace(/^\s*\*\s?/, '').trim())
    .join(' ')
    .trim();
}

/** Every error code of the code, in the order of its types and members. */
export function errorCodes(): ErrorCode[] {
  const out: ErrorCode[] = [];
  for (const file of sourceDirs().flatMap(sourceFiles)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    if (!/type \w*Code\b/.test(text)) continue;
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    for (const statement of source.statements) {
      if (!ts.isTypeAliasDeclaration(statement) || !statement.name.text.endsWith('Code')) continue;
      const members = ts.isUnionTypeNode(statement.type) ? [...statement.type.types] : [statement.type];
      const literals = members.flatMap((m) =>
        ts.isLiteralTypeNode(m) && ts.isStringLiteral(m.literal) && CODE.test(m.literal.text) ? [{ node: m, code: m.literal.text }] : [],
      );
      if (literals.length === 0 || literals.length !== members.length) continue;
      let prevEnd = statement.type.getFullStart();
      for (const { node, code } of literals) {
        // A member's comment is a `//` after it on its line, or a comment between it and the previous member
        // (leaving out the rest of the previous member's own line, whose comment is that member's).
        const lineEnd = text.indexOf('\n', node.end);
        const trailing = /^[\s|;]*(\/\/.*)$/.exec(text.slice(node.end, lineEnd === -1 ? undefined : lineEnd))?.[1];
        let gap = text.slice(prevEnd, node.getStart(source));
        if (prevEnd !== statement.type.getFullStart()) gap = gap.slice(gap.indexOf('\n') + 1 || gap.length);
        const leading = [...gap.matchAll(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g)].map((m) => m[0]);
        const meaning = commentText(trailing ?? leading.at(-1) ?? '');
        out.push({ code, meaning, type: statement.name.text, file });
        prevEnd = node.end;
      }
    }
  }
  return out;
}

const HEAD = `# Error and denial codes

Every failure the injector reports carries one of these stable codes: a denial of a pod, a failed
fetch, a certificate problem. Scripts and alerts can match on them; their wording may change, the
codes do not. Each section says what the code means and what to do.

<!-- Generated from the code by \`npm run docs:errors\`: edit only the "What to do" paragraphs. -->
`;

/** The "What to do" text of each code in an existing document. */
export function handWritten(doc: string): Map<string, string> {
  const out = new Map<string, string>();
  const sections = doc.split(/^### /m).slice(1);
  for (const s of sections) {
    const [heading = '', ...lines] = s.split('\n');
    const start = lines.findIndex((l) => l.startsWith('What to do:'));
    if (start === -1) continue;
    const body: string[] = [];
    for (const l of lines.slice(start)) {
      if (/^#{1,3} /.test(l)) break;
      body.push(l);
    }
    out.set(heading.trim(), body.join('\n').trim());
  }
  return out;
}

export const NO_MEANING = '(no comment in the code)';
const sentence = (s: string) => `${s[0]!.toUpperCase()}${s.slice(1).replace(/\.?$/, '.')}`;

/** docs/errors.md as the code says it should be, keeping the "What to do" text of `current`. */
export function renderErrorsDoc(codes: ErrorCode[], current: string): string {
  const kept = handWritten(current);
  const parts = [HEAD];
  const order = Object.keys(AREAS);
  const rank = (t: string) => (order.includes(t) ? order.indexOf(t) : order.length);
  const types = [...new Set(codes.map((c) => c.type))].sort((a, b) => rank(a) - rank(b));
  for (const type of types) {
    const inType = codes.filter((c) => c.type === type);
    const area = AREAS[type] ?? { title: type, where: `Codes of \`${type}\`.` };
    parts.push(`## ${area.title}\n\n${area.where} Declared in \`${inType[0]!.file}\` (\`${type}\`).\n`);
    for (const c of inType) {
      parts.push(`### ${c.code}\n\n${c.meaning ? sentence(c.meaning) : NO_MEANING}\n\n${kept.get(c.code) ?? TODO}\n`);
    }
  }
  return parts.join('\n');
}

export function readErrorsDoc(): string {
  try {
    return readFileSync(join(ROOT, ERRORS_DOC), 'utf8');
  } catch {
    return '';
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  const codes = errorCodes();
  writeFileSync(join(ROOT, ERRORS_DOC), renderErrorsDoc(codes, readErrorsDoc()));
  const todo = codes.filter((c) => !handWritten(readErrorsDoc()).has(c.code) || handWritten(readErrorsDoc()).get(c.code) === TODO);
  console.log(`${relative(process.cwd(), join(ROOT, ERRORS_DOC))}: ${codes.length} codes${todo.length ? `; write "What to do" for ${todo.map((c) => c.code).join(', ')}` : ''}`);
}
