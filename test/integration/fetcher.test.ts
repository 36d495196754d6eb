// The built fetcher bundle, run as a child process the way the init container runs it, against
// moto in server mode as the AWS API (AWS_ENDPOINT_URL). Secrets are created through the real SDK.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appView } from '../helpers/volume.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';
import { startAwsProxy } from '../helpers/aws-proxy.js';
import { startCommand } from '../helpers/bundles.js';
import { startPodIdentityAgent } from '../helpers/credential-endpoints.js';

const { ctx, skip } = integrationContext();
const IRSA_ROLE = `arn:aws:iam::${ACCOUNT}:role/irsa-web`;

describe.skipIf(skip !== false)(`fetcher bundle against moto${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets, ssm } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let token: string;
  // The pod's identity as IRSA gives it: a role ARN and a projected service account token file.
  const irsa = () => ({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_REGION: REGION });

  beforeAll(() => {
    token = scratch.tokenFile();
  });
  afterAll(() => scratch.remove());

  const files = (dir: string) => appView(dir).map((p) => p.replace(/\/$/, ''));

  it('fetches with IRSA (web identity token file): string, key, json, env and explode, then the marker', async () => {
    const name = unique('app/db');
    const value = { username: 'admin', password: "p'a$s`w\"o\nrd" };
    const created = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(value) }));
    const run = await runFetcher(
      c,
      scratch,
      {
        region: REGION,
        items: [
          { ref: name, file: 'db.json', format: 'json' },
          { ref: created.ARN!, file: 'password', key: 'password', mode: 0o400 },
          { ref: name, file: 'db.env', format: 'env' },
          { ref: name, file: 'conf', explode: true, prefix: 'db_' },
        ],
      },
      irsa(),
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(files(run.dir)).toEqual(['.secrets-ready', 'conf', 'conf/db_password', 'conf/db_username', 'db.env', 'db.json', 'password']);
    expect(JSON.parse(readFileSync(join(run.dir, 'db.json'), 'utf8'))).toEqual(value);
    expect(readFileSync(join(run.dir, 'password'), 'utf8')).toBe(value.password);
    expect(statSync(join(run.dir, 'password')).mode & 0o777).toBe(0o400);
    expect(statSync(join(run.dir, 'db.json')).mode & 0o777).toBe(0o444);
    expect(readFileSync(join(run.dir, 'conf/db_username'), 'utf8')).toBe('admin');
    // The env file, sourced by a real shell, gives back the hostile password byte for byte.
    const sourced = execFileSync('sh', ['-c', 'set -a; . "$1"; printf %s "$password"', 'sh', join(run.dir, 'db.env')], { encoding: 'utf8' });
    expect(sourced).toBe(value.password);
    const marker = JSON.parse(readFileSync(join(run.dir, '.secrets-ready'), 'utf8'));
    expect(marker.secrets[1]).toMatchObject({ ref: created.ARN, arn: created.ARN, versionId: created.VersionId, files: ['password'] });
    expect(JSON.stringify(marker)).not.toContain('admin');
    expect(run.stdout).not.toContain('admin');
  });

  it('reports the IRSA identity, the AWS code and a hint for a secret that does not exist, and writes nothing', async () => {
    const present = unique('present');
    await secrets.send(new CreateSecretCommand({ Name: present, SecretString: 'PRESENT-VALUE-1' }));
    const missing = unique('missing');
    const missingArn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${missing}-AbCdEf`;
    const run = await runFetcher(
      c,
      scratch,
      { region: REGION, items: [{ ref: present, file: 'present' }, { ref: missing, file: 'a' }, { ref: missingArn, file: 'b' }] },
      irsa(),
    );
    expect(run.code).toBe(1);
    expect(files(run.dir)).toEqual([]);
    for (const text of [run.termination, run.stderr]) {
      expect(text).toContain(`reference ${missing}:`);
      expect(text).toContain(`reference ${missingArn}:`);
      expect(text).toContain('AWS error code: ResourceNotFoundException');
      expect(text).toMatch(new RegExp(`Identity: arn:aws:sts::${ACCOUNT}:assumed-role/irsa-web/`));
      expect(text).toContain('Hint: no secret named');
      expect(text).not.toContain('PRESENT-VALUE-1');
    }
  });

  // The EKS Pod Identity agent is a node DaemonSet; a small HTTP server on 127.0.0.1 stands in for it.
  it('fetches with EKS Pod Identity (container credentials URI + authorization token file)', async () => {
    const name = unique('pod-identity');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'POD-IDENTITY-VALUE' }));
    const agentToken = `pod-identity-token-${randomBytes(8).toString('hex')}`;
    const agent = await startPodIdentityAgent(agentToken, ACCOUNT);
    try {
      const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 's' }] }, {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: agent.endpoint,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: scratch.tokenFile(agentToken),
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(readFileSync(join(run.dir, 's'), 'utf8')).toBe('POD-IDENTITY-VALUE');
      expect(agent.requests).toEqual(['GET /v1/credentials']);
    } finally {
      await agent.close();
    }
  });

  it('chains into a role with AssumeRole, the session named after the pod', async () => {
    const name = unique('chained');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'CHAINED-VALUE' }));
    const roleArn = `arn:aws:iam::${ACCOUNT}:role/secret-reader`;
    const proxy = await startAwsProxy(c.awsEndpoint);
    try {
      const ok = await runFetcher(c, scratch, { region: REGION, roleArn, items: [{ ref: name, file: 's' }] }, irsa(), { endpoint: proxy.endpoint });
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(readFileSync(join(ok.dir, 's'), 'utf8')).toBe('CHAINED-VALUE');
      expect(proxy.operations).toEqual(['sts.AssumeRoleWithWebIdentity', 'sts.AssumeRole', 'secretsmanager.GetSecretValue']);
    } finally {
      await proxy.close();
    }
    // The identity in a failure report shows the chained role and the pod's session name.
    const failed = await runFetcher(c, scratch, { region: REGION, roleArn, items: [{ ref: unique('absent'), file: 's' }] }, irsa());
    expect(failed.code).toBe(1);
    expect(failed.termination).toContain(`Identity: arn:aws:sts::${ACCOUNT}:assumed-role/secret-reader/team-a.web-7d9f8c6b5-x2k4q.`);
  });

  it('fetches 25 secrets with two BatchGetSecretValue calls (20 + 5)', async () => {
    const prefix = unique('batch');
    const names = Array.from({ length: 25 }, (_, i) => `${prefix}/s${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((n) => secrets.send(new CreateSecretCommand({ Name: n, SecretString: `value of ${n}` }))));
    const proxy = await startAwsProxy(c.awsEndpoint);
    try {
      const run = await runFetcher(
        c,
        scratch,
        { region: REGION, items: names.map((n, i) => ({ ref: n, file: `s${i}` })) },
        irsa(),
        { endpoint: proxy.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(names.every((n, i) => readFileSync(join(run.dir, `s${i}`), 'utf8') === `value of ${n}`)).toBe(true);
      const sm = proxy.operations.filter((o) => o.startsWith('secretsmanager.'));
      expect(sm).toEqual(['secretsmanager.BatchGetSecretValue', 'secretsmanager.BatchGetSecretValue']);
    } finally {
      await proxy.close();
    }
  });

  it('matches every batch answer back to its reference: names, complete ARNs and partial ARNs (one ending like a suffix)', async () => {
    const prefix = unique('match');
    // "-secret" is a dash and six letters: the partial ARN of this name looks like a complete one.
    const names = [`${prefix}/db-secret`, `${prefix}/plain`, `${prefix}/by-name`, `${prefix}/complete`];
    const created = await Promise.all(names.map((n) => secrets.send(new CreateSecretCommand({ Name: n, SecretString: `value of ${n}` }))));
    const partial = (n: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${n}`;
    const proxy = await startAwsProxy(c.awsEndpoint);
    try {
      const run = await runFetcher(
        c,
        scratch,
        {
          region: REGION,
          items: [
            { ref: partial(names[0]!), file: 'a' },
            { ref: partial(names[1]!), file: 'b' },
            { ref: names[2]!, file: 'c' },
            { ref: created[3]!.ARN!, file: 'd' },
          ],
        },
        irsa(),
        { endpoint: proxy.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(['a', 'b', 'c', 'd'].map((f) => readFileSync(join(run.dir, f), 'utf8'))).toEqual(names.map((n) => `value of ${n}`));
      expect(proxy.operations.filter((o) => o.startsWith('secretsmanager.'))).toEqual(['secretsmanager.BatchGetSecretValue']);
    } finally {
      await proxy.close();
    }
  });

  it('fetches the AWSPREVIOUS version and the current one', async () => {
    const name = unique('rotated');
    const first = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'version-one' }));
    const second = await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'version-two' }));
    const run = await runFetcher(
      c,
      scratch,
      {
        region: REGION,
        items: [
          { ref: name, file: 'previous', versionStage: 'AWSPREVIOUS' },
          { ref: name, file: 'current' },
          { ref: name, file: 'by-id', versionId: first.VersionId! },
        ],
      },
      irsa(),
    );
    expect(run.stderr).toBe('');
    expect(readFileSync(join(run.dir, 'previous'), 'utf8')).toBe('version-one');
    expect(readFileSync(join(run.dir, 'current'), 'utf8')).toBe('version-two');
    expect(readFileSync(join(run.dir, 'by-id'), 'utf8')).toBe('version-one');
    const marker = JSON.parse(readFileSync(join(run.dir, '.secrets-ready'), 'utf8'));
    expect(marker.secrets.map((s: { versionId: string }) => s.versionId)).toEqual([first.VersionId, second.VersionId, first.VersionId]);
  });

  it('writes a binary secret as its bytes', async () => {
    const name = unique('binary');
    const bytes = Buffer.concat([Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]), randomBytes(1024)]);
    await secrets.send(new CreateSecretCommand({ Name: name, SecretBinary: bytes }));
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 'keystore.p12' }] }, irsa());
    expect(run.stderr).toBe('');
    expect(readFileSync(join(run.dir, 'keystore.p12')).equals(bytes)).toBe(true);
  });

  it('fetches SSM SecureString and String parameters by ARN, decrypted, in the ARN\'s region', async () => {
    const path = unique('app/prod/db-password');
    const flat = unique('flat');
    await ssm.send(new PutParameterCommand({ Name: `/${path}`, Value: 'ssm-secure-value', Type: 'SecureString' }));
    await ssm.send(new PutParameterCommand({ Name: flat, Value: 'plain-value', Type: 'String' }));
    const list = unique('hosts');
    await ssm.send(new PutParameterCommand({ Name: list, Value: 'a.example,b.example', Type: 'StringList' }));
    const run = await runFetcher(
      c,
      scratch,
      {
        items: [
          { ref: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${path}`, file: 'db-password' },
          { ref: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${flat}`, file: 'flat' },
          { ref: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${list}`, file: 'hosts' },
        ],
      },
      // No AWS_REGION: the ARNs' region serves the SSM calls and the web identity exchange alike.
      { AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: token },
    );
    expect(run.stderr).toBe('');
    expect(readFileSync(join(run.dir, 'db-password'), 'utf8')).toBe('ssm-secure-value');
    expect(readFileSync(join(run.dir, 'flat'), 'utf8')).toBe('plain-value');
    // A StringList is written as stored: the comma-separated list.
    expect(readFileSync(join(run.dir, 'hosts'), 'utf8')).toBe('a.example,b.example');
  });

  it('reports a missing SSM parameter per parameter', async () => {
    const missing = `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${unique('nope')}`;
    const run = await runFetcher(c, scratch, { items: [{ ref: missing, file: 'x' }] }, irsa());
    expect(run.code).toBe(1);
    expect(run.termination).toContain(`reference ${missing}:`);
    expect(run.termination).toContain('AWS error code: ParameterNotFound');
    expect(files(run.dir)).toEqual([]);
  });

  it('names a key the secret lacks without printing the secret', async () => {
    const name = unique('keys');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ user: 'KEY-VALUE-USER' }) }));
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 'p', key: 'password' }] }, irsa());
    expect(run.code).toBe(1);
    expect(run.termination).toContain(`FETCH_KEY_MISSING: reference ${name}: key "password" is not in the secret's JSON (it has 1 other key, not listed here)`);
    expect(run.stderr + run.termination).not.toContain('KEY-VALUE-USER');
    expect(run.stderr + run.termination).not.toContain('"user"');
  });

  it('refuses a malformed spec and unknown arguments with a clear message', () => {
    const [command, ...bundle] = startCommand(scratch.bundlePath(c));
    const env = { PATH: process.env.PATH ?? '', SECRET_INJECTOR_SPEC: '{"version":1,"dir":"tmp","items":[{"ref":"a b"}]}' };
    const bad = spawnSync(command!, [...bundle, 'fetch'], { env, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('FETCH_SPEC_INVALID: SECRET_INJECTOR_SPEC: dir must be an absolute path.');
    expect(bad.stderr).toContain('items[0]: ref "a b" is neither an ARN nor a valid secret name');
    expect(bad.stderr).toContain('items[0]: file is required unless explode is set');
    const unset = spawnSync(command!, [...bundle, 'fetch'], { env: { PATH: env.PATH }, encoding: 'utf8' });
    expect(unset.status).toBe(1);
    expect(unset.stderr).toContain('SECRET_INJECTOR_SPEC is not set');
    const usage = spawnSync(command!, [...bundle, 'fetch', '--bogus'], { env, encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('fetch: unknown argument "--bogus"');
  });

  it.each([
    ['cli.mjs', 'the full CLI'],
    ['fetcher.cjs', 'the fetcher as a plain script, without its code cache'],
  ] as const)('runs the same through %s (%s)', async (bundle, _what) => {
    const name = unique('other-entry');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: `via-${bundle}` }));
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 'f' }] }, irsa(), { bundle });
    expect(run.stderr).toBe('');
    expect(readFileSync(join(run.dir, 'f'), 'utf8')).toBe(`via-${bundle}`);
  });
});
