// The built fetcher against AWS's quotas, which the emulator does not enforce: the stand-in
// (test/helpers/aws-standin.ts) holds each API to a token bucket and answers a throttled call on
// that API's own wire protocol (JSON 1.1 ThrottlingException, STS's XML Throttling), so the SDK's
// parsing and error classification run as they do against AWS.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch } from './context.js';
import { startAwsStandIn } from '../helpers/aws-standin.js';

const { ctx, skip } = integrationContext();
const irsa = (scratch: Scratch) => ({
  AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`,
  AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(),
  AWS_REGION: REGION,
});
const arn = (name: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-AbCdEf`;

describe.skipIf(skip !== false)(`fetcher against AWS's quotas${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  afterAll(() => scratch.remove());

  it('splits a batch the BatchGetSecretValue quota refuses into GetSecretValue calls, and writes every secret', async () => {
    const standIn = await startAwsStandIn({ quotas: { BatchGetSecretValue: 0 }, latencyMs: { GetSecretValue: 2 } });
    try {
      const names = Array.from({ length: 5 }, (_, i) => `app/db-${i}`);
      const run = await runFetcher(c, scratch, { items: names.map((n, i) => ({ ref: arn(n), file: `f${i}` })) }, irsa(scratch), {
        endpoint: standIn.endpoint,
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(standIn.stats()).toEqual({
        AssumeRoleWithWebIdentity: { calls: 1, throttled: 0 },
        BatchGetSecretValue: { calls: 1, throttled: 1 },
        GetSecretValue: { calls: 5, throttled: 0 },
      });
      expect(names.map((n, i) => readFileSync(join(run.dir, `f${i}`), 'utf8'))).toEqual(names.map((n) => `value of ${n}`));
    } finally {
      await standIn.close();
    }
  });

  it('retries STS throttling with jitter within its budget and then names the STS quota', async () => {
    const standIn = await startAwsStandIn({ alwaysThrottle: ['AssumeRoleWithWebIdentity'] });
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: arn('app/db'), file: 'f' }], timeouts: { callSeconds: 1, deadlineSeconds: 3 } },
        irsa(scratch),
        { endpoint: standIn.endpoint },
      );
      expect(run.code).toBe(1);
      expect(standIn.stats().AssumeRoleWithWebIdentity!.calls).toBeGreaterThan(1);
      expect(standIn.stats().GetSecretValue).toBeUndefined();
      expect(run.termination).toContain('FETCH_THROTTLED');
      expect(run.termination).toContain('AssumeRoleWithWebIdentity (STS) was throttled by AWS (Throttling)');
      expect(run.termination).toContain('Quota: 600 requests per second per account and Region');
      expect(run.termination).toContain('spread the rollout');
      expect(run.ms).toBeLessThan(10_000);
    } finally {
      await standIn.close();
    }
  });

  it('rides out a quota it shares with a burst of other pods: every pod of a small fleet gets its secrets', async () => {
    // 20 fetchers of 3 secrets at once against a GetSecretValue quota of 10/s (burst 10) and no batch.
    const standIn = await startAwsStandIn({ quotas: { BatchGetSecretValue: 0, GetSecretValue: 10 }, latencyMs: { GetSecretValue: 5 } });
    try {
      const runs = await Promise.all(
        Array.from({ length: 20 }, () =>
          runFetcher(c, scratch, { items: ['a', 'b', 'c'].map((n) => ({ ref: arn(`shared/${n}`), file: n })) }, irsa(scratch), {
            endpoint: standIn.endpoint,
          }),
        ),
      );
      expect(runs.map((r) => r.code)).toEqual(Array(20).fill(0));
      const s = standIn.stats();
      expect(s.GetSecretValue!.throttled).toBeGreaterThan(0);
      expect(s.GetSecretValue!.calls - s.GetSecretValue!.throttled).toBe(60);
    } finally {
      await standIn.close();
    }
  });
});
