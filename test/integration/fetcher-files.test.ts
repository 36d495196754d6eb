// Files shaped as the app needs them, by the built fetcher against moto: templates over an
// RDS-managed secret, JSON Pointer keys into nested JSON, and whole paths (a Secrets Manager
// name prefix, an SSM parameter path) with their pagination and their bound.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PATH_SECRETS } from '../../fetcher/spec.js';
import { appView } from '../helpers/volume.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
const IRSA_ROLE = `arn:aws:iam::${ACCOUNT}:role/irsa-web`;

describe.skipIf(skip !== false)(`templates, pointers and whole paths against moto${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets, ssm } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let token: string;
  const irsa = () => ({ AWS_ROLE_ARN: IRSA_ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_REGION: REGION });
  const files = (dir: string) => appView(dir).map((p) => p.replace(/\/$/, ''));
  const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8');

  beforeAll(() => {
    token = scratch.tokenFile();
  });
  afterAll(() => scratch.remove());

  // The JSON Secrets Manager keeps for an RDS instance whose credentials it manages.
  const rds = { engine: 'postgres', username: 'orders_app', password: 'RDS-PASSWORD-9f8e', host: 'orders.c1x2y3.eu-west-1.rds.amazonaws.com', port: 5432, dbname: 'orders', dbInstanceIdentifier: 'orders' };

  it('renders an RDS-managed secret into a connection URL and a .pgpass line, and reaches nested values by JSON Pointer', async () => {
    const name = unique('rds/orders');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(rds) }));
    const nested = unique('nested');
    await secrets.send(new CreateSecretCommand({ Name: nested, SecretString: JSON.stringify({ db: { replicas: [{ host: 'r0' }, { host: 'r1' }] }, 'a/b': { 'c~d': 'escaped' } }) }));
    const run = await runFetcher(
      c,
      scratch,
      {
        region: REGION,
        items: [
          { ref: name, file: 'db.url', template: 'postgresql://{{ username }}:{{ password }}@{{ host }}:{{ port }}/{{ dbname }}' },
          { ref: name, file: '.pgpass', template: '{{host}}:{{port}}:{{dbname}}:{{username}}:{{password}}\n', mode: 0o400 },
          { ref: nested, file: 'replica', key: '/db/replicas/1/host' },
          { ref: nested, file: 'escaped', key: '/a~1b/c~0d' },
        ],
      },
      irsa(),
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(read(run.dir, 'db.url')).toBe(`postgresql://orders_app:RDS-PASSWORD-9f8e@${rds.host}:5432/orders`);
    expect(read(run.dir, '.pgpass')).toBe(`${rds.host}:5432:orders:orders_app:RDS-PASSWORD-9f8e\n`);
    expect(read(run.dir, 'replica')).toBe('r1');
    expect(read(run.dir, 'escaped')).toBe('escaped');
  });

  it('fails naming the placeholder and the pointer that find nothing, never a value, and writes nothing', async () => {
    const name = unique('rds/typo');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(rds) }));
    const run = await runFetcher(
      c,
      scratch,
      { region: REGION, items: [{ ref: name, file: 'db.url', template: 'postgresql://{{ user }}:{{ password }}@{{ host }}' }, { ref: name, file: 'p', key: '/credentials/password' }] },
      irsa(),
    );
    expect(run.code).toBe(1);
    expect(files(run.dir)).toEqual([]);
    expect(run.termination).toContain(`FETCH_KEY_MISSING: reference ${name}: template placeholder "{{ user }}" finds nothing in the secret's JSON: no key "user" at the top level.`);
    expect(run.termination).toContain(`FETCH_KEY_MISSING: reference ${name}: JSON Pointer /credentials/password finds nothing in the secret's JSON: no key "credentials" at the top level.`);
    expect(run.stderr + run.termination).not.toMatch(/RDS-PASSWORD|orders_app/);
  });

  it('writes every Secrets Manager secret under a name prefix (more than one page) as a file under the directory', async () => {
    const prefix = unique('team-a/app');
    const names = Array.from({ length: 23 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    for (const n of names) await secrets.send(new CreateSecretCommand({ Name: `${prefix}/${n}`, SecretString: `value-${n}` }));
    await secrets.send(new CreateSecretCommand({ Name: `${prefix}/nested/db`, SecretString: JSON.stringify({ password: 'nested-pw' }) }));
    await secrets.send(new CreateSecretCommand({ Name: `${prefix}-sibling`, SecretString: 'not-under-the-path' }));
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: `${prefix}/*`, file: 'app' }] }, irsa());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(files(run.dir)).toEqual(['.secrets-ready', 'app', ...names.map((n) => `app/${n}`), 'app/nested', 'app/nested/db'].sort());
    expect(read(run.dir, 'app/s22')).toBe('value-s22');
    expect(read(run.dir, 'app/nested/db')).toBe('{"password":"nested-pw"}');
    const marker = JSON.parse(read(run.dir, '.secrets-ready'));
    expect(marker.secrets[0].ref).toBe(`${prefix}/*`);
    expect(marker.secrets[0].members).toHaveLength(24);
    expect(marker.secrets[0].members[0]).toMatchObject({ name: 'nested/db', arn: expect.stringContaining(`:secret:${prefix}/nested/db-`), versionId: expect.any(String) });
  });

  it('writes every SSM parameter under a path (recursive, decrypted, more than one page), a key of each', async () => {
    const path = `/${unique('svc')}`;
    for (let i = 0; i < 12; i++) {
      await ssm.send(new PutParameterCommand({ Name: `${path}/p${i}`, Value: JSON.stringify({ token: `tok-${i}` }), Type: i % 2 === 0 ? 'SecureString' : 'String' }));
    }
    await ssm.send(new PutParameterCommand({ Name: `${path}/deep/er`, Value: JSON.stringify({ token: 'deep-tok' }), Type: 'String' }));
    const run = await runFetcher(c, scratch, { items: [{ ref: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${path}/*`, file: 'tokens', key: '/token' }] }, irsa());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(files(run.dir).filter((f) => f.startsWith('tokens/'))).toHaveLength(14); // 12 files, deep/ and deep/er
    expect(read(run.dir, 'tokens/p11')).toBe('tok-11');
    expect(read(run.dir, 'tokens/p4')).toBe('tok-4');
    expect(read(run.dir, 'tokens/deep/er')).toBe('deep-tok');
  });

  it(`fails with the count when a path holds more than ${MAX_PATH_SECRETS} secrets, and writes nothing`, async () => {
    const prefix = unique('crowded');
    await Promise.all(Array.from({ length: MAX_PATH_SECRETS + 3 }, (_, i) => secrets.send(new CreateSecretCommand({ Name: `${prefix}/s${i}`, SecretString: `CROWD-VALUE-${i}` }))));
    const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: `${prefix}/*`, file: 'all' }] }, irsa());
    expect(run.code).toBe(1);
    expect(files(run.dir)).toEqual([]);
    expect(run.termination).toContain(`FETCH_TOO_MANY: reference ${prefix}/*: ${MAX_PATH_SECRETS + 3} secrets are under this path, over the maximum of ${MAX_PATH_SECRETS}.`);
    expect(run.stderr + run.termination).not.toContain('CROWD-VALUE');
  });
});
