// docs/errors.md documents every error and denial code the code can produce, and only those: it is
// generated from the code's `...Code` union types (test/helpers/errors-doc.ts), with a hand-written
// "What to do" per code.

import { describe, expect, it } from 'vitest';
import { ERRORS_DOC, errorCodes, NO_MEANING, readErrorsDoc, renderErrorsDoc, TODO } from '../helpers/errors-doc.js';

const HOW =
  'run `npm run docs:errors` (it rewrites docs/errors.md from the code, keeping every "What to do" paragraph), ' +
  `then replace each "${TODO}" line under the new code's heading with what a user should do`;

describe(ERRORS_DOC, () => {
  const codes = errorCodes();

  it('finds the codes of every area (denials, fetch, certificates, serving certificate)', () => {
    const types = new Set(codes.map((c) => c.type));
    expect([...types].sort()).toEqual(expect.arrayContaining(['CertsErrorCode', 'FetchErrorCode', 'ProblemCode', 'TlsErrorCode']));
    expect(codes.map((c) => c.code)).toContain('FETCH_AWS');
  });

  it('gives each code a meaning in the code, as a comment beside it', () => {
    expect(codes.filter((c) => c.meaning === '').map((c) => `${c.code} (${c.file}): add a comment beside it saying what it means`)).toEqual([]);
    expect(readErrorsDoc()).not.toContain(NO_MEANING);
  });

  it('has a section for every code and none for a code that is gone', () => {
    const documented = [...readErrorsDoc().matchAll(/^### (\S+)$/gm)].map((m) => m[1]!);
    const missing = codes.filter((c) => !documented.includes(c.code)).map((c) => `${c.code} (${c.type}, ${c.file})`);
    expect(missing, `codes without a section in docs/errors.md: ${HOW}`).toEqual([]);
    const gone = documented.filter((d) => !codes.some((c) => c.code === d));
    expect(gone, 'sections in docs/errors.md for codes the code no longer has: run `npm run docs:errors`').toEqual([]);
  });

  it('is exactly what the code generates', () => {
    expect(readErrorsDoc(), `docs/errors.md is out of date with the error codes in the code: ${HOW}`).toBe(renderErrorsDoc(codes, readErrorsDoc()));
  });

  it('says what to do for every code', () => {
    const doc = readErrorsDoc();
    const missing = codes.filter((c) => doc.includes(`### ${c.code}\n`) && doc.split(`### ${c.code}\n`)[1]!.split('\n### ')[0]!.includes(TODO));
    expect(missing.map((c) => c.code), `codes without a "What to do" in docs/errors.md: ${HOW}`).toEqual([]);
  });
});
