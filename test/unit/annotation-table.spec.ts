// The annotation table in docs/annotations.md is generated from the registry; this fails when it
// drifts. Regenerate: paste the output of renderAnnotationTable() between the markers. No other
// document repeats the table: they link to it.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderAnnotationTable } from '../../webhook/annotations.js';
import { docFiles } from '../helpers/docs.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BEGIN = '<!-- annotations:begin -->';
const END = '<!-- annotations:end -->';
const HOME = 'docs/annotations.md';

describe('the annotation table', () => {
  it(`${HOME} carries it exactly as the registry renders it`, () => {
    const text = readFileSync(`${ROOT}${HOME}`, 'utf8');
    const start = text.indexOf(BEGIN);
    const end = text.indexOf(END);
    expect(start >= 0 && end > start, `${HOME} has a ${BEGIN} ... ${END} section`).toBe(true);
    expect(text.slice(start + BEGIN.length, end).trim()).toBe(renderAnnotationTable());
  });

  it('stands in no other document', () => {
    const header = renderAnnotationTable().split('\n')[0]!;
    expect(docFiles().filter((f) => f !== HOME && readFileSync(`${ROOT}${f}`, 'utf8').includes(header))).toEqual([]);
  });
});
