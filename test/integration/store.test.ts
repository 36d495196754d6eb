// The write-through store against the AWS API emulator: names, tags, no new version for an
// unchanged content, ownership, restore after deletion, throttling as a denial.

import { DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand, CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { storeName, storeTags, TOKEN_KEY_TAG, type StoreTarget } from '../../store/layout.js';
import { scheduleDeletion, writeContent, WriteError } from '../../store/write.js';
import { integrationContext, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

function target(cluster: string, namespace: string, name: string): StoreTarget {
  const n = storeName({ prefix: 'k8s', cluster }, namespace, name);
  if (!('name' in n)) throw new Error(n.problem.message);
  return { name: n.name, tags: storeTags(cluster, namespace, name) };
}

async function versions(sm: SecretsManagerClient, id: string): Promise<number> {
  const out = await sm.send(new ListSecretVersionIdsCommand({ SecretId: id, IncludeDeprecated: true }));
  return out.Versions?.length ?? 0;
}

describe.skipIf(skip)('write-through store (emulator)', () => {
  const sm = () => seedClients(ctx!.awsEndpoint).secrets;

  it('creates the secret with our tags, then writes a new version only when the content changes', async () => {
    const t = target(unique('c'), 'payments', 'db-creds');
    const first = await writeContent(sm(), t, '{"password":"s3cret"}');
    expect(first.outcome).toBe('created');
    expect(first.arn).toContain(`:secret:${t.name}-`);
    const d = await sm().send(new DescribeSecretCommand({ SecretId: t.name }));
    expect(d.Tags?.filter((x) => x.Key !== TOKEN_KEY_TAG).sort((a, b) => a.Key!.localeCompare(b.Key!))).toEqual(
      [...t.tags].sort((a, b) => a.Key.localeCompare(b.Key)),
    );
    expect((await sm().send(new GetSecretValueCommand({ SecretId: t.name }))).SecretString).toBe('{"password":"s3cret"}');

    const again = await writeContent(sm(), t, '{"password":"s3cret"}');
    expect(again).toEqual({ ...first, outcome: 'unchanged' });
    expect(await versions(sm(), t.name)).toBe(1);

    const changed = await writeContent(sm(), t, '{"password":"n3w"}');
    expect(changed.outcome).toBe('updated');
    expect(changed.versionId).not.toBe(first.versionId);
    expect(await versions(sm(), t.name)).toBe(2);
    expect((await writeContent(sm(), t, '{"password":"n3w"}')).outcome).toBe('unchanged');
    expect(await versions(sm(), t.name)).toBe(2);

    // Back to the first content: a new current version (an update like any other), then none.
    const back = await writeContent(sm(), t, '{"password":"s3cret"}');
    expect(back.outcome).toBe('updated');
    expect((await sm().send(new GetSecretValueCommand({ SecretId: t.name }))).SecretString).toBe('{"password":"s3cret"}');
    expect(await versions(sm(), t.name)).toBe(3);
    expect((await writeContent(sm(), t, '{"password":"s3cret"}')).outcome).toBe('unchanged');
    expect(await versions(sm(), t.name)).toBe(3);
  });

  it('never overwrites a secret without our tags, or another cluster\'s', async () => {
    const t = target(unique('c'), 'ns', 'taken');
    await sm().send(new CreateSecretCommand({ Name: t.name, SecretString: 'theirs' }));
    const err = await writeContent(sm(), t, '{"a":"b"}').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteError);
    expect((err as WriteError).problem).toMatchObject({ code: 'WRITE_NOT_OWNED', subject: t.name });
    expect((await sm().send(new GetSecretValueCommand({ SecretId: t.name }))).SecretString).toBe('theirs');
    const del = await scheduleDeletion(sm(), t, 7).catch((e: unknown) => e);
    expect((del as WriteError).problem.code).toBe('WRITE_NOT_OWNED');

    const mine = target(unique('c'), 'ns', 'x');
    await writeContent(sm(), mine, '{"a":"1"}');
    const other = { ...mine, tags: storeTags('other-cluster', 'ns', 'x') };
    expect(((await writeContent(sm(), other, '{"a":"2"}').catch((e: unknown) => e)) as WriteError).problem.code).toBe('WRITE_NOT_OWNED');
  });

  it('restores a secret scheduled for deletion when the Secret is written again', async () => {
    const t = target(unique('c'), 'ns', 'gone');
    await writeContent(sm(), t, '{"a":"1"}');
    expect(await scheduleDeletion(sm(), t, 7)).toBe('scheduled');
    expect(await scheduleDeletion(sm(), t, 7)).toBe('already-scheduled');
    expect((await sm().send(new DescribeSecretCommand({ SecretId: t.name }))).DeletedDate).toBeDefined();
    const back = await writeContent(sm(), t, '{"a":"2"}');
    expect(back.outcome).toBe('restored');
    expect((await sm().send(new DescribeSecretCommand({ SecretId: t.name }))).DeletedDate).toBeUndefined();
    expect((await sm().send(new GetSecretValueCommand({ SecretId: t.name }))).SecretString).toBe('{"a":"2"}');
    expect(await scheduleDeletion(sm(), target(unique('c'), 'ns', 'never'), 7)).toBe('absent');
  });

  it('turns throttling past the deadline into WRITE_THROTTLED, naming the operation', async () => {
    // A stand-in that always answers as Secrets Manager does when throttling; the SDK retries it.
    const { createServer } = await import('node:http');
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      req.resume();
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' });
      res.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const client = new SecretsManagerClient({ region: 'eu-west-1', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 3 });
    const err = await writeContent(client, target('c', 'ns', 'n'), '{"a":"1"}').catch((e: unknown) => e);
    server.close();
    expect((err as WriteError).problem).toMatchObject({ code: 'WRITE_THROTTLED', subject: 'DescribeSecret' });
    expect(calls).toBe(3);
  });
});
