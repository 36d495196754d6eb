// Faults the emulator cannot produce on cue, made by a proxy in front of it: a throttling burst
// (retried, then success), a denied action (not retried), a server that never answers (per-call
// timeout and the overall deadline).

import { createServer } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it } from 'vitest';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';
import { startAwsProxy } from '../helpers/aws-proxy.js';

const { ctx, skip } = integrationContext();
// Static keys (no STS call in the way of the faults), which the fetcher takes only with the opt-in.
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };

describe.skipIf(skip !== false)(`fetcher under AWS faults${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  afterAll(() => scratch.remove());

  it('splits a throttled batch into GetSecretValue calls at once, retries the throttled ones, then writes everything', async () => {
    const prefix = unique('throttled');
    const names = Array.from({ length: 3 }, (_, i) => `${prefix}-${i}`);
    await Promise.all(names.map((n) => secrets.send(new CreateSecretCommand({ Name: n, SecretString: `v-${n}` }))));
    // The batch and the first three GetSecretValue calls are throttled; the rest go through.
    const proxy = await startAwsProxy(c.awsEndpoint, (op, seen) =>
      op.startsWith('secretsmanager.') && seen < 3 ? { status: 400, type: 'ThrottlingException', message: 'Rate exceeded' } : undefined,
    );
    try {
      const run = await runFetcher(c, scratch, { items: names.map((n, i) => ({ ref: n, file: `f${i}` })) }, keys, { endpoint: proxy.endpoint });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      // The batch was not retried: a pod starting does not wait for BatchGetSecretValue's small quota.
      expect(proxy.faulted).toEqual(['secretsmanager.BatchGetSecretValue', ...Array(3).fill('secretsmanager.GetSecretValue')]);
      expect(proxy.operations).toEqual(['secretsmanager.BatchGetSecretValue', ...Array(6).fill('secretsmanager.GetSecretValue')]);
      expect(names.map((n, i) => readFileSync(join(run.dir, `f${i}`), 'utf8'))).toEqual(names.map((n) => `v-${n}`));
    } finally {
      await proxy.close();
    }
  });

  it('when throttling does not stop, retries it for its budget (not the attempt count) and reports the API, its quota, how long and what to do', async () => {
    const name = unique('always-throttled');
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op.startsWith('secretsmanager.') ? { status: 400, type: 'ThrottlingException', message: 'Rate exceeded' } : undefined,
    );
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: name, file: 'f' }], timeouts: { maxAttempts: 2, callSeconds: 1, deadlineSeconds: 4 } },
        keys,
        { endpoint: proxy.endpoint },
      );
      expect(run.code).toBe(1);
      expect(proxy.faulted.length).toBeGreaterThan(2);
      expect(new Set(proxy.faulted)).toEqual(new Set(['secretsmanager.GetSecretValue']));
      expect(run.termination).toContain('FETCH_THROTTLED');
      expect(run.termination).toMatch(/GetSecretValue in eu-west-1 was throttled by AWS \(ThrottlingException\) for \d+\.\d s of retries/);
      expect(run.termination).toContain('Quota: 10,000 requests per second per account and Region');
      expect(run.termination).toContain('https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html');
      expect(run.termination).toContain('spread the rollout');
      expect(run.termination).not.toContain('FETCH_DEADLINE');
    } finally {
      await proxy.close();
    }
  });

  it('does not retry AccessDenied, and says which action and resource to allow', async () => {
    const name = unique('denied');
    const arn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-AbCdEf`;
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op === 'secretsmanager.GetSecretValue'
        ? { status: 400, type: 'AccessDeniedException', message: 'User is not authorized to perform: secretsmanager:GetSecretValue' }
        : undefined,
    );
    try {
      const run = await runFetcher(c, scratch, { items: [{ ref: arn, file: 'f' }] }, keys, { endpoint: proxy.endpoint });
      expect(run.code).toBe(1);
      expect(proxy.operations.filter((o) => o === 'secretsmanager.GetSecretValue')).toHaveLength(1);
      expect(run.termination).toContain(`reference ${arn}:`);
      expect(run.termination).toContain('AWS error code: AccessDeniedException');
      expect(run.termination).toContain(`Hint: allow secretsmanager:GetSecretValue on ${arn} to this identity`);
      expect(run.termination).toMatch(/Identity: arn:aws:(iam|sts)::123456789012:/);
      expect(readdirSync(run.dir)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('falls back to GetSecretValue when only BatchGetSecretValue is denied', async () => {
    const names = [unique('nobatch'), unique('nobatch')];
    await Promise.all(names.map((n) => secrets.send(new CreateSecretCommand({ Name: n, SecretString: n }))));
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op === 'secretsmanager.BatchGetSecretValue' ? { status: 400, type: 'AccessDeniedException', message: 'not authorized' } : undefined,
    );
    try {
      const run = await runFetcher(c, scratch, { items: names.map((n, i) => ({ ref: n, file: `f${i}` })) }, keys, { endpoint: proxy.endpoint });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(proxy.operations.sort()).toEqual(['secretsmanager.BatchGetSecretValue', 'secretsmanager.GetSecretValue', 'secretsmanager.GetSecretValue']);
    } finally {
      await proxy.close();
    }
  });

  /** A TCP server that accepts connections and never answers; closed by the returned function. */
  async function silentEndpoint(): Promise<{ endpoint: string; close: () => void }> {
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const address = silent.address();
    const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return {
      endpoint,
      close: () => {
        sockets.forEach((s) => s.destroy());
        silent.close();
      },
    };
  }

  it.each(['fetcher', 'fetcher.cjs', 'cli.mjs'] as const)(
    'with IRSA and an STS endpoint that never answers, %s exits at the deadline (identity lookup included)',
    async (bundle) => {
      const sts = await silentEndpoint();
      try {
        const run = await runFetcher(
          c,
          scratch,
          { items: [{ ref: unique('no-sts'), file: 'f' }], timeouts: { callSeconds: 30, deadlineSeconds: 1.5 } },
          {
            AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`,
            AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(),
            AWS_REGION: REGION,
            AWS_ENDPOINT_URL_STS: sts.endpoint,
          },
          { bundle, killAfterMs: 20_000 },
        );
        expect(run.code).toBe(1);
        expect(run.ms).toBeLessThan(8_000);
        expect(run.termination).toContain('FETCH_DEADLINE');
        expect(run.termination).toContain('Identity: unknown (not asked, the fetch deadline had passed)');
      } finally {
        sts.close();
      }
    },
  );

  it('times out the web identity exchange per call, and reports it as a credentials problem', async () => {
    const sts = await silentEndpoint();
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: unique('slow-sts'), file: 'f' }], timeouts: { callSeconds: 1, deadlineSeconds: 30, maxAttempts: 2 } },
        {
          AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`,
          AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(),
          AWS_REGION: REGION,
          AWS_ENDPOINT_URL_STS: sts.endpoint,
        },
        { killAfterMs: 40_000 },
      );
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(15_000);
      expect(run.termination).toContain('no AWS credentials could be obtained');
      expect(run.termination).not.toContain('FETCH_DEADLINE');
    } finally {
      sts.close();
    }
  });

  it('gives up on a call that gets no answer after the per-call timeout and retries it', async () => {
    const names = [unique('stalled'), unique('stalled')];
    await Promise.all(names.map((n) => secrets.send(new CreateSecretCommand({ Name: n, SecretString: `v-${n}` }))));
    // The first Secrets Manager call is never answered; the retry goes through.
    const proxy = await startAwsProxy(c.awsEndpoint, (op, seen) => (op.startsWith('secretsmanager.') && seen === 0 ? 'hang' : undefined));
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: names.map((n, i) => ({ ref: n, file: `f${i}` })), timeouts: { callSeconds: 1, deadlineSeconds: 30 } },
        keys,
        { endpoint: proxy.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.ms).toBeLessThan(15_000);
      expect(proxy.faulted).toEqual(['secretsmanager.BatchGetSecretValue']);
      expect(proxy.operations).toEqual(['secretsmanager.BatchGetSecretValue', 'secretsmanager.BatchGetSecretValue']);
      expect(names.map((n, i) => readFileSync(join(run.dir, `f${i}`), 'utf8'))).toEqual(names.map((n) => `v-${n}`));
    } finally {
      await proxy.close();
    }
  });

  it('stops at the overall deadline when AWS never answers', async () => {
    // Accepts connections and never answers.
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const address = silent.address();
    const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: unique('hung'), file: 'f' }], timeouts: { callSeconds: 30, deadlineSeconds: 1.5, maxAttempts: 2 } },
        keys,
        { endpoint },
      );
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(15_000);
      expect(run.termination).toContain('FETCH_DEADLINE');
      expect(readdirSync(run.dir)).toEqual([]);
    } finally {
      sockets.forEach((s) => s.destroy());
      silent.close();
    }
  });
});
