// docs/scale.md's tables are the code's numbers: the quotas the failure report names and the
// fleet bench enforces (fetcher/quotas.ts), and the cost formula's worked examples.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOLLARS_PER_CALL, QUOTAS, refreshCallsPerMonth, type Quota } from '../../fetcher/quotas.js';
import { REPO_ROOT } from '../helpers/tools.js';

const doc = readFileSync(join(REPO_ROOT, 'docs/scale.md'), 'utf8');

/** The rows of the table that follows `marker`, as cells. */
function tableAfter(marker: string): string[][] {
  const rest = doc.slice(doc.indexOf(marker) + marker.length).trimStart().split('\n');
  const rows: string[][] = [];
  for (const line of rest) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(2);
}

const num = (s: string) => Number(s.replace(/[$,]/g, ''));

describe('docs/scale.md', () => {
  it('lists every quota of fetcher/quotas.ts with its number, adjustability and source', () => {
    const rows = tableAfter('<!-- checked against fetcher/quotas.ts -->');
    expect(rows.map((r) => r[0]!.replace(/`/g, ''))).toEqual(Object.keys(QUOTAS));
    for (const [api, , perSecond, adjustable, source] of rows) {
      const q: Quota = QUOTAS[api!.replace(/`/g, '') as keyof typeof QUOTAS];
      const higher = q.higher !== undefined ? ` (${q.higher.toLocaleString('en-US')} with higher throughput)` : '';
      expect(perSecond).toBe(`${q.perSecond.toLocaleString('en-US')}${higher}`);
      expect(adjustable).toBe(q.adjustable ? 'yes' : 'no');
      expect(source).toContain(`(${q.source})`);
    }
  });

  it('works its cost examples with the formula the fleet bench uses', () => {
    const rows = tableAfter('<!-- checked against fetcher/quotas.ts refreshCallsPerMonth -->');
    expect(rows.length).toBeGreaterThan(3);
    for (const [pods, secrets, interval, calls, dollars, single] of rows) {
      const seconds = parseFloat(interval!) * (interval!.endsWith('min') ? 60 : 3600);
      const n = refreshCallsPerMonth(num(pods!), num(secrets!), seconds);
      expect(num(calls!)).toBe(n);
      expect(num(dollars!)).toBeCloseTo(n * DOLLARS_PER_CALL, 2);
      expect(num(single!)).toBeCloseTo(refreshCallsPerMonth(num(pods!), num(secrets!), seconds, false) * DOLLARS_PER_CALL, 2);
    }
  });
});
