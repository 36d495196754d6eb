// Failure reports after secrets were fetched: the values never show, and the report still says
// what failed. The emulator serves the secrets; a proxy answers what it cannot (an access denial
// worded as AWS words it, an answer no real AWS gives).

import { readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsProxy } from '../helpers/aws-proxy.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

describe.skipIf(skip !== false)(`fetcher failure reports${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let token: string;
  const irsa = () => ({ AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`, AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_REGION: REGION });

  beforeAll(() => {
    token = scratch.tokenFile();
  });
  afterAll(() => scratch.remove());

  it('a secret holding a region, an account id and short words leaves a later failure report readable', async () => {
    const name = unique('prod/config');
    const held = { region: REGION, account: ACCOUNT, dbname: 'prod', user: 'app', password: 'Pa55-w0rd-never-shown' };
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(held) }));
    const parameter = `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/prod/db`;
    const message = (session: string) =>
      `User: arn:aws:sts::${ACCOUNT}:assumed-role/irsa-web/${session} is not authorized to perform: ssm:GetParameters on resource: ${parameter} because no identity-based policy allows the ssm:GetParameters action`;
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op === 'AmazonSSM.GetParameters' ? { status: 400, type: 'AccessDeniedException', message: message('team-a.web-7d9f8c6b5-x2k4q') } : undefined,
    );
    try {
      const run = await runFetcher(
        c,
        scratch,
        { region: REGION, items: [{ ref: name, file: 'db', key: 'dbname' }, { ref: parameter, file: 'p' }] },
        irsa(),
        { endpoint: proxy.endpoint },
      );
      expect(run.code).toBe(1);
      expect(readdirSync(run.dir)).toEqual([]);
      for (const text of [run.termination, run.stderr]) {
        expect(text).not.toContain('[REDACTED]');
        expect(text).not.toContain(held.password);
        expect(text).toContain(`FETCH_AWS: reference ${parameter}: GetParameters in ${REGION} failed (HTTP 400): ${message('team-a.web-7d9f8c6b5-x2k4q')}.`);
        expect(text).toContain('AWS error code: AccessDeniedException.');
        expect(text).toMatch(new RegExp(`Identity: arn:aws:sts::${ACCOUNT}:assumed-role/irsa-web/`));
      }
    } finally {
      await proxy.close();
    }
  });

  it('an endpoint echoing a fetched value in its error message gets it redacted', async () => {
    const name = unique('token');
    const value = `tok-${unique('x')}-9f8e7d6c5b4a3210`;
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
    const parameter = `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${unique('p')}`;
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op === 'AmazonSSM.GetParameters' ? { status: 400, type: 'ValidationException', message: `request carried ${value}` } : undefined,
    );
    try {
      // The report is made once every call has ended, so the echo is redacted whichever came first.
      const run = await runFetcher(c, scratch, { region: REGION, items: [{ ref: name, file: 't' }, { ref: parameter, file: 'p' }] }, irsa(), {
        endpoint: proxy.endpoint,
      });
      expect(run.code).toBe(1);
      expect(run.termination).toContain('GetParameters in');
      expect(run.termination + run.stderr).not.toContain(value);
    } finally {
      await proxy.close();
    }
  });

  it('no key name of a secret, no short value, no number and no piece of a value in a report; reference, code and identity readable', async () => {
    const name = unique('held');
    const held = { 'db-primary.internal': 'x7Q', pin: 482913, note: 'correct-horse-battery-staple' };
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(held) }));
    const parameter = `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/${unique('p')}`;
    // An endpoint echoing a short value, the number and a piece of a longer value in its message.
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      op === 'AmazonSSM.GetParameters' ? { status: 400, type: 'ValidationException', message: 'request carried x7Q, 482913 and battery for you' } : undefined,
    );
    try {
      const run = await runFetcher(
        c,
        scratch,
        {
          region: REGION,
          items: [
            { ref: name, file: 'a', key: 'password' },
            { ref: name, file: 'env', format: 'env' },
            { ref: parameter, file: 'p' },
          ],
        },
        irsa(),
        { endpoint: proxy.endpoint },
      );
      expect(run.code).toBe(1);
      for (const text of [run.termination, run.stderr]) {
        for (const hidden of ['db-primary', 'internal', '"pin"', 'note', 'x7Q', '482913', 'battery', 'horse']) expect(text).not.toContain(hidden);
        expect(text).toContain(`FETCH_KEY_MISSING: reference ${name}: key "password" is not in the secret's JSON (it has 3 other keys, not listed here).`);
        expect(text).toContain(`FETCH_BAD_KEY: reference ${name}: key 1 of 3 in the secret's JSON object is not a valid shell variable name`);
        expect(text).toContain(`FETCH_AWS: reference ${parameter}: GetParameters in ${REGION} failed (HTTP 400): request carried [REDACTED], [REDACTED] and [REDACTED] for you.`);
        expect(text).toContain('AWS error code: ValidationException.');
        expect(text).toMatch(new RegExp(`Identity: arn:aws:sts::${ACCOUNT}:assumed-role/irsa-web/`));
      }
    } finally {
      await proxy.close();
    }
  });

  it('an answer no AWS gives (a SecretString that is a number) is reported without printing it', async () => {
    const pin = 987654321123;
    const ref = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pin-AbCdEf`;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ ARN: ref, Name: 'pin', VersionId: 'v1', SecretString: pin });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(body) }).end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    try {
      const run = await runFetcher(c, scratch, { items: [{ ref, file: 'pin' }] }, { ...irsa(), AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint });
      expect(run.code).toBe(1);
      expect(readdirSync(run.dir)).toEqual([]);
      expect(run.termination).toContain(`FETCH_AWS: reference ${ref}: GetSecretValue returned neither a SecretString (text) nor a SecretBinary (bytes).`);
      expect(run.termination + run.stderr).not.toContain(String(pin));
    } finally {
      server.close();
    }
  });
});
