// Whose credentials the fetcher uses: the pod's own identity (IRSA, EKS Pod Identity, then the
// role-arn chain) or none. A stand-in for the instance metadata service answers on 127.0.0.1
// (AWS_EC2_METADATA_SERVICE_ENDPOINT) as it does for pods on nodes with a hop limit of 2, and a
// recording proxy in front of the emulator shows which access key signed every AWS call.

import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAwsProxy, type AwsProxy } from '../helpers/aws-proxy.js';
import { startInstanceMetadata, startPodIdentityAgent, type CredentialEndpoint } from '../helpers/credential-endpoints.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

describe.skipIf(skip !== false)(`fetcher identity${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let imds: CredentialEndpoint;
  let proxy: AwsProxy;
  // Instance metadata reachable from the pod, as on a node with hop limit 2.
  const node = () => ({ AWS_EC2_METADATA_DISABLED: undefined, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint, AWS_REGION: REGION });

  beforeEach(async () => {
    imds = await startInstanceMetadata();
    proxy = await startAwsProxy(c.awsEndpoint);
  });
  afterEach(async () => {
    await imds.close();
    await proxy.close();
  });
  afterAll(() => scratch.remove());

  const secret = async (value: string) => {
    const name = unique('identity');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
    return name;
  };

  it.each<[string, Record<string, string>]>([
    ['nothing', {}],
    ['static keys', { AWS_ACCESS_KEY_ID: 'AKIASTATICKEYS', AWS_SECRET_ACCESS_KEY: 'static-secret' }],
    ['the opt-in set to deny', { SECRET_INJECTOR_NODE_CREDENTIALS: 'deny' }],
  ])('with no pod identity (%s) fails closed: no metadata request, no AWS call, no file', async (_what, extra) => {
    const names = [await secret('NODE-MUST-NOT-READ'), unique('other')];
    const run = await runFetcher(c, scratch, { region: REGION, items: names.map((n, i) => ({ ref: n, file: `f${i}` })) }, { ...node(), ...extra }, {
      endpoint: proxy.endpoint,
    });
    expect(run.code).toBe(1);
    expect(imds.requests).toEqual([]);
    expect(proxy.operations).toEqual([]);
    expect(readdirSync(run.dir)).toEqual([]);
    for (const text of [run.termination, run.stderr]) {
      expect(text).toContain('FETCH_NO_IDENTITY: the pod has no AWS identity of its own');
      expect(text).toContain(`2 reference(s) not fetched: ${names.join(', ')}`);
      expect(text).toContain('Hint: give the pod an AWS identity: IRSA');
      expect(text).not.toContain('NODE-MUST-NOT-READ');
    }
    if (extra.AWS_ACCESS_KEY_ID !== undefined) expect(run.termination).toContain('AWS_ACCESS_KEY_ID is set but not used');
  });

  // Each provider is imported when used: the CLI bundle (code split, the SDK's CommonJS build) too.
  it.each(['fetcher', 'cli.mjs'] as const)('with the node credentials opt-in, %s fetches with the instance role from instance metadata', async (bundle) => {
    const name = await secret('READ-AS-THE-NODE');
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 's' }] }, { ...node(), SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' }, {
      endpoint: proxy.endpoint,
      bundle,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.dir, 's'), 'utf8')).toBe('READ-AS-THE-NODE');
    expect(imds.requests).toContain('PUT /latest/api/token');
    expect(imds.requests.some((r) => r.startsWith('GET /latest/meta-data/iam/security-credentials/node-role'))).toBe(true);
    expect(proxy.calls.map((x) => [x.operation, x.accessKeyId])).toEqual([['secretsmanager.GetSecretValue', imds.accessKeyId]]);
  });

  it('with the opt-in, static keys in the environment come before instance metadata (the SDK order)', async () => {
    const name = await secret('READ-WITH-KEYS');
    const run = await runFetcher(
      c,
      scratch,
      { region: REGION, items: [{ ref: name, file: 's' }] },
      { ...node(), SECRET_INJECTOR_NODE_CREDENTIALS: 'allow', AWS_ACCESS_KEY_ID: 'AKIASTATICKEYS', AWS_SECRET_ACCESS_KEY: 'static-secret' },
      { endpoint: proxy.endpoint },
    );
    expect(run.code).toBe(0);
    expect(imds.requests).toEqual([]);
    expect(proxy.calls.map((x) => x.accessKeyId)).toEqual(['AKIASTATICKEYS']);
  });

  it('with IRSA, uses the web identity even where instance metadata answers and the opt-in is on', async () => {
    const name = await secret('READ-WITH-IRSA');
    const run = await runFetcher(
      c,
      scratch,
      { region: REGION, items: [{ ref: name, file: 's' }] },
      {
        ...node(),
        SECRET_INJECTOR_NODE_CREDENTIALS: 'allow',
        AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`,
        AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(),
      },
      { endpoint: proxy.endpoint },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.dir, 's'), 'utf8')).toBe('READ-WITH-IRSA');
    expect(imds.requests).toEqual([]);
    expect(proxy.operations).toEqual(['sts.AssumeRoleWithWebIdentity', 'secretsmanager.GetSecretValue']);
    expect(proxy.calls[1]!.accessKeyId).not.toBe(imds.accessKeyId);
  });

  it.each(['fetcher', 'cli.mjs'] as const)('with EKS Pod Identity and a role to chain into, %s uses the agent, then AssumeRole, never instance metadata', async (bundle) => {
    const name = await secret('READ-WITH-POD-IDENTITY');
    const agentToken = 'pod-identity-agent-token';
    const agent = await startPodIdentityAgent(agentToken, ACCOUNT);
    try {
      const run = await runFetcher(
        c,
        scratch,
        { region: REGION, roleArn: `arn:aws:iam::${ACCOUNT}:role/secret-reader`, items: [{ ref: name, file: 's' }] },
        {
          ...node(),
          AWS_CONTAINER_CREDENTIALS_FULL_URI: agent.endpoint,
          AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: scratch.tokenFile(agentToken),
        },
        { endpoint: proxy.endpoint, bundle },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(readFileSync(join(run.dir, 's'), 'utf8')).toBe('READ-WITH-POD-IDENTITY');
      expect(agent.requests).toEqual(['GET /v1/credentials']);
      expect(imds.requests).toEqual([]);
      expect(proxy.calls.map((x) => x.operation)).toEqual(['sts.AssumeRole', 'secretsmanager.GetSecretValue']);
      // AssumeRole is signed with the agent's credentials, the fetch with the chained role's.
      expect(proxy.calls[0]!.accessKeyId).toBe(agent.accessKeyId);
      expect(proxy.calls[1]!.accessKeyId).not.toBe(agent.accessKeyId);
    } finally {
      await agent.close();
    }
  });

  // A JSON parser's message quotes the start of the body it choked on, and each runtime words it
  // differently ("Unexpected token …, "ASIA…" is not valid JSON" on Node.js, "JSON Parse error:
  // Unexpected identifier "ASIA…"" on Bun): none of it may reach the report.
  it.each(['fetcher', 'fetcher.cjs'] as const)('%s never quotes a credentials answer that is not JSON (it holds keys)', async (bundle) => {
    const body = 'ASIAQUOTED KEY-MATERIAL-1234567890';
    const agent = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
    try {
      const run = await runFetcher(
        c,
        scratch,
        { region: REGION, items: [{ ref: unique('x'), file: 's' }], timeouts: { maxAttempts: 1 } },
        { AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${(agent.address() as AddressInfo).port}/v1/credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: scratch.tokenFile('t') },
        { endpoint: proxy.endpoint, bundle },
      );
      expect(run.code).toBe(1);
      expect(run.termination).toContain('the credentials source answered with a body that is not valid JSON');
      expect(run.stderr + run.termination).not.toMatch(/ASIAQUOTED|KEY-MATERIAL/);
    } finally {
      agent.close();
    }
  });

  it('refuses an opt-in value it does not know, before any AWS call', async () => {
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: unique('x'), file: 's' }] }, { ...node(), SECRET_INJECTOR_NODE_CREDENTIALS: 'yes' }, {
      endpoint: proxy.endpoint,
    });
    expect(run.code).toBe(1);
    expect(run.termination).toContain('FETCH_SPEC_INVALID: SECRET_INJECTOR_NODE_CREDENTIALS must be deny or allow (got "yes")');
    expect(imds.requests).toEqual([]);
    expect(proxy.operations).toEqual([]);
  });
});
