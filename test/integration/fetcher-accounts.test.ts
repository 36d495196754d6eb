// Secrets and parameters of one name in two accounts, fetched in one run: the pod's own by name
// (or ARN), the other account's by ARN. moto holds both accounts' state; a proxy serves reads by
// ARN across accounts as AWS does under a resource policy (test/helpers/cross-account.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCrossAccountProxy, type CrossAccountProxy } from '../helpers/cross-account.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
const FOREIGN = '999999999999';

describe.skipIf(skip !== false)(`fetcher across accounts${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const own = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let foreign: { secrets: SecretsManagerClient; ssm: SSMClient };
  let proxy: CrossAccountProxy;
  let token: string;
  const irsa = () => ({ AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`, AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_REGION: REGION });

  beforeAll(async () => {
    token = scratch.tokenFile();
    // moto puts what is created with credentials of an assumed role into that role's account.
    const sts = new STSClient({ region: REGION, endpoint: c.awsEndpoint, credentials: { accessKeyId: 'seed', secretAccessKey: 'seed' } });
    const assumed = await sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${FOREIGN}:role/seed`, RoleSessionName: 'seed' }));
    const k = assumed.Credentials!;
    const credentials = { accessKeyId: k.AccessKeyId!, secretAccessKey: k.SecretAccessKey!, sessionToken: k.SessionToken! };
    foreign = {
      secrets: new SecretsManagerClient({ region: REGION, endpoint: c.awsEndpoint, credentials }),
      ssm: new SSMClient({ region: REGION, endpoint: c.awsEndpoint, credentials }),
    };
    proxy = await startCrossAccountProxy(c.awsEndpoint, { [FOREIGN]: k.AccessKeyId! });
  });
  afterAll(async () => {
    await proxy?.close();
    scratch.remove();
  });

  const marker = (dir: string) => JSON.parse(readFileSync(join(dir, '.secrets-ready'), 'utf8')) as { secrets: Array<{ ref: string; arn: string }> };

  it.each(['complete', 'partial'] as const)(
    'a name and the %s ARN of another account\'s secret of that name each get their own value, never in one call',
    async (form) => {
      const name = unique('shared/db');
      const mine = await own.secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'OWN-ACCOUNT-VALUE' }));
      const theirs = await foreign.secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'FOREIGN-ACCOUNT-VALUE' }));
      expect(theirs.ARN).toContain(`:${FOREIGN}:secret:${name}-`);
      const foreignRef = form === 'complete' ? theirs.ARN! : `arn:aws:secretsmanager:${REGION}:${FOREIGN}:secret:${name}`;
      const others = [unique('plain'), unique('plain')];
      await Promise.all(others.map((n) => own.secrets.send(new CreateSecretCommand({ Name: n, SecretString: `value of ${n}` }))));
      const before = proxy.calls.length;
      const run = await runFetcher(
        c,
        scratch,
        {
          region: REGION,
          items: [
            { ref: name, file: 'own' },
            { ref: foreignRef, file: 'foreign' },
            { ref: others[0]!, file: 'o0' },
            { ref: others[1]!, file: 'o1' },
          ],
        },
        irsa(),
        { endpoint: proxy.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(readFileSync(join(run.dir, 'own'), 'utf8')).toBe('OWN-ACCOUNT-VALUE');
      expect(readFileSync(join(run.dir, 'foreign'), 'utf8')).toBe('FOREIGN-ACCOUNT-VALUE');
      expect(readFileSync(join(run.dir, 'o1'), 'utf8')).toBe(`value of ${others[1]}`);
      expect(marker(run.dir).secrets.slice(0, 2).map((s) => s.arn)).toEqual([mine.ARN, theirs.ARN]);
      const calls = proxy.calls.slice(before);
      expect(calls.some((x) => x.operation === 'secretsmanager.BatchGetSecretValue')).toBe(true);
      for (const x of calls) expect(x.ids.includes(name) && x.ids.includes(foreignRef), JSON.stringify(x)).toBe(false);
    },
  );

  it('SSM parameters of one name in two accounts each get their own value', async () => {
    const name = `/${unique('shared/param')}`;
    await own.ssm.send(new PutParameterCommand({ Name: name, Value: 'OWN-PARAMETER', Type: 'SecureString' }));
    await foreign.ssm.send(new PutParameterCommand({ Name: name, Value: 'FOREIGN-PARAMETER', Type: 'SecureString' }));
    const arn = (account: string) => `arn:aws:ssm:${REGION}:${account}:parameter${name}`;
    const run = await runFetcher(
      c,
      scratch,
      { items: [{ ref: arn(FOREIGN), file: 'foreign' }, { ref: arn(ACCOUNT), file: 'own' }] },
      irsa(),
      { endpoint: proxy.endpoint },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readFileSync(join(run.dir, 'own'), 'utf8')).toBe('OWN-PARAMETER');
    expect(readFileSync(join(run.dir, 'foreign'), 'utf8')).toBe('FOREIGN-PARAMETER');
  });
});
