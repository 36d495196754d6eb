import { describe, expect, it } from 'vitest';
import { sessionName } from './aws.js';

describe('sessionName', () => {
  it.each<[string | undefined, string | undefined, string]>([
    ['team-a', 'web-7d9f8c6b5-x2k4q', 'team-a.web-7d9f8c6b5-x2k4q'],
    ['ns', undefined, 'ns'],
    [undefined, undefined, 'aws-secret-injector'],
    ['', 'x', 'aws-secret-injector'],
    ['a', 'b c/d:e', 'a.b-c-d-e'],
    ['n'.repeat(40), 'p'.repeat(40), `${'n'.repeat(40)}.${'p'.repeat(23)}`],
  ])('%s / %s -> %s', (ns, name, expected) => {
    const s = sessionName(ns, name);
    expect(s).toBe(expected);
    expect(s).toMatch(/^[\w+=,.@-]{2,64}$/);
  });
});
