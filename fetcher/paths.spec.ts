import type { BatchGetSecretValueCommandInput } from '@aws-sdk/client-secrets-manager';
import type { GetParametersByPathCommandInput } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import type { AwsApi, BatchOutput, ParametersByPathOutput } from './fetch.js';
import { fetchPaths, planPaths, PARAMETERS_PER_PAGE, SECRETS_PER_PAGE } from './paths.js';
import { MAX_PATH_SECRETS } from './spec.js';

const ACCOUNT = '123456789012';
const smArn = (name: string, account = ACCOUNT) => `arn:aws:secretsmanager:eu-west-1:${account}:secret:${name}-AbCdEf`;

/** Secrets Manager and SSM as far as listing goes: pages of the documented sizes, a token to the next. */
function fakeApi(secrets: Array<{ name: string; account?: string }>, parameters: string[]) {
  const pages: string[] = [];
  const page = <T>(all: T[], size: number, token: string | undefined) => {
    const from = token === undefined ? 0 : Number(token);
    return { items: all.slice(from, from + size), next: from + size < all.length ? String(from + size) : undefined };
  };
  const api: AwsApi = {
    getSecretValue: async () => ({}),
    getParameters: async () => ({}),
    callerIdentity: async () => 'me',
    batchGetSecretValue: async (_region, input: BatchGetSecretValueCommandInput): Promise<BatchOutput> => {
      pages.push(`batch ${JSON.stringify(input.Filters)} ${input.MaxResults} ${input.NextToken ?? '-'}`);
      // The service filters by prefix; a case-insensitive match is checked again by the fetcher.
      const prefix = input.Filters![0]!.Values![0]!.toLowerCase();
      const { items, next } = page(secrets.filter((s) => s.name.toLowerCase().startsWith(prefix)), input.MaxResults!, input.NextToken);
      return { SecretValues: items.map((s) => ({ Name: s.name, ARN: smArn(s.name, s.account), VersionId: `v-${s.name}`, SecretString: `VALUE-${s.name}` })), ...(next && { NextToken: next }) };
    },
    getParametersByPath: async (_region, input: GetParametersByPathCommandInput): Promise<ParametersByPathOutput> => {
      pages.push(`path ${input.Path} ${input.Recursive} ${input.WithDecryption} ${input.MaxResults} ${input.NextToken ?? '-'}`);
      const { items, next } = page(parameters.filter((p) => p.startsWith(`${input.Path}/`)), input.MaxResults!, input.NextToken);
      return { Parameters: items.map((p) => ({ Name: p, Value: `VALUE-${p}`, Version: 2, ARN: `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter${p}` })), ...(next && { NextToken: next }) };
    },
  };
  return { api, pages };
}

const run = async (refs: string[], api: AwsApi) => {
  const p = planPaths({ region: 'eu-west-1', items: refs.map((ref) => ({ ref, file: 'd' })) });
  const r = await fetchPaths(p.targets, api, { signal: new AbortController().signal });
  return { ...r, plan: p };
};

describe('whole paths', () => {
  it('lists every Secrets Manager secret under a prefix, page by page, named by the rest of the name', async () => {
    const names = Array.from({ length: 45 }, (_, i) => `prod/app/s${String(i).padStart(2, '0')}`);
    const { api, pages } = fakeApi([...names.map((name) => ({ name })), { name: 'prod/other' }, { name: 'PROD/APP/upper' }, { name: 'prod/app/' }], []);
    const r = await run(['prod/app/*'], api);
    expect(r.failures).toEqual([]);
    const members = [...r.values.values()][0]!.members!;
    expect(members.map((m) => m.name)).toEqual(names.map((n) => n.slice('prod/app/'.length)));
    expect(members[0]!.value).toEqual({ text: 'VALUE-prod/app/s00', arn: smArn('prod/app/s00'), versionId: 'v-prod/app/s00' });
    expect(pages).toEqual([0, 20, 40].map((from) => `batch [{"Key":"name","Values":["prod/app/"]}] ${SECRETS_PER_PAGE} ${from === 0 ? '-' : from}`));
  });

  it("keeps only the account an ARN names (the filter lists the caller's own)", async () => {
    const { api } = fakeApi([{ name: 'prod/a' }, { name: 'prod/b', account: '210987654321' }], []);
    const r = await run([`arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:prod/*`], api);
    expect([...r.values.values()][0]!.members!.map((m) => m.name)).toEqual(['a']);
  });

  it('lists every SSM parameter under a path, recursively and decrypted, page by page', async () => {
    const params = Array.from({ length: 12 }, (_, i) => `/prod/app/p${i}`).concat(['/prod/app/nested/deep', '/prod/application']);
    const { api, pages } = fakeApi([], params);
    const r = await run([`arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/prod/app/*`], api);
    expect(r.failures).toEqual([]);
    expect([...r.values.values()][0]!.members!.map((m) => m.name)).toEqual([...Array.from({ length: 12 }, (_, i) => `p${i}`), 'nested/deep'].sort());
    expect(pages).toEqual([`path /prod/app true true ${PARAMETERS_PER_PAGE} -`, `path /prod/app true true ${PARAMETERS_PER_PAGE} 10`]);
  });

  it(`fails with the count past ${MAX_PATH_SECRETS} secrets, never with a value`, async () => {
    const { api } = fakeApi(Array.from({ length: MAX_PATH_SECRETS + 7 }, (_, i) => ({ name: `big/s${i}` })), []);
    const r = await run(['big/*'], api);
    expect(r.values.size).toBe(0);
    expect(r.failures).toEqual([
      { code: 'FETCH_TOO_MANY', ref: 'big/*', message: `${MAX_PATH_SECRETS + 7} secrets are under this path, over the maximum of ${MAX_PATH_SECRETS}`, hint: 'name a narrower path, or split it into several references' },
    ]);
    expect(JSON.stringify(r.failures)).not.toContain('VALUE');
  });

  it('an empty path is an empty directory, not a failure', async () => {
    const { api } = fakeApi([], []);
    const r = await run(['none/*'], api);
    expect(r.failures).toEqual([]);
    expect([...r.values.values()][0]).toEqual({ members: [] });
  });

  it('reports an AWS refusal with the IAM actions to allow', async () => {
    const { api } = fakeApi([], []);
    api.batchGetSecretValue = async () => {
      throw Object.assign(new Error('not authorized'), { name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 } });
    };
    const r = await run(['prod/*'], api);
    expect(r.awsFailed).toBe(true);
    expect(r.failures[0]).toMatchObject({ code: 'FETCH_AWS', awsCode: 'AccessDeniedException', hint: expect.stringContaining('secretsmanager:BatchGetSecretValue and secretsmanager:ListSecrets') });
  });

  it('a name without a region fails with FETCH_NO_REGION', () => {
    expect(planPaths({ items: [{ ref: 'prod/*', file: 'd' }] }).failures[0]!.code).toBe('FETCH_NO_REGION');
  });
});

describe('a path AWS keeps throttling', () => {
  it('fails with FETCH_THROTTLED naming GetParametersByPath, its quota and how long the listing tried', async () => {
    const { api } = fakeApi([], []);
    api.getParametersByPath = async () => {
      await new Promise((r) => setTimeout(r, 120));
      throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 } });
    };
    const r = await run([`arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/prod/app/*`], api);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatchObject({ code: 'FETCH_THROTTLED', awsCode: 'ThrottlingException' });
    expect(r.failures[0]!.message).toMatch(/^GetParametersByPath in eu-west-1 was throttled by AWS \(ThrottlingException\) for 0\.[1-9] s of retries; the fetcher gave up\. Quota: 40 requests per second/);
    expect(r.awsFailed).toBe(true);
  });
});
