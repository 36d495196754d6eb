// fetchWithFailover: the Secrets Store CSI provider's failoverRegion rules, per region, with a fake
// AWS whose answer depends on the region asked.

import { describe, expect, it } from 'vitest';
import { fetchWithFailover, inRegion, plan, type AwsApi, type GetOutput } from './fetch.js';
import { parseReference } from './reference.js';

const ACCOUNT = '123456789012';
const arn = (region: string) => `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:db-AbCdEf`;
const status = (name: string, code: number) =>
  Object.assign(new Error(`${name} said so`), { name, $fault: code < 500 ? 'client' : 'server', $metadata: { httpStatusCode: code } });

type Answer = 'value' | 'hang' | Error;

function regionalAws(answers: Record<string, Answer>): { api: AwsApi; asked: string[] } {
  const asked: string[] = [];
  const get = async (region: string, id: string): Promise<GetOutput> => {
    asked.push(`${region} ${id}`);
    const a = answers[region];
    if (a === 'hang' || a === undefined) return new Promise(() => undefined);
    if (a instanceof Error) throw a;
    return { ARN: id.startsWith('arn:') ? id : arn(region), Name: 'db', SecretString: `value from ${region}` };
  };
  const api: AwsApi = {
    getSecretValue: (region, input) => get(region, input.SecretId as string),
    batchGetSecretValue: async () => ({}),
    getParameters: async () => ({}),
    getParametersByPath: async () => ({}),
    callerIdentity: async () => 'arn:aws:sts::123456789012:assumed-role/web/team-a.web',
  };
  return { api, asked };
}

async function run(answers: Record<string, Answer>, ref = arn('us-east-1'), ms = 200) {
  const { targets } = plan({ items: [{ ref, file: 'f' }] }, 'us-east-1');
  const { api, asked } = regionalAws(answers);
  const r = await fetchWithFailover(targets, 'us-east-2', api, { signal: AbortSignal.timeout(ms) });
  return { ...r, asked, key: targets[0]!.key };
}

describe('fetchWithFailover', () => {
  it('asks both regions, the ARN rewritten for the failover one, and keeps the primary value', async () => {
    const r = await run({ 'us-east-1': 'value', 'us-east-2': 'value' });
    expect(r.asked.sort()).toEqual([`us-east-1 ${arn('us-east-1')}`, `us-east-2 ${arn('us-east-2')}`]);
    expect(r.values.get(r.key)?.text).toBe('value from us-east-1');
    expect(r.failures).toEqual([]);
    expect(r.failedOver).toBe(0);
  });

  it.each([
    ['a 5xx', status('InternalServiceError', 500)],
    ['a network error', Object.assign(new Error('connect ECONNREFUSED'), { name: 'Error', code: 'ECONNREFUSED' })],
    ['no answer before the deadline', 'hang' as const],
  ])('takes the failover value when the primary gives %s', async (_what, answer) => {
    const r = await run({ 'us-east-1': answer, 'us-east-2': 'value' });
    expect(r.failures).toEqual([]);
    expect(r.values.get(r.key)?.text).toBe('value from us-east-2');
    expect(r.values.get(r.key)?.arn).toBe(arn('us-east-2'));
    expect(r.failedOver).toBe(1);
  });

  it('keeps the primary value when only the failover region cannot answer', async () => {
    const r = await run({ 'us-east-1': 'value', 'us-east-2': status('InternalServiceError', 503) });
    expect(r.failures).toEqual([]);
    expect(r.values.get(r.key)?.text).toBe('value from us-east-1');
  });

  it.each([
    ['the primary', { 'us-east-1': status('AccessDeniedException', 400), 'us-east-2': 'value' as const }],
    ['the failover region', { 'us-east-1': 'value' as const, 'us-east-2': status('ResourceNotFoundException', 400) }],
  ])('fails on a client error from %s, naming both regions', async (_which, answers) => {
    const r = await run(answers);
    expect(r.values.size).toBe(0);
    expect(r.failures).toHaveLength(1);
    const f = r.failures[0]!;
    expect(f).toMatchObject({ code: 'FETCH_AWS', ref: arn('us-east-1') });
    expect(f.message).toMatch(/^a client error in either region fails it \(failover-region us-east-2\): in us-east-1: .*; in us-east-2: /);
    expect(f.message).toContain('us-east-1');
    expect(f.message).toContain('us-east-2');
    expect(f.awsCode).toMatch(/AccessDeniedException|ResourceNotFoundException/);
    expect(f.hint).toBeDefined();
  });

  it('fails when neither region answers, saying what each did', async () => {
    const r = await run({ 'us-east-1': status('InternalServiceError', 500), 'us-east-2': 'hang' });
    expect(r.failures).toEqual([
      expect.objectContaining({
        code: 'FETCH_AWS',
        message: expect.stringMatching(/^neither its region nor the failover region us-east-2 answered: in us-east-1: GetSecretValue in us-east-1 failed \(HTTP 500\).*; in us-east-2: us-east-2 did not answer before the deadline$/),
      }),
    ]);
  });

  it('asks a reference already in the failover region once', async () => {
    const r = await run({ 'us-east-2': 'value' }, arn('us-east-2'));
    expect(r.asked).toEqual([`us-east-2 ${arn('us-east-2')}`]);
    expect(r.values.get(r.key)?.text).toBe('value from us-east-2');
  });

  it('asks a name in both regions as it is', async () => {
    const r = await run({ 'us-east-1': status('InternalServiceError', 500), 'us-east-2': 'value' }, 'db');
    expect(r.asked.sort()).toEqual(['us-east-1 db', 'us-east-2 db']);
    expect(r.failedOver).toBe(1);
  });
});

describe('inRegion', () => {
  it('puts the region into an SSM or Secrets Manager ARN and leaves a name alone', () => {
    const ref = (s: string) => ('reference' in parseReference(s) ? (parseReference(s) as { reference: never }).reference : undefined)!;
    expect(inRegion(ref(arn('us-east-1')), 'eu-west-1')).toMatchObject({ id: arn('eu-west-1'), region: 'eu-west-1' });
    expect(inRegion(ref(`arn:aws:ssm:us-east-1:${ACCOUNT}:parameter/a/b`), 'eu-west-1').id).toBe(`arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/a/b`);
    expect(inRegion(ref('db'), 'eu-west-1')).toEqual(ref('db'));
  });
});

describe('failover on every refresh', () => {
  it('a refresh poll asks both regions again: a primary outage serves the replica, a refusal in either keeps the files', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execute } = await import('./main.js');
    const { Refresher } = await import('./refresh.js');
    const dir = mkdtempSync(join(tmpdir(), 'failover-refresh-'));
    try {
      const answers: Record<string, Answer> = { 'us-east-1': 'value', 'us-east-2': 'value' };
      const { api } = regionalAws(answers);
      const spec = { version: 1 as const, dir, mode: 0o444, region: 'us-east-1', failoverRegion: 'us-east-2', items: [{ ref: arn('us-east-1'), file: 'db' }], refresh: { intervalSeconds: 60 } };
      const credentials = { source: { kind: 'web-identity' as const, tokenFile: '/t', roleArn: 'arn:aws:iam::123456789012:role/app' } };
      expect(await execute(spec, { credentials, api: () => api })).toMatchObject({ ok: true, failedOver: 0 });
      expect(readFileSync(join(dir, 'db'), 'utf8')).toBe('value from us-east-1');
      const r = new Refresher(spec, { api, now: () => Date.now(), random: () => 0.5, sleep: async () => {}, log: () => {} });
      await r.resume();

      answers['us-east-1'] = status('InternalServiceError', 503);
      expect(await r.cycle(AbortSignal.timeout(2_000))).toMatchObject({ ok: true, changed: ['db'] });
      expect(readFileSync(join(dir, 'db'), 'utf8')).toBe('value from us-east-2');

      answers['us-east-1'] = 'value';
      answers['us-east-2'] = status('AccessDeniedException', 400);
      expect(await r.cycle(AbortSignal.timeout(2_000))).toMatchObject({ ok: false });
      expect(readFileSync(join(dir, 'db'), 'utf8')).toBe('value from us-east-2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
