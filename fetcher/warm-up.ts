// Runs only while the fetcher's code cache is made (scripts/code-cache.mjs): one Secrets Manager
// client, with IRSA's web identity provider for credentials, sends GetSecretValue and
// BatchGetSecretValue to a request handler that answers from memory, STS's
// AssumeRoleWithWebIdentity included. The SDK's code on that path (client set-up, middleware
// stack, signing, retries, the JSON and query protocols) is then compiled, and the cache made
// afterwards holds it, so a fetch does not compile it at every pod start.
// Nothing here reaches the network, the environment or the file system: the token, the region
// and the answers are given, not looked up.

import { Readable } from 'node:stream';
import { BatchGetSecretValueCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { fromWebToken } from '@aws-sdk/credential-provider-web-identity';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:warm-up-AbCdEf';
const VALUE = { ARN, Name: 'warm-up', VersionId: '00000000-0000-4000-8000-000000000000', SecretString: '{"k":"v"}', VersionStages: ['AWSCURRENT'], CreatedDate: 1.7e9 };

const answers: Record<string, unknown> = {
  'secretsmanager.GetSecretValue': VALUE,
  'secretsmanager.BatchGetSecretValue': { SecretValues: [VALUE], Errors: [] },
};

const STS_ANSWER = `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWARMUP</AccessKeyId><SecretAccessKey>warm-up</SecretAccessKey><SessionToken>warm-up</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><SubjectFromWebIdentityToken>warm-up</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/warm-up/warm-up</Arn><AssumedRoleId>AROAWARMUP:warm-up</AssumedRoleId></AssumedRoleUser><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`;

/** A request handler (the SDK's HttpHandler shape) that answers each operation from `answers`. */
const handler = {
  metadata: { handlerProtocol: 'http/1.1' },
  async handle(request: { headers: Record<string, string>; body?: unknown }) {
    if (typeof request.body === 'string' && request.body.startsWith('Action=AssumeRoleWithWebIdentity')) {
      return { response: { statusCode: 200, reason: 'OK', headers: { 'content-type': 'text/xml' }, body: Readable.from([Buffer.from(STS_ANSWER)]) } };
    }
    const answer = answers[request.headers['x-amz-target'] ?? ''];
    if (answer === undefined) throw new Error(`warm-up: no answer for ${request.headers['x-amz-target']}`);
    return {
      response: {
        statusCode: 200,
        reason: 'OK',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': '00000000-0000-4000-8000-000000000000' },
        body: Readable.from([Buffer.from(JSON.stringify(answer))]),
      },
    };
  },
  updateHttpClientConfig() {},
  httpHandlerConfigs: () => ({}),
  destroy() {},
};

export async function warmUp(): Promise<void> {
  const credentials = fromWebToken({
    roleArn: 'arn:aws:iam::123456789012:role/warm-up',
    webIdentityToken: 'warm-up',
    clientConfig: { region: 'us-east-1', requestHandler: handler },
  });
  const client = new SecretsManagerClient({
    region: 'us-east-1',
    credentials,
    requestHandler: handler,
    maxAttempts: 5,
    retryMode: 'standard',
  });
  const one = await client.send(new GetSecretValueCommand({ SecretId: ARN }));
  const batch = await client.send(new BatchGetSecretValueCommand({ SecretIdList: [ARN, 'warm-up'] }));
  if (one.SecretString !== VALUE.SecretString || batch.SecretValues?.length !== 1) throw new Error('warm-up: unexpected answers');
  client.destroy();
}
