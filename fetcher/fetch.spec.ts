import { describe, expect, it, vi } from 'vitest';
import {
  CredentialError,
  errorFacts,
  fetchTargets,
  plan,
  type AwsApi,
  type BatchOutput,
  type GetOutput,
  type ParametersOutput,
} from './fetch.js';
import type { SecretItem } from './spec.js';

const ACCOUNT = '123456789012';
const smArn = (name: string, region = 'eu-west-1') => `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:${name}-AbCdEf`;
const ssmArn = (name: string, region = 'eu-west-1') => `arn:aws:ssm:${region}:${ACCOUNT}:parameter/${name}`;

function serviceError(name: string, message = 'AWS says no', status = 400): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: status } });
}

/** A fake AWS holding named secrets; records every call. */
function fakeAws(opts: {
  secrets?: Record<string, string>;
  parameters?: Record<string, string>;
  batch?: (ids: string[]) => Promise<BatchOutput>;
  get?: (id: string) => Promise<GetOutput>;
} = {}) {
  const secrets = opts.secrets ?? {};
  const parameters = opts.parameters ?? {};
  const calls: Array<{ op: string; region: string; ids: string[] }> = [];
  const lookup = (id: string) => Object.keys(secrets).find((n) => id === n || id.endsWith(`:secret:${n}-AbCdEf`) || id.endsWith(`:secret:${n}`));
  const api: AwsApi = {
    getSecretValue: vi.fn(async (region, input) => {
      calls.push({ op: 'get', region, ids: [input.SecretId as string] });
      if (opts.get) return opts.get(input.SecretId as string);
      const n = lookup(input.SecretId as string);
      if (n === undefined) throw serviceError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      return { ARN: smArn(n), Name: n, VersionId: `v-${n}`, SecretString: secrets[n] };
    }),
    batchGetSecretValue: vi.fn(async (region, input) => {
      const ids = input.SecretIdList as string[];
      calls.push({ op: 'batch', region, ids });
      if (opts.batch) return opts.batch(ids);
      const out: BatchOutput = { SecretValues: [], Errors: [] };
      for (const id of ids) {
        const n = lookup(id);
        if (n === undefined) out.Errors!.push({ SecretId: id, ErrorCode: 'ResourceNotFoundException', Message: "can't find" });
        else out.SecretValues!.push({ ARN: smArn(n), Name: n, VersionId: `v-${n}`, SecretString: secrets[n] });
      }
      return out;
    }),
    getParameters: vi.fn(async (region, input) => {
      const names = input.Names as string[];
      calls.push({ op: 'parameters', region, ids: names });
      const out: ParametersOutput = { Parameters: [], InvalidParameters: [] };
      for (const id of names) {
        const n = id.replace(/^arn:[^:]+:ssm:[^:]+:\d+:parameter\//, '');
        if (n in parameters) out.Parameters!.push({ Name: n.includes('/') ? `/${n}` : n, ARN: ssmArn(n), Value: parameters[n], Version: 3 });
        else out.InvalidParameters!.push(id);
      }
      return out;
    }),
    callerIdentity: vi.fn(async () => `arn:aws:sts::${ACCOUNT}:assumed-role/app/pod`),
    getParametersByPath: vi.fn(async () => ({ Parameters: [] })),
  };
  return { api, calls };
}

const signal = () => new AbortController().signal;

async function run(items: SecretItem[], api: AwsApi, region?: string, envRegion?: string) {
  const p = plan({ items, ...(region !== undefined && { region }) }, envRegion);
  const r = await fetchTargets(p.targets, api, { signal: signal() });
  return { ...r, failures: [...p.failures, ...r.failures], plan: p };
}

describe('plan', () => {
  it('takes the region from the ARN, then the spec, then the environment', () => {
    const items: SecretItem[] = [{ ref: smArn('a', 'us-west-2'), file: 'a' }, { ref: 'b', file: 'b' }];
    expect(plan({ items, region: 'eu-central-1' }, 'ap-south-1').targets.map((t) => t.region)).toEqual(['us-west-2', 'eu-central-1']);
    expect(plan({ items }, 'ap-south-1').targets.map((t) => t.region)).toEqual(['us-west-2', 'ap-south-1']);
  });

  it('refuses a reference with no region, naming it', () => {
    const p = plan({ items: [{ ref: 'db/password', file: 'a' }] });
    expect(p.failures).toEqual([expect.objectContaining({ code: 'FETCH_NO_REGION', ref: 'db/password' })]);
    expect(p.targets).toEqual([]);
  });

  it('fetches a secret once for several items asking for the same version', () => {
    const p = plan({
      region: 'eu-west-1',
      items: [
        { ref: 'db', file: 'a', key: 'user' },
        { ref: 'db', file: 'b', key: 'password' },
        { ref: 'db', file: 'c', versionStage: 'AWSPREVIOUS' },
      ],
    });
    expect(p.targets).toHaveLength(2);
    expect(p.itemTargets.get(0)).toBe(p.itemTargets.get(1));
  });

  it('refuses version selectors on SSM parameters', () => {
    expect(plan({ items: [{ ref: ssmArn('p'), file: 'p', versionStage: 'x' }] }).failures[0]).toMatchObject({ code: 'FETCH_SPEC_INVALID' });
  });
});

describe('fetchTargets', () => {
  it('batches up to 20 secrets per region and fetches versioned ones one by one', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `s${i}`);
    const { api, calls } = fakeAws({ secrets: Object.fromEntries(names.map((n) => [n, `value-${n}`])) });
    const items: SecretItem[] = [
      ...names.map((n) => ({ ref: n, file: n })),
      { ref: smArn('s0', 'us-east-1'), file: 'other-region' },
      { ref: 's1', file: 'prev', versionStage: 'AWSPREVIOUS' },
    ];
    const r = await run(items, api, 'eu-west-1');
    expect(r.failures).toEqual([]);
    expect(r.values.size).toBe(27);
    const batches = calls.filter((c) => c.op === 'batch').map((c) => [c.region, c.ids.length]);
    expect(batches.sort()).toEqual([['eu-west-1', 20], ['eu-west-1', 5]]);
    expect(calls.filter((c) => c.op === 'get').map((c) => c.region).sort()).toEqual(['eu-west-1', 'us-east-1']);
  });

  it('reports each secret a batch could not return, with its own AWS code and hint', async () => {
    const { api } = fakeAws({
      batch: async (ids) => ({
        SecretValues: [{ Name: 'ok', ARN: smArn('ok'), SecretString: 'v' }],
        Errors: ids
          .filter((id) => id !== 'ok')
          .map((id) => ({ SecretId: id, ErrorCode: id === 'denied' ? 'AccessDeniedException' : 'DecryptionFailure', Message: 'no' })),
      }),
    });
    const r = await run(['ok', 'denied', 'kms'].map((ref) => ({ ref, file: ref })), api, 'eu-west-1');
    expect(r.values.size).toBe(1);
    expect(r.failures.map((f) => [f.ref, f.awsCode])).toEqual([
      ['denied', 'AccessDeniedException'],
      ['kms', 'DecryptionFailure'],
    ]);
    expect(r.failures[0]!.hint).toMatch(/secretsmanager:BatchGetSecretValue .* secretsmanager:GetSecretValue on arn:aws:secretsmanager:eu-west-1:<account>:secret:denied-\?\?\?\?\?\?/);
    expect(r.failures[1]!.hint).toMatch(/kms:Decrypt/);
    expect(r.awsFailed).toBe(true);
  });

  it('falls back to GetSecretValue when BatchGetSecretValue itself is denied', async () => {
    const { api, calls } = fakeAws({
      secrets: { a: 'A', b: 'B' },
      batch: async () => {
        throw serviceError('AccessDeniedException', 'not authorized to perform: secretsmanager:BatchGetSecretValue');
      },
    });
    const r = await run([{ ref: 'a', file: 'a' }, { ref: 'b', file: 'b' }], api, 'eu-west-1');
    expect(r.failures).toEqual([]);
    expect(calls.map((c) => c.op)).toEqual(['batch', 'get', 'get']);
  });

  it('matches partial ARNs and complete ARNs in a batch answer', async () => {
    const { api } = fakeAws({ secrets: { a: 'A', b: 'B' } });
    const partial = `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:a`;
    const r = await run([{ ref: partial, file: 'a' }, { ref: smArn('b'), file: 'b' }], api);
    expect(r.failures).toEqual([]);
    expect([...r.values.values()].map((v) => v.text).sort()).toEqual(['A', 'B']);
  });

  it('matches a partial ARN whose name ends like a suffix ("db-secret") to the complete ARN a batch answers with', async () => {
    const { api, calls } = fakeAws({ secrets: { 'app/db-secret': 'DB', 'app/other': 'OTHER' } });
    const looksComplete = `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:app/db-secret`;
    const r = await run([{ ref: looksComplete, file: 'a' }, { ref: 'app/other', file: 'b' }], api, 'eu-west-1');
    expect(calls.map((c) => c.op)).toEqual(['batch']);
    expect(r.failures).toEqual([]);
    expect([...r.values.values()].map((v) => v.text).sort()).toEqual(['DB', 'OTHER']);
  });

  it('prefers the exact ARN when a batch answers both a secret and one named like it plus a suffix', async () => {
    const id = smArn('x');
    const out: BatchOutput = {
      SecretValues: [
        { ARN: `${id}-QwErTy`, Name: 'x-AbCdEf', SecretString: 'LONGER' },
        { ARN: id, Name: 'x', SecretString: 'EXACT' },
      ],
    };
    const { api, calls } = fakeAws({ batch: async () => out });
    const r = await run([{ ref: id, file: 'a' }, { ref: `${id}-QwErTy`, file: 'b' }], api, 'eu-west-1');
    expect(calls.map((c) => c.op)).toEqual(['batch']);
    expect(r.failures).toEqual([]);
    expect(r.values.get(r.plan.itemTargets.get(0)!)?.text).toBe('EXACT');
    expect(r.values.get(r.plan.itemTargets.get(1)!)?.text).toBe('LONGER');
  });

  describe('a name and another account\'s secret of that name', () => {
    const FOREIGN = '999999999999';
    const foreignArn = `arn:aws:secretsmanager:eu-west-1:${FOREIGN}:secret:db-XyZ123`;
    // Secrets Manager as it answers: a name in the caller's account, an ARN wherever it points;
    // the foreign answer first, where a match by order would take it for the name.
    const answer = (id: string) => {
      if (id.startsWith(`arn:aws:secretsmanager:eu-west-1:${FOREIGN}:secret:db`)) return { ARN: foreignArn, Name: 'db', SecretString: 'FOREIGN' };
      const name = id.replace(/^arn:.*:secret:/, '').replace(/-AbCdEf$/, '');
      return { ARN: smArn(name), Name: name, SecretString: name === 'db' ? 'OWN' : `value of ${name}` };
    };
    const multiAccount = () =>
      fakeAws({
        batch: async (ids) => ({ SecretValues: ids.map(answer).sort((a, b) => (a.SecretString === 'FOREIGN' ? -1 : b.SecretString === 'FOREIGN' ? 1 : 0)) }),
        get: async (id) => answer(id),
      });

    it.each([
      ['a complete ARN', foreignArn],
      ['a partial ARN', `arn:aws:secretsmanager:eu-west-1:${FOREIGN}:secret:db`],
    ])('gives each its own value when the other is %s, asking for them in separate calls', async (_kind, foreign) => {
      const { api, calls } = multiAccount();
      const items: SecretItem[] = [
        { ref: 'db', file: 'own' },
        { ref: foreign, file: 'foreign' },
        { ref: 'other', file: 'other' },
        { ref: 'more', file: 'more' },
      ];
      const r = await run(items, api, 'eu-west-1');
      expect(r.failures).toEqual([]);
      const value = (i: number) => r.values.get(r.plan.itemTargets.get(i)!);
      expect([value(0)?.text, value(0)?.arn]).toEqual(['OWN', smArn('db')]);
      expect([value(1)?.text, value(1)?.arn]).toEqual(['FOREIGN', foreignArn]);
      expect(value(2)?.text).toBe('value of other');
      for (const c of calls) expect(c.ids.includes('db') && c.ids.includes(foreign)).toBe(false);
      expect(calls.length).toBe(2);
    });

    it('still batches a name with ARNs of other names', async () => {
      const { api, calls } = multiAccount();
      const r = await run([{ ref: 'db', file: 'a' }, { ref: smArn('other'), file: 'b' }, { ref: 'x', file: 'c' }], api, 'eu-west-1');
      expect(r.failures).toEqual([]);
      expect(calls.map((c) => c.op)).toEqual(['batch']);
    });

    it('uses no answer, and says so, when two different secrets fit one reference', async () => {
      const { api } = fakeAws({
        batch: async () => ({
          SecretValues: [
            { ARN: foreignArn, Name: 'db', SecretString: 'FOREIGN' },
            { ARN: smArn('db'), Name: 'db', SecretString: 'OWN' },
            { ARN: smArn('other'), Name: 'other', SecretString: 'OTHER' },
          ],
        }),
      });
      const r = await run([{ ref: 'db', file: 'a' }, { ref: 'other', file: 'b' }], api, 'eu-west-1');
      expect(r.values.size).toBe(1);
      expect(r.failures).toEqual([
        expect.objectContaining({
          code: 'FETCH_AWS',
          ref: 'db',
          message: `BatchGetSecretValue answered 2 different secrets that fit this reference (${foreignArn}, ${smArn('db')}); none was used`,
        }),
      ]);
    });
  });

  it('explains a missing secret for each kind of reference', async () => {
    const { api } = fakeAws();
    const r = await run(
      [
        { ref: 'missing', file: 'a' },
        { ref: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:partial`, file: 'b' },
        { ref: smArn('complete'), file: 'c' },
        { ref: 'missing', file: 'd', versionStage: 'AWSPREVIOUS' },
      ],
      api,
      'eu-west-1',
    );
    const hints = r.failures.map((f) => f.hint).join('\n');
    expect(r.failures).toHaveLength(4);
    expect(hints).toMatch(/another account needs its complete ARN/);
    expect(hints).toMatch(/partial ARN \(without the 6-character suffix\)/);
    expect(hints).toMatch(/"-AbCdEf" is part of the secret's name/);
    expect(hints).toMatch(/no version with stage AWSPREVIOUS/);
  });

  it('fetches SSM parameters 10 names per call, with decryption, and reports invalid ones per parameter', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `app/p${i}`);
    const { api, calls } = fakeAws({ parameters: Object.fromEntries(names.map((n) => [n, `v-${n}`])) });
    const r = await run([...names, 'app/missing'].map((n) => ({ ref: ssmArn(n), file: n.replace('/', '_') })), api);
    expect(calls.map((c) => c.ids.length)).toEqual([10, 3]);
    expect(vi.mocked(api.getParameters).mock.calls[0]![1].WithDecryption).toBe(true);
    expect(r.values.size).toBe(12);
    expect(r.failures).toEqual([expect.objectContaining({ ref: ssmArn('app/missing'), awsCode: 'ParameterNotFound' })]);
  });

  it('matches SSM parameters of one name in two accounts by ARN', async () => {
    const mine = ssmArn('app/x');
    const shared = `arn:aws:ssm:eu-west-1:210987654321:parameter/app/x`;
    const { api } = fakeAws();
    vi.mocked(api.getParameters).mockImplementation(async () => ({
      Parameters: [
        { Name: '/app/x', ARN: shared, Value: 'SHARED' },
        { Name: '/app/x', ARN: mine, Value: 'MINE' },
      ],
    }));
    const r = await run([{ ref: mine, file: 'a' }, { ref: shared, file: 'b' }], api);
    expect(r.failures).toEqual([]);
    expect(r.values.get(r.plan.itemTargets.get(0)!)?.text).toBe('MINE');
    expect(r.values.get(r.plan.itemTargets.get(1)!)?.text).toBe('SHARED');
    // One name per call, so an answer matched by name can only be that one parameter's.
    expect(vi.mocked(api.getParameters).mock.calls.map((c) => c[1].Names)).toEqual([[mine], [shared]]);
  });

  it('never takes another account\'s SSM parameter of the same name for the one asked', async () => {
    const mine = ssmArn('app/y');
    const { api } = fakeAws();
    vi.mocked(api.getParameters).mockImplementation(async () => ({
      Parameters: [{ Name: '/app/y', ARN: 'arn:aws:ssm:eu-west-1:210987654321:parameter/app/y', Value: 'SHARED' }],
    }));
    const r = await run([{ ref: mine, file: 'a' }], api);
    expect(r.values.size).toBe(0);
    expect(r.failures).toEqual([expect.objectContaining({ ref: mine, message: 'GetParameters answered neither a value nor an error for it' })]);
  });

  it('reports one credential failure for all the references it stopped', async () => {
    const err = new CredentialError('assume-role', 'AccessDenied', 'not authorized to perform sts:AssumeRole');
    const { api } = fakeAws({
      get: async () => {
        throw err;
      },
      batch: async () => {
        throw err;
      },
    });
    const r = await run([{ ref: 'a', file: 'a' }, { ref: 'b', file: 'b' }, { ref: 'c', file: 'c', versionId: 'x' }], api, 'eu-west-1');
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.message).toMatch(/assuming the role failed: .*3 reference\(s\) not fetched: a, b, c/);
    expect(r.failures[0]!.hint).toMatch(/trust policy/);
  });

  it('stops at the deadline, reporting what was not fetched', async () => {
    const { api } = fakeAws({ get: () => new Promise(() => undefined) });
    const ctrl = new AbortController();
    const p = plan({ region: 'eu-west-1', items: [{ ref: 'slow', file: 'a' }] });
    setTimeout(() => ctrl.abort(), 20);
    const r = await fetchTargets(p.targets, api, { signal: ctrl.signal });
    expect(r.failures).toEqual([expect.objectContaining({ code: 'FETCH_DEADLINE', ref: 'slow' })]);
  });

  it('runs at most `concurrency` calls at once', async () => {
    let inFlight = 0;
    let most = 0;
    const { api } = fakeAws({
      get: async (id) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        return { Name: id, SecretString: 'v' };
      },
    });
    const p = plan({ region: 'eu-west-1', items: Array.from({ length: 20 }, (_, i) => ({ ref: `s${i}`, file: `f${i}`, versionStage: 'AWSCURRENT' })) });
    await fetchTargets(p.targets, api, { signal: signal(), concurrency: 3 });
    expect(most).toBe(3);
  });
});

describe('errorFacts', () => {
  it('keeps a service exception\'s code, status and message', () => {
    expect(errorFacts(serviceError('ThrottlingException', 'Rate exceeded', 400))).toEqual({
      code: 'ThrottlingException',
      message: 'Rate exceeded',
      status: 400,
      aborted: false,
    });
  });

  it('drops the message of anything else, which may quote a response body', () => {
    const e = Object.assign(new SyntaxError('Unexpected token h in JSON at position 0: "hunter2"'), {});
    expect(errorFacts(e)).toEqual({ code: 'SyntaxError', aborted: false });
    expect(errorFacts(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toEqual({ code: 'ECONNREFUSED', aborted: false });
  });
});

describe('what the fleet can afford', () => {
  const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
  const secrets = Object.fromEntries(names.map((n) => [n, `value-${n}`]));
  const items: SecretItem[] = names.map((n) => ({ ref: n, file: n }));
  const throttledBatch = (how: unknown[]) => async (ids: string[]) => {
    how.push(ids.length);
    throw serviceError('ThrottlingException', 'Rate exceeded');
  };

  it('at start, asks for the batch fail-fast and splits it into GetSecretValue calls when AWS throttles it', async () => {
    const sizes: unknown[] = [];
    const { api, calls } = fakeAws({ secrets, batch: throttledBatch(sizes) });
    const p = plan({ region: 'eu-west-1', items });
    const r = await fetchTargets(p.targets, api, { signal: signal() });
    expect(r.failures).toEqual([]);
    expect(r.values.size).toBe(20);
    expect(r.splitBatches).toBe(1);
    expect(calls.map((c) => c.op)).toEqual(['batch', ...Array(20).fill('get')]);
    expect(vi.mocked(api.batchGetSecretValue).mock.calls[0]![3]).toEqual({ failFast: true });
  });

  it('on refresh, lets the batch be retried (it pays per call), and still splits it once the retries are spent', async () => {
    const { api, calls } = fakeAws({ secrets, batch: throttledBatch([]) });
    const p = plan({ region: 'eu-west-1', items });
    const r = await fetchTargets(p.targets, api, { signal: signal(), mode: 'refresh' });
    expect(r.failures).toEqual([]);
    expect(vi.mocked(api.batchGetSecretValue).mock.calls[0]![3]).toEqual({ failFast: false });
    expect(calls.filter((c) => c.op === 'get')).toHaveLength(20);
  });

  it('an unthrottled pod makes one batch call, as before', async () => {
    const { api, calls } = fakeAws({ secrets });
    await fetchTargets(plan({ region: 'eu-west-1', items }).targets, api, { signal: signal() });
    expect(calls.map((c) => c.op)).toEqual(['batch']);
  });

  it('a call AWS kept throttling is reported as FETCH_THROTTLED: the API, its quota, how long it tried, the hint', async () => {
    const { api } = fakeAws({
      get: async () => {
        await new Promise((r) => setTimeout(r, 120));
        throw serviceError('ThrottlingException', 'Rate exceeded');
      },
    });
    api.throttled = () => [{ api: 'GetSecretValue', region: 'eu-west-1', count: 7, firstAt: 0, lastAt: 100 }];
    const r = await run([{ ref: 'db', file: 'db' }], api, 'eu-west-1');
    expect(r.failures).toHaveLength(1);
    const f = r.failures[0]!;
    expect(f).toMatchObject({ code: 'FETCH_THROTTLED', ref: 'db', awsCode: 'ThrottlingException' });
    expect(f.message).toMatch(/^GetSecretValue in eu-west-1 was throttled by AWS \(ThrottlingException\) for 0\.\d s of retries, 7 throttled answer\(s\) in this pod; the fetcher gave up\. Quota: 10,000 requests per second per account and Region \(not adjustable; https:\/\/docs\.aws\.amazon\.com\/secretsmanager\/latest\/userguide\/reference_limits\.html\)$/);
    expect(f.hint).toMatch(/raise it where AWS allows, spread the rollout \(fewer pods starting at once\), or give pods fewer secrets/);
  });

  it('names the SSM quota and the higher-throughput setting for GetParameters', async () => {
    const { api } = fakeAws();
    api.getParameters = async () => {
      throw serviceError('ThrottlingException', 'Rate exceeded');
    };
    const r = await run([{ ref: ssmArn('p'), file: 'p' }], api);
    expect(r.failures[0]!.message).toContain('Quota: 40 requests per second per account and Region, shared with GetParameter and GetParametersByPath; 3,000 with the paid higher-throughput setting');
  });

  it('a deadline that passes while AWS throttles says so', async () => {
    const { api } = fakeAws({ get: () => new Promise(() => undefined) });
    api.throttled = () => [{ api: 'GetSecretValue', region: 'eu-west-1', count: 3, firstAt: 1_000, lastAt: 3_500 }];
    const p = plan({ region: 'eu-west-1', items: [{ ref: 'db', file: 'db' }] });
    const r = await fetchTargets(p.targets, api, { signal: AbortSignal.timeout(20) });
    expect(r.failures[0]).toMatchObject({ code: 'FETCH_DEADLINE' });
    expect(r.failures[0]!.message).toContain('while AWS throttled this pod\'s calls (GetSecretValue in eu-west-1: 3 throttled answer(s) over 2.5 s)');
    expect(r.failures[0]!.hint).toContain('spread the rollout');
  });

  it('STS throttling that leaves the pod without credentials is reported with the STS quota', async () => {
    const { api } = fakeAws({
      get: async () => {
        throw new CredentialError('credentials', 'Throttling', 'Rate exceeded');
      },
    });
    const r = await run([{ ref: 'db', file: 'db' }], api, 'eu-west-1');
    expect(r.failures[0]).toMatchObject({ code: 'FETCH_THROTTLED', awsCode: 'Throttling' });
    expect(r.failures[0]!.message).toContain('AssumeRoleWithWebIdentity (STS) was throttled by AWS (Throttling)');
    expect(r.failures[0]!.message).toContain('Quota: 600 requests per second per account and Region');
  });
});
