// The refresh sidecar as the kubelet runs it: the built fetcher started with `refresh`, after a
// first `fetch`, against the emulator. A secret rotated with PutSecretValue (AWSCURRENT moves)
// reaches its files within one interval while the others keep their inode; access denied, then
// the endpoint gone, leave every file and the marker as they were, with one log line per failure;
// SIGTERM ends it with 0 at once.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand, DeleteSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it } from 'vitest';
import { serialiseSpec, type FetchSpec } from '../../fetcher/spec.js';
import { startAwsProxy, type Fault } from '../helpers/aws-proxy.js';
import { startCommand } from '../helpers/bundles.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
// Static keys, which the fetcher takes only with the opt-in: no STS call in the way.
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };
const INTERVAL = 10;

interface Sidecar {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function startRefresh(bundle: string, dir: string, spec: FetchSpec, endpoint: string, root: string, identity: Record<string, string> = keys): Sidecar {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    AWS_ENDPOINT_URL: endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(root, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(root, 'no-credentials'),
    SECRET_INJECTOR_SPEC: serialiseSpec(spec),
    SECRET_INJECTOR_TERMINATION_LOG: join(root, 'refresh-termination'),
    ...identity,
  };
  const [command, ...args] = startCommand(bundle);
  const child = spawn(command!, [...args, 'refresh', '--dir', dir], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { child, stderr: () => stderr, exit };
}

async function until(what: string, check: () => boolean, ms: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - started;
}

/** SIGTERM, then the exit code and how long it took. */
async function stop(s: Sidecar): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  s.child.kill('SIGTERM');
  const killer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  const code = await s.exit;
  clearTimeout(killer);
  return { code, ms: Date.now() - started };
}

describe.skipIf(skip !== false)(`refresh sidecar against the emulator${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  afterAll(() => scratch.remove());

  it('a rotated secret reaches its key, explode and env files within one interval; untouched files keep their inode; SIGTERM exits 0', async () => {
    const db = unique('rotating-db');
    const token = unique('steady-token');
    await secrets.send(new CreateSecretCommand({ Name: db, SecretString: JSON.stringify({ username: 'app', password: 'first-password' }) }));
    await secrets.send(new CreateSecretCommand({ Name: token, SecretString: 'steady-token-value' }));
    const items: FetchSpec['items'] = [
      { ref: db, file: 'db/password', key: 'password' },
      { ref: db, explode: true, file: 'conf', prefix: 'DB_' },
      { ref: db, file: 'app.env', format: 'env' },
      { ref: token, file: 'token' },
    ];
    const first = await runFetcher(c, scratch, { items }, keys);
    expect(first.code).toBe(0);
    const dir = first.dir;
    const read = (p: string) => readFileSync(join(dir, p), 'utf8');
    const inode = (p: string) => statSync(join(dir, p)).ino;
    const before = { token: inode('token'), username: inode('conf/DB_username'), password: inode('db/password') };
    const marker0 = JSON.parse(read('.secrets-ready'));

    const spec: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, items, refresh: { intervalSeconds: INTERVAL } };
    const sidecar = startRefresh(scratch.bundlePath(c), dir, spec, c.awsEndpoint, scratch.root);
    try {
      await secrets.send(new PutSecretValueCommand({ SecretId: db, SecretString: JSON.stringify({ username: 'app', password: 'second-password' }) }));
      const ms = await until('the rotated password in its file', () => read('db/password') === 'second-password', (INTERVAL + 5) * 1000);
      expect(ms).toBeLessThanOrEqual((INTERVAL + 5) * 1000);
      // The marker is written last: once it names the new version, every file is in place.
      await until('the marker with the new version', () => JSON.parse(read('.secrets-ready')).secrets[0].versionId !== marker0.secrets[0].versionId, 5_000);
      expect(read('conf/DB_password')).toBe('second-password');
      expect(read('app.env')).toBe("username='app'\npassword='second-password'\n");
      expect(inode('db/password')).not.toBe(before.password);
      expect(inode('token')).toBe(before.token);
      expect(inode('conf/DB_username')).toBe(before.username);
      const marker = JSON.parse(read('.secrets-ready'));
      expect(Date.parse(marker.fetchedAt)).toBeGreaterThan(Date.parse(marker0.fetchedAt));
      expect(marker.secrets[3]).toEqual(marker0.secrets[3]);
      expect(readFileSync(join(dir, '.secrets-ready'), 'utf8')).not.toContain('second-password');
      expect(sidecar.stderr()).toMatch(/refresh: rewrote 3 file\(s\): db\/password, conf\/DB_password, app\.env/);
      expect(sidecar.stderr()).not.toContain('second-password');
    } finally {
      const { code, ms } = await stop(sidecar);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(3_000);
    }
  }, 60_000);

  it('a whole path: a secret created under the prefix appears as a file, one deleted disappears, within one interval; changedAt moves', async () => {
    const prefix = unique('team-b/app');
    await secrets.send(new CreateSecretCommand({ Name: `${prefix}/a`, SecretString: 'a-value' }));
    await secrets.send(new CreateSecretCommand({ Name: `${prefix}/b`, SecretString: 'b-value' }));
    const items: FetchSpec['items'] = [{ ref: `${prefix}/*`, file: 'app' }];
    const first = await runFetcher(c, scratch, { items }, keys);
    expect(first.code).toBe(0);
    const dir = first.dir;
    const read = (p: string) => readFileSync(join(dir, p), 'utf8');
    const marker0 = JSON.parse(read('.secrets-ready'));
    const spec: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, items, refresh: { intervalSeconds: INTERVAL } };
    const sidecar = startRefresh(scratch.bundlePath(c), dir, spec, c.awsEndpoint, scratch.root);
    try {
      await secrets.send(new CreateSecretCommand({ Name: `${prefix}/c`, SecretString: 'c-value' }));
      await secrets.send(new DeleteSecretCommand({ SecretId: `${prefix}/a`, ForceDeleteWithoutRecovery: true }));
      await until('c written and a removed', () => existsSync(join(dir, 'app/c')) && !existsSync(join(dir, 'app/a')), (INTERVAL + 5) * 1000);
      expect([read('app/b'), read('app/c')]).toEqual(['b-value', 'c-value']);
      await until('the marker naming b and c', () => JSON.parse(read('.secrets-ready')).secrets[0].files.join() === 'app/b,app/c', 5_000);
      const marker = JSON.parse(read('.secrets-ready'));
      expect(marker.secrets[0].members.map((m: { name: string }) => m.name)).toEqual(['b', 'c']);
      expect(Date.parse(marker.changedAt)).toBeGreaterThan(Date.parse(marker0.changedAt));
    } finally {
      expect((await stop(sidecar)).code).toBe(0);
    }
  }, 60_000);

  it('an ExpiredToken answer makes it resolve its credentials again (IRSA exchanges its token anew) before the next attempt', async () => {
    const name = unique('expiring');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'expiring-value' }));
    let expired = false;
    const proxy = await startAwsProxy(c.awsEndpoint, (op) =>
      expired && op.startsWith('secretsmanager.') ? { status: 400, type: 'ExpiredTokenException', message: 'The security token included in the request is expired' } : undefined,
    );
    const irsa = { AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`, AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(), AWS_REGION: REGION };
    const items: FetchSpec['items'] = [{ ref: name, file: 'secret' }];
    const first = await runFetcher(c, scratch, { items }, irsa, { endpoint: proxy.endpoint });
    expect(first.code).toBe(0);
    const exchanges = () => proxy.operations.filter((o) => o === 'sts.AssumeRoleWithWebIdentity').length;
    const spec: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, items, refresh: { intervalSeconds: INTERVAL } };
    expired = true;
    const before = exchanges();
    const sidecar = startRefresh(scratch.bundlePath(c), first.dir, spec, proxy.endpoint, scratch.root, irsa);
    const failures = () => sidecar.stderr().split('\n').filter((l) => l.includes('refresh failed'));
    try {
      await until('a failure line for the expired token', () => failures().length >= 1, (INTERVAL + 10) * 1000);
      expect(failures()[0]).toMatch(/AWS error code: ExpiredTokenException/);
      // One exchange for the sidecar's first pass, one more once AWS held those credentials as
      // expired (the identity lookup for the report already uses the new ones).
      expect(exchanges() - before).toBe(2);
      expired = false;
      await until('a recovery', () => sidecar.stderr().includes('recovered after 1 failed attempt'), 15_000);
    } finally {
      await proxy.close();
      const { code } = await stop(sidecar);
      expect(code).toBe(0);
    }
  }, 60_000);

  it('access denied, then the endpoint gone: every file and the marker stay as they were, one line per failure', async () => {
    const name = unique('revoked');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'kept-value' }));
    let fault: Fault | undefined;
    const proxy = await startAwsProxy(c.awsEndpoint, (op) => (op.startsWith('secretsmanager.') ? fault : undefined));
    const items: FetchSpec['items'] = [{ ref: name, file: 'secret' }];
    const first = await runFetcher(c, scratch, { items }, keys, { endpoint: proxy.endpoint });
    expect(first.code).toBe(0);
    const dir = first.dir;
    const inode = statSync(join(dir, 'secret')).ino;
    const marker = readFileSync(join(dir, '.secrets-ready'), 'utf8');

    fault = { status: 400, type: 'AccessDeniedException', message: 'User is not authorized to perform: secretsmanager:BatchGetSecretValue' };
    await secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'never-seen-value' }));
    const spec: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, items, refresh: { intervalSeconds: INTERVAL } };
    const sidecar = startRefresh(scratch.bundlePath(c), dir, spec, proxy.endpoint, scratch.root);
    const failures = () => sidecar.stderr().split('\n').filter((l) => l.includes('refresh failed'));
    try {
      await until('a failure line for the denied call', () => failures().length >= 1, (INTERVAL + 10) * 1000);
      expect(failures()[0]).toMatch(/refresh failed \(1 in a row; files last fetched completely .*\); next attempt in \d+ s: FETCH_AWS: reference .*AccessDeniedException/);
      // The endpoint goes away: the next attempt (after backoff) fails too, and says so.
      await proxy.close();
      await until('a failure line for the missing endpoint', () => failures().length >= 2, (INTERVAL + 15) * 1000);
      expect(failures()[1]).toMatch(/refresh failed \(2 in a row;/);
      expect(readFileSync(join(dir, 'secret'), 'utf8')).toBe('kept-value');
      expect(statSync(join(dir, 'secret')).ino).toBe(inode);
      expect(readFileSync(join(dir, '.secrets-ready'), 'utf8')).toBe(marker);
      expect(sidecar.stderr()).not.toContain('never-seen-value');
    } finally {
      await proxy.close().catch(() => undefined);
      const { code } = await stop(sidecar);
      expect(code).toBe(0);
    }
  }, 90_000);
});
