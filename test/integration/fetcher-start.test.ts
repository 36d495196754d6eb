// The fetcher image starts every command through its executable (`fetcher <command>`): the
// refresh sidecar too, which runs without the JIT (REFRESHER_ENV), keeps running, fetches again on
// its interval and stops on SIGTERM.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFRESHER_ENV } from '../../fetcher/spec.js';
import { startCommand } from '../helpers/bundles.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

describe.skipIf(skip !== false)(`the fetcher started as its image starts it${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  let token: string;
  const irsa = () => ({ AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`, AWS_WEB_IDENTITY_TOKEN_FILE: token, AWS_REGION: REGION });

  beforeAll(() => {
    token = scratch.tokenFile();
  });
  afterAll(() => scratch.remove());

  it('runs the refresh sidecar: it keeps the files, waits for its interval and exits 0 on SIGTERM', async () => {
    const { secrets } = seedClients(c.awsEndpoint);
    const name = unique('refreshed');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'first' }));
    const spec = { region: REGION, items: [{ ref: name, file: 'f' }], refresh: { intervalSeconds: 10 } };
    const fetched = await runFetcher(c, scratch, spec, irsa());
    expect(fetched.code, fetched.stderr).toBe(0);

    const termination = join(mkdtempSync(join(scratch.root, 'refresh-')), 'termination');
    const [command, ...args] = startCommand(scratch.bundlePath(c));
    const child = spawn(command!, [...args, 'refresh', '--dir', fetched.dir], {
      cwd: scratch.root,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: scratch.root,
        AWS_ENDPOINT_URL: c.awsEndpoint,
        AWS_EC2_METADATA_DISABLED: 'true',
        SECRET_INJECTOR_SPEC: JSON.stringify({ version: 1, dir: '/tmp', mode: '0444', ...spec }),
        SECRET_INJECTOR_TERMINATION_LOG: termination,
        ...REFRESHER_ENV,
        ...irsa(),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the refresh sidecar said nothing within 20 s:\n${stderr}`)), 20_000);
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/refresh: .*polled every 10 s/.test(stderr)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
      expect(readFileSync(join(fetched.dir, 'f'), 'utf8')).toBe('first');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
