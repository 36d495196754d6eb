// Runs only while the startup snapshot is being built (scripts/bundle.mjs): one Secrets Manager
// client sends GetSecretValue and BatchGetSecretValue to a request handler that answers from
// memory. The SDK's code on that path (client set-up, middleware stack, signing, retries, JSON
// protocol) is then compiled and its lazy module state made, both kept in the snapshot, so a
// fetch does not pay for them at every pod start. Nothing here reaches the network, the
// environment or the file system, and nothing it makes outlives the build but compiled code and
// state any client would make the same way: credentials and the region are given, not looked up.

import { Readable } from 'node:stream';
import { BatchGetSecretValueCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:warm-up-AbCdEf';
const VALUE = { ARN, Name: 'warm-up', VersionId: '00000000-0000-4000-8000-000000000000', SecretString: '{"k":"v"}', VersionStages: ['AWSCURRENT'], CreatedDate: 1.7e9 };

const answers: Record<string, unknown> = {
  'secretsmanager.GetSecretValue': VALUE,
  'secretsmanager.BatchGetSecretValue': { SecretValues: [VALUE], Errors: [] },
};

/** A request handler (the SDK's HttpHandler shape) that answers each operation from `answers`. */
const handler = {
  metadata: { handlerProtocol: 'http/1.1' },
  async handle(request: { headers: Record<string, string> }) {
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
  const client = new SecretsManagerClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDWARMUP', secretAccessKey: 'warm-up' },
    requestHandler: handler,
    maxAttempts: 5,
    retryMode: 'standard',
  });
  const one = await client.send(new GetSecretValueCommand({ SecretId: ARN }));
  const batch = await client.send(new BatchGetSecretValueCommand({ SecretIdList: [ARN, 'warm-up'] }));
  if (one.SecretString !== VALUE.SecretString || batch.SecretValues?.length !== 1) throw new Error('warm-up: unexpected answers');
  client.destroy();
}
