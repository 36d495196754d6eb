import { describe, expect, it } from 'vitest';
import { FleetRetryStrategy, fullJitter, inCallScope, THROTTLE_BASE_MS, THROTTLE_CAP_MS, ThrottleLog, type RetryPolicy } from './retry.js';

const throttling = { errorType: 'THROTTLING' as const };
const transient = { errorType: 'TRANSIENT' as const };

function strategy(policy: Partial<RetryPolicy> = {}, client = { api: 'GetSecretValue', region: 'eu-west-1', scoped: true }) {
  let now = 0;
  const log = new ThrottleLog();
  const s = new FleetRetryStrategy(client, { maxAttempts: 3, throttleBudgetMs: 10_000, random: () => 0.999, now: () => now, ...policy }, log);
  return { s, log, advance: (ms: number) => (now += ms) };
}

describe('fullJitter', () => {
  it('draws uniformly below the exponential bound, capped', () => {
    expect(fullJitter(0, 500, 8_000, 0)).toBe(0);
    expect(fullJitter(0, 500, 8_000, 0.5)).toBe(250);
    expect(fullJitter(3, 500, 8_000, 0.999)).toBe(3_996);
    expect(fullJitter(10, 500, 8_000, 0.999)).toBe(7_992);
    expect(fullJitter(1_000, 500, 8_000, 0.5)).toBe(4_000);
  });

  it('spreads a fleet throttled at the same moment over the whole window instead of retrying in step', () => {
    // 1,000 pods throttled at once: their third retry lands anywhere in [0, 2 s), in every 100 ms slot.
    const delays = Array.from({ length: 1_000 }, () => fullJitter(2, THROTTLE_BASE_MS, THROTTLE_CAP_MS, Math.random()));
    expect(Math.max(...delays)).toBeLessThan(2_000);
    const slots = new Set(delays.map((d) => Math.floor(d / 100)));
    expect(slots.size).toBe(20);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(800);
    expect(mean).toBeLessThan(1_200);
  });
});

describe('FleetRetryStrategy', () => {
  it('retries throttling past maxAttempts, while within the time budget, and notes every throttled answer', async () => {
    const { s, log, advance } = strategy({ maxAttempts: 2, throttleBudgetMs: 10_000 });
    let token = await s.acquireInitialRetryToken();
    const delays: number[] = [];
    for (;;) {
      try {
        token = await s.refreshRetryTokenForRetry(token, throttling);
      } catch {
        break;
      }
      delays.push(token.getRetryDelay());
      advance(token.getRetryDelay());
    }
    // 499, 999, 1998, 3996 (sum 7492); the next bound (7992) would pass 10 s.
    expect(delays).toEqual([499, 999, 1_998, 3_996]);
    expect(log.list()).toEqual([{ api: 'GetSecretValue', region: 'eu-west-1', count: 5, firstAt: 0, lastAt: 7_492 }]);
  });

  it('keeps the attempt count for timeouts and 5xx', async () => {
    const { s, log } = strategy({ maxAttempts: 3 });
    let token = await s.acquireInitialRetryToken();
    token = await s.refreshRetryTokenForRetry(token, transient);
    token = await s.refreshRetryTokenForRetry(token, transient);
    await expect(s.refreshRetryTokenForRetry(token, transient)).rejects.toThrow();
    expect(log.list()).toEqual([]);
  });

  it('does not retry client errors', async () => {
    const { s } = strategy();
    await expect(s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken(), { errorType: 'CLIENT_ERROR' })).rejects.toThrow();
  });

  it('gives up at the first throttle of a call made fail-fast, naming the call scope\'s API', async () => {
    const { s, log } = strategy();
    const token = await inCallScope({ api: 'BatchGetSecretValue', failFast: true }, () => s.acquireInitialRetryToken());
    await expect(s.refreshRetryTokenForRetry(token, throttling)).rejects.toThrow();
    expect(log.list().map((t) => [t.api, t.count])).toEqual([['BatchGetSecretValue', 1]]);
    // Outside the scope the same client retries.
    const plain = await s.acquireInitialRetryToken();
    await expect(s.refreshRetryTokenForRetry(plain, throttling)).resolves.toBeDefined();
  });

  it('an unscoped client (STS) keeps its own API and retries even inside a fail-fast call', async () => {
    const { s, log } = strategy({}, { api: 'AssumeRoleWithWebIdentity', region: 'eu-west-1', scoped: false });
    const token = await inCallScope({ api: 'BatchGetSecretValue', failFast: true }, () => s.acquireInitialRetryToken());
    await expect(s.refreshRetryTokenForRetry(token, throttling)).resolves.toBeDefined();
    expect(log.list().map((t) => t.api)).toEqual(['AssumeRoleWithWebIdentity']);
  });
});
