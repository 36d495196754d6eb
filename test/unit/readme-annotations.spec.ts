// The annotation tables in the READMEs are generated from the registry; this fails when one of
// them drifts. Regenerate: paste the output of renderAnnotationTable() between the markers.

import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderAnnotationTable } from '../../webhook/annotations.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BEGIN = '<!-- annotations:begin -->';
const END = '<!-- annotations:end -->';

function section(file: string): string | undefined {
  const text = readFileSync(`${ROOT}${file}`, 'utf8');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return undefined;
  return text.slice(start + BEGIN.length, end).trim();
}

describe.each(['README.md', 'charts/aws-secret-injector/README.md'].filter((f) => f === 'README.md' || existsSync(`${ROOT}${f}`)))(
  '%s',
  (file) => {
    it('carries the annotation table exactly as the registry renders it', () => {
      const table = section(file);
      expect(table, `${file} has a ${BEGIN} ... ${END} section`).toBeDefined();
      expect(table).toBe(renderAnnotationTable());
    });
  },
);
