import { describe, expect, it } from 'vitest';
import { parseSpec } from './spec.js';

const spec = (timeouts: unknown) => JSON.stringify({ version: 1, dir: '/tmp', items: [{ ref: 'db', file: 'db' }], timeouts });

describe('parseSpec timeouts', () => {
  it('accepts timeouts within bounds', () => {
    expect(parseSpec(spec({ callSeconds: 0.5, deadlineSeconds: 3600, maxAttempts: 20 }))).toEqual({
      spec: expect.objectContaining({ timeouts: { callSeconds: 0.5, deadlineSeconds: 3600, maxAttempts: 20 } }),
    });
  });

  // A deadline past 2^31-1 ms made the deadline timer fire at once: every fetch "missed the deadline".
  it.each<[Record<string, unknown>, string]>([
    [{ deadlineSeconds: 3_000_000 }, 'timeouts.deadlineSeconds must be at most 3600 (got 3000000)'],
    [{ callSeconds: 1e9 }, 'timeouts.callSeconds must be at most 3600 (got 1000000000)'],
    [{ maxAttempts: 1000 }, 'timeouts.maxAttempts must be at most 20 (got 1000)'],
    [{ maxAttempts: 2.5 }, 'timeouts.maxAttempts must be a whole number'],
    [{ deadlineSeconds: 0 }, 'timeouts.deadlineSeconds must be a positive number'],
  ])('refuses %j', (timeouts, error) => {
    expect(parseSpec(spec(timeouts))).toEqual({ errors: [error] });
  });
});

describe('parseSpec refresh', () => {
  const withRefresh = (refresh: unknown) => JSON.stringify({ version: 1, dir: '/tmp', items: [{ ref: 'db', file: 'db' }], refresh });

  it('accepts an interval from 10 s to a day', () => {
    expect(parseSpec(withRefresh({ intervalSeconds: 10 }))).toEqual({ spec: expect.objectContaining({ refresh: { intervalSeconds: 10 } }) });
    expect(parseSpec(withRefresh({ intervalSeconds: 86_400 }))).toEqual({ spec: expect.objectContaining({ refresh: { intervalSeconds: 86_400 } }) });
  });

  it.each<[unknown, string]>([
    [{ intervalSeconds: 9 }, 'refresh.intervalSeconds must be a whole number from 10 to 86400'],
    [{ intervalSeconds: 86_401 }, 'refresh.intervalSeconds must be a whole number from 10 to 86400'],
    [{ intervalSeconds: 30.5 }, 'refresh.intervalSeconds must be a whole number from 10 to 86400'],
    [{ intervalSeconds: '30' }, 'refresh.intervalSeconds must be a whole number from 10 to 86400'],
    [{ intervalSeconds: 30, jitter: 1 }, 'refresh must be an object with intervalSeconds and signal only'],
    [30, 'refresh must be an object with intervalSeconds and signal only'],
  ])('refuses %j', (refresh, error) => {
    expect(parseSpec(withRefresh(refresh))).toEqual({ errors: [error] });
  });
});

describe('parseSpec failoverRegion', () => {
  const withFailover = (extra: object) => JSON.stringify({ version: 1, dir: '/tmp', items: [{ ref: 'db', file: 'db' }], ...extra });
  it('accepts a region other than the spec\'s', () => {
    expect(parseSpec(withFailover({ region: 'us-east-1', failoverRegion: 'us-east-2' }))).toEqual({
      spec: expect.objectContaining({ region: 'us-east-1', failoverRegion: 'us-east-2' }),
    });
  });
  it.each<[object, string]>([
    [{ failoverRegion: 'east' }, 'failoverRegion "east" is not valid'],
    [{ region: 'us-east-1', failoverRegion: 'us-east-1' }, 'failoverRegion "us-east-1" must differ from region'],
  ])('refuses %j', (extra, error) => expect(parseSpec(withFailover(extra))).toEqual({ errors: [error] }));
});
