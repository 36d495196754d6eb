// How the fetcher's AWS calls are retried: one strategy for every SDK client of a pod (Secrets
// Manager, SSM, STS). A fleet shares AWS's per-account quotas, so a retry must neither come back
// in step with everyone else's (full jitter: a delay drawn uniformly from zero to the exponential
// bound) nor give up while the pod still has time to wait its turn (throttling is retried for a
// time budget, not a fixed number of attempts). Other transient errors (timeouts, 5xx) keep the
// spec's attempt count. Every throttled answer is noted, so a report can say which API kept
// throttling and for how long. A call may ask not to be retried when throttled (a batch the
// fetcher would rather split into single calls, fetch.ts): the wrapper of aws.ts says so through
// `callScope`.

import type { AsyncLocalStorage } from 'node:async_hooks';
import type { RetryErrorInfo, RetryStrategyV2, StandardRetryToken } from '@smithy/types';

/** First throttled retry waits up to this long; the bound doubles per retry up to the cap. */
export const THROTTLE_BASE_MS = 500;
export const THROTTLE_CAP_MS = 8_000;
/** The same for timeouts and 5xx. */
export const TRANSIENT_BASE_MS = 100;
export const TRANSIENT_CAP_MS = 4_000;

/** Full jitter: uniform in [0, min(cap, base × 2^retry)). */
export function fullJitter(retry: number, baseMs: number, capMs: number, random: number): number {
  return Math.floor(random * Math.min(capMs, baseMs * 2 ** Math.min(retry, 30)));
}

/** What one API's throttling looked like to this pod. */
export interface Throttled {
  api: string;
  region: string;
  /** Throttled answers. */
  count: number;
  firstAt: number;
  lastAt: number;
}

export class ThrottleLog {
  private readonly byApi = new Map<string, Throttled>();
  note(api: string, region: string, at: number): void {
    const k = `${api}\u0000${region}`;
    const t = this.byApi.get(k);
    if (t) {
      t.count++;
      t.lastAt = at;
    } else this.byApi.set(k, { api, region, count: 1, firstAt: at, lastAt: at });
  }
  list(): Throttled[] {
    return [...this.byApi.values()].map((t) => ({ ...t }));
  }
}

/** What the call in progress is, as the wrapper around `send` tells the strategy. */
export interface CallScope {
  api: string;
  /** Throttled: give up at once (the caller has a cheaper way on). */
  failFast?: boolean;
}

let scopes: AsyncLocalStorage<CallScope> | undefined;

/**
 * Runs `fn` (an SDK `send`) with `scope` visible to the retry strategy. async_hooks is loaded on
 * the first call, so a run that makes none (a bad spec, no identity) never loads it.
 */
export function inCallScope<T>(scope: CallScope, fn: () => Promise<T>): Promise<T> {
  if (scopes === undefined) {
    const { AsyncLocalStorage: Als } = process.getBuiltinModule('node:async_hooks');
    scopes = new Als<CallScope>();
  }
  return scopes.run(scope, fn);
}

function currentScope(): CallScope | undefined {
  return scopes?.getStore();
}

export interface RetryPolicy {
  /** Attempts for timeouts and 5xx, the first included. */
  maxAttempts: number;
  /** Throttled calls are retried while the next attempt would start within this long of the first. */
  throttleBudgetMs: number;
  random?: () => number;
  now?: () => number;
}

class Token implements StandardRetryToken {
  constructor(
    readonly api: string,
    readonly failFast: boolean,
    readonly startedAt: number,
    private readonly retries = 0,
    private readonly delay = 0,
  ) {}
  getRetryCount(): number {
    return this.retries;
  }
  getRetryDelay(): number {
    return this.delay;
  }
  getRetryCost(): number | undefined {
    return undefined;
  }
  next(delay: number): Token {
    return new Token(this.api, this.failFast, this.startedAt, this.retries + 1, delay);
  }
}

/**
 * The SDK's RetryStrategyV2 for one client. `api`: the operation the client sends; a client that
 * sends several (Secrets Manager) is `scoped`: the call scope names the operation and may ask for
 * fail-fast. An STS client is not scoped even when it runs inside a scoped call (credentials
 * resolved for a Secrets Manager call): its calls are its own. The delay is returned in the token,
 * so the SDK's retry middleware waits it out and stops waiting when the call is aborted.
 */
export class FleetRetryStrategy implements RetryStrategyV2 {
  readonly mode = 'standard';
  private readonly random: () => number;
  private readonly now: () => number;
  constructor(
    private readonly client: { api: string; region: string; scoped: boolean },
    private readonly policy: RetryPolicy,
    private readonly log: ThrottleLog,
  ) {
    this.random = policy.random ?? Math.random;
    this.now = policy.now ?? Date.now;
  }

  async acquireInitialRetryToken(): Promise<Token> {
    const scope = this.client.scoped ? currentScope() : undefined;
    return new Token(scope?.api ?? this.client.api, scope?.failFast === true, this.now());
  }

  async refreshRetryTokenForRetry(token: Token, info: RetryErrorInfo): Promise<Token> {
    const now = this.now();
    const retry = token.getRetryCount();
    if (info.errorType === 'THROTTLING') {
      this.log.note(token.api, this.client.region, now);
      if (!token.failFast) {
        const delay = fullJitter(retry, THROTTLE_BASE_MS, THROTTLE_CAP_MS, this.random());
        if (now + delay - token.startedAt <= this.policy.throttleBudgetMs) return token.next(delay);
      }
    } else if (info.errorType === 'TRANSIENT' && retry + 1 < this.policy.maxAttempts) {
      return token.next(fullJitter(retry, TRANSIENT_BASE_MS, TRANSIENT_CAP_MS, this.random()));
    }
    throw new Error('no retry');
  }

  recordSuccess(): void {}

  async maxAttempts(): Promise<number> {
    return this.policy.maxAttempts;
  }
}
