import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatReport, quoted } from './errors.js';
import type { AwsApi } from './fetch.js';
import type { CredentialChoice } from './identity.js';
import { execute, parseArgs } from './main.js';
import { MARKER_FILE, type FetchSpec } from './spec.js';

const SECRETS: Record<string, string> = {
  db: JSON.stringify({ username: 'admin', password: 'VALUE-pw-123' }),
  token: 'VALUE-token-xyz',
};

const api: AwsApi = {
  async getSecretValue(_region, input) {
    const v = SECRETS[input.SecretId as string];
    if (v === undefined) throw Object.assign(new Error("can't find"), { name: 'ResourceNotFoundException', $fault: 'client' });
    return { Name: input.SecretId, ARN: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${input.SecretId}-AbCdEf`, VersionId: 'v1', SecretString: v };
  },
  async batchGetSecretValue(region, input) {
    const ids = input.SecretIdList as string[];
    const values = await Promise.all(ids.filter((id) => id in SECRETS).map((id) => this.getSecretValue(region, { SecretId: id }, new AbortController().signal)));
    return {
      SecretValues: values,
      Errors: ids.filter((id) => !(id in SECRETS)).map((id) => ({ SecretId: id, ErrorCode: 'ResourceNotFoundException', Message: 'no' })),
    };
  },
  async getParameters() {
    return { Parameters: [], InvalidParameters: [] };
  },
  async getParametersByPath() {
    return { Parameters: [] };
  },
  async callerIdentity() {
    return 'arn:aws:sts::123456789012:assumed-role/app/ns.pod';
  },
};

/** The pod's identity as the fetcher sees it under IRSA (the fake API never uses it). */
const IRSA: CredentialChoice = { source: { kind: 'web-identity', roleArn: 'arn:aws:iam::123456789012:role/app', tokenFile: '/token' } };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fetcher-main-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const spec = (items: FetchSpec['items']): FetchSpec => ({ version: 1, dir, mode: 0o444, region: 'eu-west-1', items });

describe('execute', () => {
  it('writes every file and then the marker, with references and versions but no values', async () => {
    const r = await execute(
      spec([
        { ref: 'db', file: 'db/password', key: 'password' },
        { ref: 'token', file: 'token' },
      ]),
      { credentials: IRSA, api: () => api },
    );
    expect(r).toEqual({ ok: true, files: 2, secrets: 2, failedOver: 0 });
    expect(readFileSync(join(dir, 'db/password'), 'utf8')).toBe('VALUE-pw-123');
    const marker = readFileSync(join(dir, MARKER_FILE), 'utf8');
    expect(JSON.parse(marker).secrets).toEqual([
      { ref: 'db', arn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf', versionId: 'v1', files: ['db/password'] },
      { ref: 'token', arn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-AbCdEf', versionId: 'v1', files: ['token'] },
    ]);
    expect(marker).not.toContain('VALUE');
  });

  it('writes nothing when any item fails, and reports every failure with the identity', async () => {
    const r = await execute(
      spec([
        { ref: 'token', file: 'token' },
        { ref: 'db', file: 'x', key: 'nope' },
        { ref: 'missing', file: 'm' },
        { ref: 'token', file: 't2', key: 'k' },
      ]),
      { credentials: IRSA, api: () => api },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.failures.map((f) => [f.code, f.ref])).toEqual([
      ['FETCH_AWS', 'missing'],
      ['FETCH_KEY_MISSING', 'db'],
      ['FETCH_NOT_JSON', 'token'],
    ]);
    expect(r.context.identity).toBe('arn:aws:sts::123456789012:assumed-role/app/ns.pod');
    expect(readdirSync(dir)).toEqual([]);
    const report = formatReport(r.failures, r.context, r.redact);
    expect(report).not.toContain('VALUE');
  });

  it('redacts a fetched value that would reach the report through quoted text', async () => {
    const r = await execute(spec([{ ref: 'db', file: 'a', key: 'password' }, { ref: 'missing', file: 'b' }]), { credentials: IRSA, api: () => api });
    if (r.ok) throw new Error('expected a failure');
    const text = formatReport([...r.failures, { code: 'FETCH_AWS', message: `echoed ${quoted('the value VALUE-pw-123 here')}` }], r.context, r.redact);
    expect(text).toContain('echoed the value [REDACTED] here');
    expect(text).not.toContain('VALUE-pw-123');
  });

  describe('reports', () => {
    const ACCOUNT_ARN = (name: string) => `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}`;
    // A secret of everyday strings: a region, an account id, short words.
    const config = JSON.stringify({ region: 'us-east-1', account: '123456789012', dbname: 'prod', user: 'app', host: 'db' });
    const denied = (id: string) =>
      Object.assign(
        new Error(
          `User: arn:aws:sts::123456789012:assumed-role/web/team-a.web is not authorized to perform: secretsmanager:GetSecretValue on resource: ${id} because no identity-based policy allows the secretsmanager:GetSecretValue action`,
        ),
        { name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 } },
      );
    const aws = (secrets: Record<string, string>, batch?: AwsApi['batchGetSecretValue']): AwsApi => ({
      ...api,
      async getSecretValue(_region, input) {
        const id = input.SecretId as string;
        if (!(id in secrets)) throw denied(id);
        return { Name: id, ARN: `${id}-AbCdEf`, VersionId: 'v1', SecretString: secrets[id] };
      },
      ...(batch && { batchGetSecretValue: batch }),
      async callerIdentity() {
        return 'arn:aws:sts::123456789012:assumed-role/web/team-a.web';
      },
    });

    it('stay readable when a fetched secret holds a region, an account id and short words', async () => {
      const ok = ACCOUNT_ARN('prod/config');
      const missing = ACCOUNT_ARN('prod/missing');
      const r = await execute(
        { version: 1, dir, mode: 0o444, region: 'us-east-1', items: [{ ref: ok, file: 'c', key: 'dbname', versionStage: 'AWSCURRENT' }, { ref: missing, file: 'm', versionStage: 'AWSCURRENT' }] },
        { credentials: IRSA, api: () => aws({ [ok]: config }) },
      );
      if (r.ok) throw new Error('expected a failure');
      const report = formatReport(r.failures, r.context, r.redact);
      expect(report).not.toContain('[REDACTED]');
      expect(report).toContain(`FETCH_AWS: reference ${missing}: GetSecretValue in us-east-1 failed (HTTP 400): User: arn:aws:sts::123456789012:assumed-role/web/team-a.web is not authorized`);
      expect(report).toContain(`on resource: ${missing} because`);
      expect(report).toContain('Identity: arn:aws:sts::123456789012:assumed-role/web/team-a.web.');
    });

    it('hide a value an endpoint echoes, whole or cut short, and leave the rest of its message', async () => {
      const ok = ACCOUNT_ARN('prod/token');
      const missing = ACCOUNT_ARN('prod/other');
      const token = 'tok-7f3a9c1e5b2d4f6a8c0e2b4d6f8a1c3e';
      const echo: AwsApi = {
        ...aws({ [ok]: token }),
        async getSecretValue(region, input) {
          if (input.SecretId === ok) return { Name: ok, ARN: `${ok}-AbCdEf`, SecretString: token };
          throw Object.assign(new Error(`saw ${token} and ${token.slice(0, 20)} before`), { name: 'ValidationException', $fault: 'client' });
        },
      };
      // One at a time, so the token is fetched before the echo.
      const r = await execute({ version: 1, dir, mode: 0o444, region: 'us-east-1', items: [{ ref: ok, file: 'a', versionStage: 'AWSCURRENT' }, { ref: missing, file: 'b', versionStage: 'AWSCURRENT' }] }, {
        credentials: IRSA,
        api: () => echo,
      });
      if (r.ok) throw new Error('expected a failure');
      const report = formatReport(r.failures, r.context, r.redact);
      expect(report).not.toContain(token.slice(0, 16));
      expect(report).toContain('saw [REDACTED] and [REDACTED] before');
    });

    it('an unexpected error never prints a value, and says what it was', async () => {
      const first = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:first';
      const pin = 987654321123;
      const buggy: AwsApi = {
        ...aws({ [first]: JSON.stringify({ pin }) }),
        async batchGetSecretValue(_region, input) {
          // Answered after the other secret arrived; reading it throws as a bug would.
          await new Promise((r) => setTimeout(r, 20));
          const ids = input.SecretIdList as string[];
          return {
            SecretValues: ids.map((id) => ({
              ARN: `${id}-AbCdEf`,
              Name: id,
              get SecretString(): string {
                throw new TypeError(`The "data" argument must be of type string. Received type number (${pin})`);
              },
            })),
          };
        },
      };
      const r = await execute(
        {
          version: 1,
          dir,
          mode: 0o444,
          region: 'us-east-1',
          items: [{ ref: first, file: 'f', versionStage: 'AWSCURRENT' }, { ref: 'a', file: 'a' }, { ref: 'b', file: 'b' }],
        },
        { credentials: IRSA, api: () => buggy },
      );
      if (r.ok) throw new Error('expected a failure');
      const report = formatReport(r.failures, r.context, r.redact);
      expect(report).toContain('FETCH_AWS: unexpected TypeError: The "data" argument must be of type string. Received type number ([REDACTED]).');
      expect(report).not.toContain(String(pin));
      expect(readdirSync(dir)).toEqual([]);
    });
  });

  it('names a reference that resolves to no region, and does not ask STS who it is', async () => {
    const r = await execute({ version: 1, dir, mode: 0o444, items: [{ ref: 'token', file: 't' }] }, { credentials: IRSA, api: () => api });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.failures).toEqual([expect.objectContaining({ code: 'FETCH_NO_REGION', ref: 'token' })]);
    expect(r.context).toEqual({});
    expect(existsSync(join(dir, MARKER_FILE))).toBe(false);
  });

  it('keeps the identity lookup for the report inside the deadline, even when STS never answers', async () => {
    const hung: AwsApi = { ...api, callerIdentity: () => new Promise(() => undefined) };
    const started = Date.now();
    const r = await execute({ ...spec([{ ref: 'missing', file: 'm' }]), timeouts: { deadlineSeconds: 0.3 } }, { credentials: IRSA, api: () => hung });
    expect(Date.now() - started).toBeLessThan(2_000);
    if (r.ok) throw new Error('expected a failure');
    expect(r.context).toEqual({ identityError: 'STS GetCallerIdentity failed: no answer in time' });
  });

  it('does not ask STS who it is once the deadline has passed', async () => {
    const callerIdentity = vi.fn(() => new Promise<string>(() => undefined));
    const hung: AwsApi = { ...api, getSecretValue: () => new Promise(() => undefined), callerIdentity };
    const started = Date.now();
    const r = await execute({ ...spec([{ ref: 'slow', file: 's' }]), timeouts: { deadlineSeconds: 0.2 } }, { credentials: IRSA, api: () => hung });
    expect(Date.now() - started).toBeLessThan(1_000);
    if (r.ok) throw new Error('expected a failure');
    expect(r.failures).toEqual([expect.objectContaining({ code: 'FETCH_DEADLINE', ref: 'slow' })]);
    expect(r.context).toEqual({ identityError: 'not asked, the fetch deadline had passed' });
    expect(callerIdentity).not.toHaveBeenCalled();
  });

  it('copes with a secret of deeply nested JSON: raw is written, explode is refused naming the reference', async () => {
    const deep = `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)},"b":"VALUE-deep"}`;
    const nested: AwsApi = {
      ...api,
      getSecretValue: async (_region, input) => ({ Name: input.SecretId, ARN: 'arn:x', VersionId: 'v1', SecretString: deep }),
    };
    const raw = await execute(spec([{ ref: 'deep', file: 'deep.json' }]), { credentials: IRSA, api: () => nested });
    expect(raw).toEqual({ ok: true, files: 1, secrets: 1, failedOver: 0 });
    expect(readFileSync(join(dir, 'deep.json'), 'utf8')).toBe(deep);
    const exploded = await execute(spec([{ ref: 'deep', explode: true, file: 'x' }]), { credentials: IRSA, api: () => nested });
    if (exploded.ok) throw new Error('expected a failure');
    expect(exploded.failures).toEqual([expect.objectContaining({ code: 'FETCH_FORMAT', ref: 'deep' })]);
    expect(formatReport(exploded.failures, exploded.context, exploded.redact)).not.toContain('VALUE-deep');
    expect(exploded.redact([quoted('x VALUE-deep x')].map((t) => t.slice(1, -1)))).toEqual(['x [REDACTED] x']);
  });

  it('uses AWS_REGION from the environment when the spec has none', async () => {
    const r = await execute({ version: 1, dir, mode: 0o444, items: [{ ref: 'token', file: 't' }] }, { credentials: IRSA, api: () => api, envRegion: 'eu-west-1' });
    expect(r.ok).toBe(true);
  });
});

describe('parseArgs', () => {
  it.each<[string[], ReturnType<typeof parseArgs>]>([
    [[], {}],
    [['fetch'], {}],
    [['fetch', '--dir', '/tmp/x'], { dir: '/tmp/x' }],
    [['--dir=/tmp/y'], { dir: '/tmp/y' }],
    [['fetch', '--help'], { help: true }],
    [['--dir'], { error: '--dir needs a path' }],
    [['--dir', 'relative'], { error: '--dir must be an absolute path (got "relative")' }],
    [['--verbose'], { error: 'unknown argument "--verbose"' }],
  ])('%j', (argv, expected) => {
    expect(parseArgs(argv)).toEqual(expected);
  });
});
