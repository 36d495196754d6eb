// secrets.k8s.aws/failover-region against the emulator holding the secret in two regions, with
// the recording proxy making one region fail on cue (it knows each call's region from its
// signature): a primary that never answers falls back; a client error in either region fails
// with both named.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsProxy, type Fault } from '../helpers/aws-proxy.js';
import { integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
const FAILOVER = 'eu-central-1';
// Static keys stand for an identity; the fetcher takes them only with the node-credentials opt-in.
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };

describe.skipIf(skip !== false)(`fetcher with a failover region${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  let name: string;
  let onlyPrimary: string;

  beforeAll(async () => {
    name = unique('replicated');
    onlyPrimary = unique('not-replicated');
    const primary = seedClients(c.awsEndpoint, REGION).secrets;
    const replica = seedClients(c.awsEndpoint, FAILOVER).secrets;
    await primary.send(new CreateSecretCommand({ Name: name, SecretString: 'from-primary' }));
    await replica.send(new CreateSecretCommand({ Name: name, SecretString: 'from-replica' }));
    await primary.send(new CreateSecretCommand({ Name: onlyPrimary, SecretString: 'alone' }));
  });
  afterAll(() => scratch.remove());

  const fetchVia = async (fault: (region: string) => Fault | 'hang' | undefined, ref: string) => {
    const proxy = await startAwsProxy(c.awsEndpoint, (op, _seen, call) => (op.startsWith('secretsmanager.') ? fault(call.region) : undefined));
    try {
      const run = await runFetcher(
        c,
        scratch,
        { failoverRegion: FAILOVER, items: [{ ref, file: 'f' }], timeouts: { callSeconds: 1, maxAttempts: 2, deadlineSeconds: 30 } },
        keys,
        { endpoint: proxy.endpoint },
      );
      return { run, regions: proxy.calls.filter((x) => x.operation.startsWith('secretsmanager.')).map((x) => x.region) };
    } finally {
      await proxy.close();
    }
  };

  it('asks both regions and writes the primary value when both answer', async () => {
    const { run, regions } = await fetchVia(() => undefined, name);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(new Set(regions)).toEqual(new Set([REGION, FAILOVER]));
    expect(readFileSync(join(run.dir, 'f'), 'utf8')).toBe('from-primary');
  });

  it('falls back to the failover region when the primary times out', async () => {
    const { run, regions } = await fetchVia((region) => (region === REGION ? 'hang' : undefined), name);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(regions.filter((r) => r === REGION)).toHaveLength(2);
    expect(readFileSync(join(run.dir, 'f'), 'utf8')).toBe('from-replica');
    expect(run.stdout).toContain(`(1 from the failover region ${FAILOVER})`);
    expect(run.ms).toBeLessThan(15_000);
  });

  it('fails on a client error in the primary, though the failover region answers, naming both', async () => {
    const denied = { status: 400, type: 'AccessDeniedException', message: 'User is not authorized to perform: secretsmanager:GetSecretValue' };
    const { run } = await fetchVia((region) => (region === REGION ? denied : undefined), name);
    expect(run.code).toBe(1);
    expect(run.termination).toContain(`a client error in either region fails it (failover-region ${FAILOVER}): in ${REGION}: GetSecretValue in ${REGION} failed (HTTP 400)`);
    expect(run.termination).toContain(`in ${FAILOVER}: ${FAILOVER} answered`);
    expect(run.termination).toContain('AWS error code: AccessDeniedException');
  });

  it('fails when the secret is missing from the failover region, naming both', async () => {
    const { run } = await fetchVia(() => undefined, onlyPrimary);
    expect(run.code).toBe(1);
    // moto answers a missing secret with 404, AWS with 400: a client error either way.
    expect(run.termination).toMatch(new RegExp(`in ${REGION}: ${REGION} answered; in ${FAILOVER}: GetSecretValue in ${FAILOVER} failed \\(HTTP 40[04]\\)`));
    expect(run.termination).toContain('AWS error code: ResourceNotFoundException');
  });
});
