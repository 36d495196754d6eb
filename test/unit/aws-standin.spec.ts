// The stand-in the fleet bench and the quota tests run against: its buckets are per API, account
// and Region and refill at the quota's rate, and the real SDK clients read its throttled answers
// as AWS's (the error name the retry strategy classifies, HTTP 400).

import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsStandIn, type StandIn } from '../helpers/aws-standin.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const credentials = (account: string) => ({ accessKeyId: `ASIA${account}ABCD`, secretAccessKey: 'x', sessionToken: 'x' });
const once = { maxAttempts: 1 };

describe('the AWS stand-in', () => {
  let standIn: StandIn;
  beforeAll(async () => {
    standIn = await startAwsStandIn({ quotas: { GetSecretValue: 2, GetParameters: 1, AssumeRole: 1 }, latencyMs: { GetSecretValue: 1, GetParameters: 1, AssumeRole: 1 }, latencySigma: 0 });
  });
  afterAll(() => standIn.close());

  const sm = (region: string, account = '123456789012') =>
    new SecretsManagerClient({ region, endpoint: standIn.endpoint, credentials: credentials(account), ...once });
  const get = (c: SecretsManagerClient) => c.send(new GetSecretValueCommand({ SecretId: 'app/db' })).then(() => 'ok', (e: Error & { $metadata?: { httpStatusCode?: number } }) => `${e.name} ${e.$metadata?.httpStatusCode} ${e.message}`);

  it('holds a burst to one second of the quota, per account and Region, and refills at its rate', async () => {
    standIn.reset();
    const c = sm('eu-west-1');
    // Sent together, so that the bucket cannot refill between them on a busy machine.
    expect((await Promise.all([get(c), get(c), get(c)])).sort()).toEqual(['ThrottlingException 400 Rate exceeded', 'ok', 'ok']);
    // Another Region and another account have buckets of their own.
    expect(await get(sm('us-east-1'))).toBe('ok');
    expect(await get(sm('eu-west-1', '210987654321'))).toBe('ok');
    await new Promise((r) => setTimeout(r, 600));
    expect(await get(c)).toBe('ok');
    expect(standIn.stats().GetSecretValue).toEqual({ calls: 6, throttled: 1 });
  });

  it('answers throttled SSM and STS calls on their own protocols', async () => {
    standIn.reset();
    const ssm = new SSMClient({ region: 'eu-west-1', endpoint: standIn.endpoint, credentials: credentials('123456789012'), ...once });
    const params = () => ssm.send(new GetParametersCommand({ Names: ['/app/p'], WithDecryption: true })).then((o) => o.Parameters?.[0]?.Value, (e: Error) => e.name);
    expect((await Promise.all([params(), params()])).sort()).toEqual(['ThrottlingException', 'value of /app/p']);
    const sts = new STSClient({ region: 'eu-west-1', endpoint: standIn.endpoint, credentials: credentials('123456789012'), ...once });
    const assume = () =>
      sts.send(new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::123456789012:role/r', RoleSessionName: 's' })).then(
        (o) => o.Credentials?.AccessKeyId?.slice(0, 16),
        (e: Error & { $metadata?: { httpStatusCode?: number } }) => `${e.name} ${e.$metadata?.httpStatusCode}`,
      );
    expect((await Promise.all([assume(), assume()])).sort()).toEqual(['ASIA123456789012', 'Throttling 400']);
  });
});
